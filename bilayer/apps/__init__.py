"""Applications on bilayer: one package each, executed on chain behind the compliance gate."""

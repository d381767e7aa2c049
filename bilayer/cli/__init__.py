"""The `bilayer` command line."""

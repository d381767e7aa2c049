"""Tooling to run and disturb local networks of node processes (tests, benches, the CLI)."""

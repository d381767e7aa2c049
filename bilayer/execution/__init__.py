"""Execution: the deterministic state machine behind the compliance gate."""

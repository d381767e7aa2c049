"""Deterministic simulation of the consensus layer under faults, from one seed."""

"""Governance parameters the execution tests share."""

from __future__ import annotations

from bilayer.genesis import GovernanceParams

PARAMS = GovernanceParams(quorum_bps=5000, threshold_bps=6667, voting_period_ms=10_000, timelock_ms=5_000,
                          emergency_ratify_ms=20_000)

"""Helpers shared by the test tiers; no tests live here."""

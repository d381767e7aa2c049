"""Audit: proofs a light client checks offline, the audit index, fund tracing, evidence export."""

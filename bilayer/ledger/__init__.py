"""Layer 1: the permissionless DAG ledger."""

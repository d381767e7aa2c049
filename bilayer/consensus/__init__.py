"""Layer 2: the permissioned BFT consensus that finalizes the DAG in checkpoints."""

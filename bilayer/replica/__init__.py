"""The replica: what every node computes, without I/O.

`chain` verifies and executes finalized checkpoints in memory, `app` answers the consensus
core, `finality` drives the core and follows checkpoints, turning inputs into `Ready` records
of what to persist, send and commit. The node (`bilayer.node`) is an asyncio pump around it;
the simulator (`bilayer.sim`) runs the same code on a virtual clock, network and store.
Nothing here imports asyncio, sqlite3, a web framework, `bilayer.node` or `bilayer.api`
(`tests/unit/test_import_boundaries.py`).
"""

"""A sparse Merkle tree built version by version beside a plain dict: the model the tree's
tests compare against."""

from __future__ import annotations

from bilayer.execution.smt import Child, MemoryNodes, apply


def apply_history(
    history: list[dict[bytes, bytes | None]],
) -> tuple[MemoryNodes, list[Child | None], list[dict[bytes, bytes]]]:
    """Apply each version's changes (None deletes); the roots and the dict model after each version."""
    nodes = MemoryNodes()
    root: Child | None = None
    roots, models = [], []
    model: dict[bytes, bytes] = {}
    for version, changes in enumerate(history, start=1):
        update = apply(nodes, root, version, list(changes.items()))
        nodes.write(update)
        root = update.root
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        roots.append(root)
        models.append(dict(model))
    return nodes, roots, models

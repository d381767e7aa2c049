"""The API's import boundary: routes read a node through `api/nodeview.py` and the keepers'
typed reads, so `bilayer/api` imports no node module at run time (names used only in type
hints aside) and no state key function of any keeper."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import bilayer

API = Path(bilayer.__file__).parent / "api"
STATE_KEY_NAME = re.compile(r"(?<!parse)_key$|_prefix$|^[A-Z_]*PREFIX[A-Z_]*$")


def _runtime_imports(tree: ast.Module) -> Iterator[ast.ImportFrom | ast.Import]:
    """Every import the module runs: at top level, in functions, anywhere but under `if TYPE_CHECKING:`."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            todo.append(child)


def _absolute(module: Path, node: ast.ImportFrom | ast.Import) -> list[tuple[str, list[str]]]:
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    package = ["bilayer", *module.relative_to(Path(bilayer.__file__).parent).with_suffix("").parts]
    if module.name != "__init__.py":
        package = package[:-1]
    base = package[:len(package) - node.level + 1] if node.level else []
    target = ".".join([*base, *([node.module] if node.module else [])])
    return [(target, [alias.name for alias in node.names])]


def _imports() -> Iterator[tuple[str, str, list[str]]]:
    for path in sorted(API.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in _runtime_imports(tree):
            for target, names in _absolute(path, node):
                yield str(path.relative_to(API)), target, names


def test_the_api_imports_no_node_module_at_run_time() -> None:
    found = {(where, target) for where, target, _ in _imports()
             if target.startswith("bilayer.node")}
    assert found == set()


def test_the_api_reads_no_raw_state_keys() -> None:
    found = {(where, target, name) for where, target, names in _imports() if target.startswith("bilayer.execution")
             for name in names if STATE_KEY_NAME.search(name)}
    assert found == set()


def test_the_check_sees_imports_where_they_are() -> None:
    """The walk finds the node-side prover behind the proof routes, and the nodeview's type-only names not."""
    imports = {(where, target) for where, target, _ in _imports()}
    assert ("routes/audit.py", "bilayer.audit.proof") in imports
    assert not any(where == "nodeview.py" and target.startswith("bilayer.node") for where, target in imports)

"""The arrows between packages. The pure core stays pure: the replica, consensus, ledger and
execution packages import no I/O module and nothing of the node or the API, so the node and
the simulator run the same code. Around it: the simulator drives the replica, never the node;
the offline verifier trusts genesis alone, so it imports no node, store or I/O; the API reads a
node through its node-view protocol (node types in type hints only), and audit's provers read
what the node hands them (node types in type hints only); and the rate limiter both
the API and the node's peer and ingest layers use is a leaf that imports nothing of bilayer."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

import bilayer

ROOT = Path(bilayer.__file__).parent
PURE = ("replica", "consensus", "ledger", "execution")
FORBIDDEN = ("asyncio", "sqlite3", "aiohttp", "starlette", "socket", "threading", "concurrent", "subprocess",
             "bilayer.node", "bilayer.api", "bilayer.sim", "bilayer.devnet", "bilayer.cli")


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])


def _imports(nodes: Iterable[ast.AST], type_hints: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement; without `type_hints`, those under `if TYPE_CHECKING:` left out."""
    for node in nodes:
        if not type_hints and isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            yield from _imports(node.orelse, type_hints)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(ast.iter_child_nodes(node), type_hints)


def imported_modules(source: str, package: str, *, type_hints: bool = True) -> list[str]:
    """Absolute names of every module `source` (a module of `package`) imports, relative imports resolved;
    without `type_hints`, only what it imports at run time."""
    names = []
    for node in _imports([ast.parse(source)], type_hints):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def violations(source: str, package: str, forbidden: Sequence[str] = FORBIDDEN, *,
               type_hints: bool = True) -> list[str]:
    return sorted({name for name in imported_modules(source, package, type_hints=type_hints)
                   for banned in forbidden if name == banned or name.startswith(banned + ".")})


# (files, what they may not import, and whether type hints count)
ARROWS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "the simulator drives the replica, not the node": (
        ("sim",), ("bilayer.node", "bilayer.api", "bilayer.devnet", "bilayer.cli"), True),
    "the offline verifier trusts genesis alone: no node, no store, no I/O": (
        ("audit/verify.py", "audit/verify_export.py"), FORBIDDEN, True),
    "the API reads a node through the node-view protocol: node types in type hints only": (
        ("api",), ("bilayer.node",), False),
    "audit proves from what a node hands it (a chain source): node types in type hints only": (
        ("audit",), ("bilayer.node",), False),
    "the rate limiter is shared by the API and the node, and imports neither": (
        ("ratelimit.py",), ("bilayer",), True),
}


def _files(where: str) -> list[Path]:
    path = ROOT / where
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


@pytest.mark.parametrize("arrow", ARROWS)
def test_no_import_goes_against_an_arrow(arrow: str) -> None:
    places, forbidden, type_hints = ARROWS[arrow]
    files = [f for where in places for f in _files(where)]
    assert files and all(f.is_file() for f in files)
    found = {str(f.relative_to(ROOT)): v for f in files
             if (v := violations(f.read_text(), package_of(f), forbidden, type_hints=type_hints))}
    assert found == {}


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_no_io_and_nothing_of_the_node(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    found = {str(f.relative_to(ROOT)): v for f in files if (v := violations(f.read_text(), package_of(f)))}
    assert found == {}


def test_the_check_sees_a_forbidden_import() -> None:
    """The rule itself works: an I/O import and a relative import of the node are both caught."""
    source = "import asyncio\nfrom ..node import storage\nfrom .chain import ChainState\nfrom . import app\n"
    assert violations(source, "bilayer.replica") == ["asyncio", "bilayer.node", "bilayer.node.storage"]
    assert "bilayer.replica.chain.ChainState" in imported_modules(source, "bilayer.replica")
    assert "bilayer.replica.app" in imported_modules(source, "bilayer.replica")


def test_a_type_hint_import_is_told_apart_from_a_run_time_one() -> None:
    source = ("from typing import TYPE_CHECKING\nfrom ..ratelimit import RateLimiter\nif TYPE_CHECKING:\n"
              "    from ..node.ingest import Ingest\nelse:\n    from ..node import peers\n")
    assert violations(source, "bilayer.api", ("bilayer.node",)) == ["bilayer.node", "bilayer.node.ingest",
                                                                     "bilayer.node.ingest.Ingest",
                                                                     "bilayer.node.peers"]
    assert violations(source, "bilayer.api", ("bilayer.node",), type_hints=False) == ["bilayer.node",
                                                                                      "bilayer.node.peers"]

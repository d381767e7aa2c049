"""The pure core stays pure: the replica, consensus, ledger and execution packages import no I/O
module and nothing of the node or the API, so the node and the simulator run the same code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bilayer

ROOT = Path(bilayer.__file__).parent
PURE = ("replica", "consensus", "ledger", "execution")
FORBIDDEN = ("asyncio", "sqlite3", "aiohttp", "starlette", "socket", "threading", "concurrent", "subprocess",
             "bilayer.node", "bilayer.api", "bilayer.sim", "bilayer.devnet", "bilayer.cli")


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])


def imported_modules(source: str, package: str) -> list[str]:
    """Absolute names of every module `source` (a module of `package`) imports, relative imports resolved."""
    names = []
    for node in ast.walk(ast.parse(source)):
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


def violations(source: str, package: str) -> list[str]:
    return sorted({name for name in imported_modules(source, package)
                   for forbidden in FORBIDDEN if name == forbidden or name.startswith(forbidden + ".")})


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

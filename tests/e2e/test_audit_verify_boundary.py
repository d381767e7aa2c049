"""The offline verifier's import boundary: `bilayer audit verify` must run with no node code,
no storage and no network, so that what it trusts is the document and genesis alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bilayer.apps.warehouse import alert_proof
from bilayer.apps.warehouse import proof as receipt_proof
from bilayer.audit.verify import DocumentDecoder, ProofMalformed, decode_proof

FORBIDDEN_MODULES = frozenset({"sqlite3", "asyncio", "socket", "selectors", "ssl", "subprocess", "threading",
                               "http", "http.client", "urllib.request"})
FORBIDDEN_PACKAGES = ("bilayer.node", "bilayer.api", "bilayer.sim", "bilayer.cli", "bilayer.bench", "bilayer.sdk",
                      "bilayer.replica", "bilayer.audit.proof", "bilayer.audit.index", "bilayer.audit.export")


def _modules_loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `module` (a fresh one, because this
    test process has long since imported the node)."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout))


def _violations(loaded: set[str]) -> list[str]:
    return sorted(name for name in loaded if name in FORBIDDEN_MODULES
                  or any(name == p or name.startswith(p + ".") for p in FORBIDDEN_PACKAGES))


@pytest.mark.parametrize("module", ["bilayer.audit.verify", "bilayer.audit.verify_export"])
def test_the_verifier_imports_no_io_and_no_node_code(module: str) -> None:
    loaded = _modules_loaded_by(module)
    assert module in loaded
    assert _violations(loaded) == []


def test_the_boundary_check_sees_a_node_import() -> None:
    """The check itself: the node's store pulls SQLite and the node, and both are named."""
    violations = _violations(_modules_loaded_by("bilayer.node.storage"))
    assert "sqlite3" in violations and "bilayer.node.storage" in violations


def test_every_proof_document_is_read_by_the_one_decoder() -> None:
    """Audit, alert and receipt proofs share one decoder, so each refuses bytes that are not a
    document with the same code."""
    assert isinstance(alert_proof._decoder, DocumentDecoder)
    assert isinstance(receipt_proof._decoder, DocumentDecoder)
    for decode in (decode_proof, alert_proof.decode, receipt_proof.decode):
        with pytest.raises(ProofMalformed, match=r"^not an? .*proof: "):
            decode(b"\xff not json")

"""The notary over a real node's HTTP API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from bilayer import codec
from tests.support.localnet import running_localnet


@pytest.mark.slow
def test_the_notary_over_http_and_the_cli(tmp_path: Path) -> None:
    with running_localnet(tmp_path / "net", validators=1, ledger_nodes=0, pow_bits=4) as manifest:
        url = manifest["nodes"][0]["api_url"]
        keys = ["--node", url, "--keystore", str(manifest["keystore"])]
        owner, heir = manifest["funded_keys"][:2]
        document = tmp_path / "deed.txt"
        document.write_text("the deed of the house")
        digest = codec.sha256(document.read_bytes()).hex()
        done = _cli("notary", "register", str(document), "--title", "deed", "--key", owner, "--wait", *keys)
        assert done["status"] == "FINAL", done
        shown = _cli("notary", "show", digest, "--node", url)
        heir_address = _cli("keys", "show", heir, "--keystore", str(manifest["keystore"]))["address"]
        assert shown["title"] == "deed" and shown["transfers"] == 0
        done = _cli("notary", "transfer", digest, "--to", str(heir_address), "--key", owner, "--wait", *keys)
        assert done["status"] == "FINAL", done
        owned = _cli("notary", "owned", str(heir_address), "--node", url)
        assert [row["document"] for row in owned["documents"]] == [digest]  # type: ignore[index, union-attr]


def _cli(*args: str) -> Mapping[str, object]:
    run = subprocess.run([sys.executable, "-m", "bilayer", *args, "--json"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    result: Mapping[str, object] = json.loads(run.stdout)
    return result

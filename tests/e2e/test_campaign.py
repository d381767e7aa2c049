"""Real-process fault campaigns from a manifest: kill, pause, restart, disconnect under load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bilayer.devnet.perturb import Manifest, Perturbation, load_manifest, run_campaign
from bilayer.errors import ConfigError
from tests.support.paths import REPO

pytestmark = pytest.mark.slow


def test_campaign_keeps_every_final_entry_final_everywhere(tmp_path: Path) -> None:
    manifest = Manifest(
        validators=4, ledger_nodes=1, load_tps=25, duration_s=14, settle_s=60,
        perturb=[
            Perturbation(2, "validator1", "kill"),
            Perturbation(5, "validator1", "restart"),
            Perturbation(6, "validator2", "pause"),
            Perturbation(8, "validator2", "resume"),
            Perturbation(9, "validator3", "disconnect"),
            Perturbation(11, "validator3", "reconnect"),
            Perturbation(12, "validator0", "pause"),  # still paused at the end: healed before the checks
        ],
    )
    result = run_campaign(manifest, tmp_path / "net")
    assert result.problems == []
    assert result.acknowledged > 100
    assert result.reported_final == result.final_everywhere > 100
    assert len(result.perturbations) == 7
    assert result.height > 5


def test_manifests_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('validators = 4\nledger_nodes = 1\n[[perturb]]\nat_s = 1\nnode = "validator9"\naction = "kill"\n')
    with pytest.raises(ConfigError, match="no node 'validator9'"):
        load_manifest(bad)
    bad.write_text('[[perturb]]\nat_s = 1\nnode = "validator1"\naction = "explode"\n')
    with pytest.raises(ConfigError, match="unknown action"):
        load_manifest(bad)
    bad.write_text("validators = [\n")
    with pytest.raises(ConfigError):
        load_manifest(bad)
    shipped = REPO / "campaigns"
    for path in shipped.glob("*.toml"):
        load_manifest(path)
    run = subprocess.run([sys.executable, "-m", "bilayer", "localnet", "campaign", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and run.stderr.startswith("error [config_error]") and "Traceback" not in run.stderr

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


def test_a_link_level_partition_stops_finality_without_a_quorum_and_heals(tmp_path: Path) -> None:
    manifest = Manifest(
        validators=4, ledger_nodes=2, load_tps=20, duration_s=22, settle_s=90,
        perturb=[
            Perturbation(3, action="partition",
                         groups=[["validator0", "validator1", "ledger0"], ["validator2", "validator3", "ledger1"]]),
            Perturbation(10, action="heal"),
            Perturbation(12, action="partition", groups=[["validator3", "ledger1"]]),
            Perturbation(13, "validator3", "restart"),  # restarted inside the partition: stays in it
        ],  # the second partition is still in place at the end: healed before the checks
    )
    result = run_campaign(manifest, tmp_path / "net")
    assert result.problems == []  # among them: every link across each cut closed within 10 s
    assert result.reported_final == result.final_everywhere > 100
    two_against_two, majority = result.partitions
    assert two_against_two["sides"] == [["validator0", "validator1", "ledger0"],
                                        ["validator2", "validator3", "ledger1"]]
    # no side holds 3 of 4 votes: at most a checkpoint already being committed lands
    assert two_against_two["height_at_heal"] - two_against_two["height_at_start"] <= 1
    assert majority["sides"] == [["validator3", "ledger1"], ["validator0", "validator1", "validator2", "ledger0"]]
    assert majority["height_at_heal"] > majority["height_at_start"]  # three validators finalize on
    assert result.height > two_against_two["height_at_heal"]


def test_partitions_in_manifests_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    head = '[[perturb]]\nat_s = 1\naction = '
    cases = {
        head + '"partition"\n': "partition needs groups",
        head + '"partition"\ngroups = [["validator0"], ["validator9"]]\n': "no node 'validator9'",
        head + '"partition"\ngroups = [["validator0"], ["validator0", "ledger0"]]\n':
            "in two groups",
        head + '"partition"\nnode = "validator0"\ngroups = [["validator1"]]\n': "takes no node",
        head + '"heal"\ngroups = [["validator1"]]\n': "heal takes no groups",
    }
    for text, message in cases.items():
        bad.write_text("validators = 4\nledger_nodes = 1\n" + text)
        with pytest.raises(ConfigError, match=message):
            load_manifest(bad)

"""`bilayer sim` as a user runs it: a campaign, a replay of one seed, a refused configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_cli_campaign_and_replay() -> None:
    run = subprocess.run([sys.executable, "-m", "bilayer", "sim", "--seeds", "3", "--start", "40", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["seeds"] == 3 and report["safety_violations"] == 0 and report["checkpoints"] > 0
    replay = subprocess.run([sys.executable, "-m", "bilayer", "sim", "--seed", "41", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["seeds"] == 1
    bad = subprocess.run([sys.executable, "-m", "bilayer", "sim", "--validators", "4", "--byzantine", "2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "tolerate at most 1" in bad.stderr and "Traceback" not in bad.stderr


def test_a_seed_replays_to_the_same_messages_whatever_the_hash_seed() -> None:
    """Python randomizes the order of sets of bytes per process: a replay that depended on it
    would not reproduce the failure it was asked to."""
    traces = set()
    for hash_seed in ("1", "2", "3"):
        run = subprocess.run([sys.executable, "-m", "bilayer", "sim", "--seed", "1", "--json"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert run.returncode == 0, run.stderr
        traces.add(json.loads(run.stdout)["trace"])
    assert len(traces) == 1, traces

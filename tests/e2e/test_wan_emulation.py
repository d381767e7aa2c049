"""Emulated wide-area links (`localnet up --wan`): the delays the profile sets are what a
frame takes between two nodes of different regions, and never less."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bilayer.api.client import NodeClient
from bilayer.devnet import localnet
from bilayer.devnet.localnet import WAN_PROFILES, wan_delays, wan_regions
from bilayer.keys.keystore import Keystore
from bilayer.ledger.operations import Data
from bilayer.node.config import NodeHome, load_config
from tests.support.builders import TEST_POW_BITS


def test_every_profile_gives_each_pair_of_regions_one_delay_both_ways() -> None:
    for profile, (regions, pairs, _) in WAN_PROFILES.items():
        assert len(pairs) == len(regions) * (len(regions) - 1) // 2, profile
        names = [f"n{i}" for i in range(len(regions) + 1)]
        keys = {n: f"{i:064x}" for i, n in enumerate(names)}
        delays = wan_delays(names, keys, profile)
        for a in names:
            for b in names:
                if a != b:
                    assert delays[a][keys[b]] == delays[b][keys[a]] >= 1
        placed = wan_regions(names, profile)
        assert delays[names[0]][keys[names[-1]]] == 1 and placed[names[0]] == placed[names[-1]]  # same region


def has(api: str, entry_id: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/v1/entries/{entry_id}", timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        return False


@pytest.mark.slow
def test_an_entry_reaches_a_node_in_another_region_no_sooner_than_the_profile_says(tmp_path: Path) -> None:
    manifest = localnet.create(tmp_path / "net", validators=0, ledger_nodes=2, pow_bits=TEST_POW_BITS,
                               wan="four-regions")
    shanghai, frankfurt = manifest["nodes"]
    assert manifest["wan"]["regions"] == {shanghai["name"]: "shanghai", frankfurt["name"]: "frankfurt"}
    config = load_config(NodeHome(Path(shanghai["home"])))
    assert list(config.testing.link_delay_ms.values()) == [100]
    localnet.up(tmp_path / "net")
    try:
        signer = Keystore(Path(manifest["keystore"])).load("alice")
        client = NodeClient(shanghai["api_url"])
        deadline = time.monotonic() + 20
        while not client.get("/v1/peers")["peers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        latencies = []
        for n in range(3):
            sent = time.monotonic()
            entry_id = client.build_and_submit(signer, Data(media_type="text/plain"), f"wan {n}".encode())["id"]
            while not has(frankfurt["api_url"], entry_id) and time.monotonic() < sent + 10:
                time.sleep(0.005)
            latencies.append(time.monotonic() - sent)
        assert min(latencies) >= 0.100, latencies  # one way Shanghai to Frankfurt
        assert max(latencies) < 5, latencies
    finally:
        localnet.down(tmp_path / "net")

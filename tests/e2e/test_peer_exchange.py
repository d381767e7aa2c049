"""Peer exchange: a node that knows one seed learns the rest of the network from it, and
what a hostile peer offers cannot make it dial without bound.

Real processes: three ledger nodes in a line (the last dials only the middle one) end up
linked all to all; with learning turned off they stay a line. In-process: which offered
addresses are dialled, and the decoder's bounds."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bilayer.devnet import localnet
from bilayer.errors import BadEncoding
from bilayer.node.config import NodeHome, load_config, write_config
from bilayer.node.messages import MAX_ADDRESSES, PeersMsg, decode_message, encode_message
from bilayer.node.peers import addresses_to_learn, backoff_delay, dialable
from tests.support.builders import TEST_POW_BITS


def get(node: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(node["api_url"] + path, timeout=5) as response:
        return json.loads(response.read())


def linked(node: dict[str, Any]) -> set[str]:
    return {p["node_key"] for p in get(node, "/v1/peers")["peers"]}


def line_of_three(directory: Path, learn: int) -> dict[str, Any]:
    manifest = localnet.create(directory, validators=0, ledger_nodes=3, pow_bits=TEST_POW_BITS, topology="line")
    for node in manifest["nodes"]:
        home = NodeHome(Path(node["home"]))
        config = load_config(home)
        write_config(home, msgspec.structs.replace(config, p2p=msgspec.structs.replace(
            config.p2p, max_learned_peers=learn)))
    return localnet.up(directory)


@pytest.mark.slow
def test_a_node_that_knows_one_seed_links_to_the_whole_network(tmp_path: Path) -> None:
    manifest = line_of_three(tmp_path / "net", learn=16)
    try:
        first, middle, last = manifest["nodes"]
        keys = {n["name"]: get(n, "/v1/status")["node_key"] for n in manifest["nodes"]}
        assert load_config(NodeHome(Path(last["home"]))).p2p.peers == [middle["p2p"]]
        deadline = time.monotonic() + 20
        while keys[first["name"]] not in linked(last) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert keys[first["name"]] in linked(last), "the last node never learned the first from the middle one"
        assert keys[last["name"]] in linked(first)
        assert len(linked(middle)) == 2
    finally:
        localnet.down(tmp_path / "net")


@pytest.mark.slow
def test_with_learning_off_a_line_stays_a_line(tmp_path: Path) -> None:
    manifest = line_of_three(tmp_path / "net", learn=0)
    try:
        first, middle, last = manifest["nodes"]
        keys = {n["name"]: get(n, "/v1/status")["node_key"] for n in manifest["nodes"]}
        deadline = time.monotonic() + 10
        while len(linked(middle)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(linked(middle)) == 2
        time.sleep(2.5)  # past a tips round: an exchange would have happened by now
        assert keys[first["name"]] not in linked(last)
    finally:
        localnet.down(tmp_path / "net")


def test_only_new_dialable_addresses_are_learned_and_no_more_than_there_is_room_for() -> None:
    offered = ["10.0.0.5:9700", "0.0.0.0:9700", "[::]:9700", "no-port", "host:0", "host:70000", "bad host:9700",
               "10.0.0.5:9700", "seed.example:9700", "known.example:9700", "a" * 300 + ":1", "10.0.0.6:9700"]
    assert addresses_to_learn(offered, known={"known.example:9700"}, room=16) == [
        "10.0.0.5:9700", "seed.example:9700", "10.0.0.6:9700"]
    assert addresses_to_learn(offered, known=set(), room=1) == ["10.0.0.5:9700"]
    assert addresses_to_learn(offered, known=set(), room=0) == []
    assert dialable("[::1]:9700") and dialable("127.0.0.1:9700") and not dialable("[::]:1")


def test_a_peers_message_is_bounded_when_decoded() -> None:
    fine = PeersMsg([f"10.0.0.{i}:9700" for i in range(MAX_ADDRESSES)])
    assert decode_message(encode_message(fine)) == fine
    with pytest.raises(BadEncoding):
        decode_message(encode_message(PeersMsg([f"10.0.1.{i}:9700" for i in range(MAX_ADDRESSES + 1)])))
    with pytest.raises(BadEncoding):
        decode_message(encode_message(PeersMsg(["h" * 400 + ":1"])))


def test_redials_spread_between_half_and_the_whole_backoff() -> None:
    delays = [backoff_delay(4.0) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays) and max(delays) - min(delays) > 0.5

"""An author who forks, raced against itself across real node processes.

Four validators and two ledger nodes on loopback. One key signs two different entries with
one sequence number and the two are posted at the same instant to two different nodes. Every
time: every node keeps running and healthy, every node holds the fork evidence, at most one
half is FINAL (the other REJECTED `sequence_conflict`, or never taken anywhere), all nodes
agree on checkpoints and roots, and ordinary transfers keep finalizing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer import codec
from bilayer.genesis import Genesis, load_genesis
from bilayer.keys.keystore import Keystore
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry
from bilayer.ledger.operations import Data, Transfer
from tests.support.builders import make_entry, seeded_signer
from tests.support.finality import http, outcomes, wait_until
from tests.support.localnet import running_localnet

pytestmark = pytest.mark.slow

LIMIT = 120.0  # seconds any one wait may take


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bilayer.node.config import LimitsConfig

    directory = tmp_path_factory.mktemp("forks") / "net"
    with running_localnet(directory, validators=4, ledger_nodes=2, pow_bits=4,
                          limits=LimitsConfig(author_rate=0, connection_rate=0)) as manifest:
        manifest["genesis_obj"] = load_genesis(Path(manifest["genesis"]))
        manifest["urls"] = {node["name"]: node["api_url"] for node in manifest["nodes"]}
        yield manifest


def post(url: str, signed: SignedEntry) -> tuple[int, Any]:
    return http("POST", f"{url}/v1/entries", codec.encode(signed))


def race(posts: list[tuple[str, SignedEntry]]) -> list[int]:
    """Post each entry to its node from its own thread, released at the same instant."""
    barrier = threading.Barrier(len(posts))
    statuses = [0] * len(posts)

    def send(index: int, url: str, signed: SignedEntry) -> None:
        barrier.wait(timeout=10)
        statuses[index] = post(url, signed)[0]

    threads = [threading.Thread(target=send, args=(i, url, signed)) for i, (url, signed) in enumerate(posts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def fork(genesis: Genesis, signer: Signer, seq: int = 0, parent: bytes | None = None
         ) -> tuple[tuple[bytes, SignedEntry], tuple[bytes, SignedEntry]]:
    parents = [parent or genesis.root]
    return (make_entry(signer, genesis, seq=seq, parents=parents, payload=b"left", op=Data(media_type="text/plain")),
            make_entry(signer, genesis, seq=seq, parents=parents, payload=b"right", op=Data(media_type="text/plain")))


def settled_everywhere(net: dict[str, Any], entry_id: bytes) -> str:
    """The entry's one status on every node: FINAL or REJECTED (with its code), or ABSENT when no
    node took it. Waits until the nodes agree."""
    seen: dict[str, str] = {}

    def agreed() -> bool:
        for name, url in net["urls"].items():
            code, view = http("GET", f"{url}/v1/entries/{entry_id.hex()}", timeout=5)
            if code == 404:
                seen[name] = "ABSENT"
            elif view.get("status") == "REJECTED":
                seen[name] = f"REJECTED {view.get('reason')}"
            else:
                seen[name] = str(view.get("status"))
        values = set(seen.values())
        return len(values) == 1 and values.pop() != "PENDING"

    wait_until(agreed, LIMIT, f"every node to agree on {entry_id.hex()[:12]}: {seen}")
    return next(iter(seen.values()))


def assert_fork_handled(net: dict[str, Any], author: Signer, seq: int, halves: list[bytes]) -> str:
    """Evidence on every node, exactly one half FINAL, the other REJECTED or taken nowhere."""
    for name, url in net["urls"].items():
        def has_evidence(url: str = url) -> bool:
            forks = http("GET", f"{url}/v1/evidence", timeout=5)[1]["forks"]
            return any(f["author"] == author.address and f["seq"] == seq for f in forks)

        wait_until(has_evidence, LIMIT, f"fork evidence on {name}")
    statuses = [settled_everywhere(net, half) for half in halves]
    assert statuses.count("FINAL") == 1, statuses
    other = next(status for status in statuses if status != "FINAL")
    assert other in ("ABSENT", "REJECTED sequence_conflict"), statuses
    return other


def assert_network_agrees_and_finalizes(net: dict[str, Any]) -> None:
    """Every node healthy and at the same checkpoints and roots; an ordinary transfer still finalizes."""
    genesis: Genesis = net["genesis_obj"]
    keystore = Keystore(Path(net["keystore"]))
    alice = keystore.load("alice")
    bob = keystore.load("bob")
    urls = list(net["urls"].values())
    account = http("GET", f"{urls[0]}/v1/authors/{alice.address}")[1]
    parents = [bytes.fromhex(account["head"])] if account.get("head") else [genesis.root]
    transfer_id, transfer = make_entry(alice, genesis, seq=account["next_seq"], parents=parents,
                                       op=Transfer(asset="BLY", amount=1, to=bob.public_key))
    assert post(urls[-1], transfer)[0] == 201
    final = outcomes(urls[0], [transfer_id], timeout=LIMIT)[transfer_id]
    assert final["status"] == "FINAL", final
    height = final["height"]
    views = []
    for url in urls:
        wait_until(lambda url=url: http("GET", f"{url}/v1/status", timeout=5)[1].get("height", 0) >= height,
                   LIMIT, f"{url} to reach height {height}")
        status = http("GET", f"{url}/v1/status", timeout=5)[1]
        assert status["healthy"] and not status.get("halted"), status
        views.append(http("GET", f"{url}/v1/checkpoints/{height}", timeout=5)[1])
    assert len({(v["id"], v["state_root"], v["results_root"]) for v in views}) == 1


def test_a_fork_raced_to_two_ledger_nodes_at_sequence_zero(net: dict[str, Any]) -> None:
    author = seeded_signer(7001)
    (left_id, left), (right_id, right) = fork(net["genesis_obj"], author)
    statuses = race([(net["urls"]["ledger0"], left), (net["urls"]["ledger1"], right)])
    assert set(statuses) <= {201, 409}, statuses
    assert_fork_handled(net, author, 0, [left_id, right_id])
    assert_network_agrees_and_finalizes(net)


def test_a_fork_deep_in_a_chain_raced_to_a_ledger_node_and_a_validator(net: dict[str, Any]) -> None:
    genesis: Genesis = net["genesis_obj"]
    author = seeded_signer(7002)
    parent = genesis.root
    chain = []
    for seq in range(5):
        parent, signed = make_entry(author, genesis, seq=seq, parents=[parent], payload=b"%d" % seq)
        assert post(net["urls"]["ledger0"], signed)[0] == 201
        chain.append(parent)
    (left_id, left), (right_id, right) = fork(genesis, author, seq=5, parent=parent)
    statuses = race([(net["urls"]["ledger1"], left), (net["urls"]["validator2"], right)])
    assert set(statuses) <= {201, 409}, statuses
    assert_fork_handled(net, author, 5, [left_id, right_id])
    assert all(settled_everywhere(net, entry) == "FINAL" for entry in chain)
    assert_network_agrees_and_finalizes(net)


def test_a_fork_raced_to_two_validators_and_built_on_by_its_author(net: dict[str, Any]) -> None:
    """Each half gets a child by the same author; only the winner's child can be FINAL."""
    genesis: Genesis = net["genesis_obj"]
    author = seeded_signer(7003)
    (left_id, left), (right_id, right) = fork(genesis, author)
    left_child_id, left_child = make_entry(author, genesis, seq=1, parents=[left_id], payload=b"after left")
    right_child_id, right_child = make_entry(author, genesis, seq=1, parents=[right_id], payload=b"after right")
    race([(net["urls"]["validator0"], left), (net["urls"]["validator3"], right)])
    race([(net["urls"]["validator0"], left_child), (net["urls"]["validator3"], right_child)])
    assert_fork_handled(net, author, 0, [left_id, right_id])
    winner = left_id if settled_everywhere(net, left_id) == "FINAL" else right_id
    loser_child = right_child_id if winner == left_id else left_child_id
    assert settled_everywhere(net, loser_child) in ("ABSENT", "REJECTED sequence_conflict")
    assert_network_agrees_and_finalizes(net)


def test_a_fork_half_fetched_later_as_the_parent_of_someone_elses_entry(net: dict[str, Any]) -> None:
    """The half one node refused reaches it again as a parent it needs: it is fetched and placed."""
    genesis: Genesis = net["genesis_obj"]
    author = seeded_signer(7004)
    (left_id, left), (right_id, right) = fork(genesis, author)
    statuses = race([(net["urls"]["ledger0"], left), (net["urls"]["validator1"], right)])
    assert 201 in statuses
    taken = [half for half, status in zip((left_id, right_id), statuses, strict=True) if status == 201]
    for index, half in enumerate(taken):  # someone else builds on each half that a node took
        _, child = make_entry(seeded_signer(7100 + index), genesis, parents=[half], payload=b"child")
        for url in net["urls"].values():  # every node: most of them must fetch the half first
            assert post(url, child)[0] in (200, 201, 202)
        assert settled_everywhere(net, codec.sha256(child.header)) == "FINAL"
    assert_fork_handled(net, author, 0, [left_id, right_id])
    assert_network_agrees_and_finalizes(net)


def test_twenty_forks_under_ordinary_load(net: dict[str, Any]) -> None:
    """Twenty authors fork at once, each raced to two different nodes, while transfers flow."""
    genesis: Genesis = net["genesis_obj"]
    urls = list(net["urls"].values())
    payer = seeded_signer(7200)
    keystore = Keystore(Path(net["keystore"]))
    carol = keystore.load("carol")
    account = http("GET", f"{urls[0]}/v1/authors/{carol.address}")[1]
    parent = bytes.fromhex(account["head"]) if account.get("head") else genesis.root
    transfers = []
    for seq in range(account["next_seq"], account["next_seq"] + 60):
        parent, signed = make_entry(carol, genesis, seq=seq, parents=[parent],
                                    op=Transfer(asset="BLY", amount=1, to=payer.public_key))
        transfers.append((parent, signed))
    attackers = [seeded_signer(7300 + i) for i in range(20)]
    forks = [fork(genesis, attacker) for attacker in attackers]

    def load() -> None:
        for index, (_, signed) in enumerate(transfers):
            post(urls[index % len(urls)], signed)
            time.sleep(0.05)

    loader = threading.Thread(target=load)
    loader.start()
    posts = []
    for index, ((_, left), (_, right)) in enumerate(forks):
        posts += [(urls[index % len(urls)], left), (urls[(index + 1) % len(urls)], right)]
    statuses = race(posts)
    loader.join(timeout=LIMIT)
    assert set(statuses) <= {201, 409}, statuses
    for attacker, ((left_id, _), (right_id, _)) in zip(attackers, forks, strict=True):
        assert_fork_handled(net, attacker, 0, [left_id, right_id])
    found = outcomes(urls[0], [entry_id for entry_id, _ in transfers], timeout=LIMIT)
    assert all(view["status"] == "FINAL" for view in found.values())
    assert_network_agrees_and_finalizes(net)


def test_the_network_bench_measures_transfers_under_a_fork_flood(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "bilayer", "bench", "network", "--transactions", "600", "--ledger-nodes", "2",
         "--rate", "400", "--resend-refused", "--forks", "40", "--fork-rate", "40",
         "--workdir", str(tmp_path / "made-by-the-bench"), "--json"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout)["results"]
    # a node behind may refuse a batch early (503 + Retry-After); the bench then sends it again
    assert results["finalized"] == results["final"] == results["accepted"] == 600, results
    assert results["fork_pairs_sent"] > 0
    assert set(results["fork_halves_by_answer"]) <= {"stored", "known", "orphan", "sequence_reused"}

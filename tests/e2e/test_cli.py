"""The `bilayer` command line, run as a real process: output formats, error lines and real nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bilayer import __version__
from bilayer.keys.address import is_address, public_key_from_address
from bilayer.keys.keystore import ENV_PASSPHRASE, Keystore
from tests.support.cli import (
    UNREACHABLE,
    Result,
    assert_error,
    bilayer,
    bilayer_all,
)


def assert_json_error(result: Result, code: str, exit_code: int = 1) -> str:
    """The --json error contract: one JSON object {"error": {"code", "message"}} on stdout."""
    assert result.code == exit_code, result
    assert result.err == "", result
    body = result.json()
    assert set(body) == {"error"}, result
    assert set(body["error"]) == {"code", "message"}, result
    assert body["error"]["code"] == code, result
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


# --- basics -----------------------------------------------------------------------------


def test_version() -> None:
    result = bilayer("--version")
    assert result.code == 0, result
    assert result.out.strip() == f"bilayer, version {__version__}"


def test_help_lists_the_command_groups() -> None:
    result = bilayer("--help")
    assert result.code == 0, result
    for group in ("keys", "node", "tx", "query", "localnet", "bench"):
        assert re.search(rf"^\s+{group}\s", result.out, re.MULTILINE), result


USAGE_ERRORS = [
    (("keys", "list", "--bogus"), "No such option"),
    (("nosuchcommand",), "No such command"),
    (("keys", "new"), "Missing argument"),
    (("tx", "transfer", "--to", "x", "--key", "alice", "--amount", "0"), "--amount"),
    (("tx", "data", "--key", "alice", "--file", "/nonexistent/file"), "does not exist"),
    (("localnet", "up", "--ledger-nodes", "-1"), "--ledger-nodes"),
    (("localnet", "up", "--validators", "0", "--ledger-nodes", "0", "--dir", "/nonexistent-net"), "at least one node"),
]


def test_usage_errors(keystore: Path) -> None:
    results = bilayer_all([args for args, _ in USAGE_ERRORS], keystore=keystore)
    for (_, fragment), result in zip(USAGE_ERRORS, results, strict=True):
        assert result.code == 2, result
        assert result.out == "", result
        assert result.err.startswith("error [usage]: "), result
        assert fragment in result.err, result
    assert not keystore.exists()


def test_usage_error_with_json_is_a_json_object(keystore: Path) -> None:
    message = assert_json_error(bilayer("keys", "list", "--bogus", "--json", keystore=keystore), "usage", 2)
    assert "--bogus" in message


# --- keys -------------------------------------------------------------------------------


def test_keys_new_list_show_json(keystore: Path) -> None:
    created = bilayer("keys", "new", "alice", "--plaintext", "--json", keystore=keystore)
    assert created.code == 0, created
    assert created.err == ""
    alice = created.json()
    assert {"name", "address", "public_key", "encrypted", "keystore"} <= set(alice)
    assert alice["name"] == "alice" and alice["encrypted"] is False
    assert Path(alice["keystore"]) == keystore
    assert is_address(alice["address"])
    assert public_key_from_address(alice["address"]).hex() == alice["public_key"]
    assert Keystore(keystore).info("alice").address == alice["address"]

    bob = bilayer("keys", "new", "bob", "--plaintext", "--json", keystore=keystore).json()

    listed = bilayer("keys", "list", "--json", keystore=keystore)
    assert listed.code == 0, listed
    rows = listed.json()
    assert [r["name"] for r in rows] == ["alice", "bob"]
    for row, key in zip(rows, (alice, bob), strict=True):
        assert set(row) == {"name", "address", "public_key", "encrypted"}
        assert row["address"] == key["address"] and row["public_key"] == key["public_key"]

    shown = bilayer("keys", "show", "bob", "--json", keystore=keystore)
    assert shown.code == 0, shown
    assert shown.json() == {k: bob[k] for k in ("name", "address", "public_key", "encrypted")}
    assert "seed" not in shown.out and Keystore(keystore).load("bob").seed.hex() not in shown.out


def test_keys_new_list_show_human(keystore: Path) -> None:
    created = bilayer("keys", "new", "carol", "--plaintext", keystore=keystore)
    assert created.code == 0, created
    address = Keystore(keystore).info("carol").address
    assert "created key carol" in created.out
    assert address in created.out

    listed = bilayer("keys", "list", keystore=keystore)
    assert listed.code == 0, listed
    assert str(keystore) in listed.out
    assert "carol" in listed.out
    assert address in listed.out
    with pytest.raises(json.JSONDecodeError):
        json.loads(listed.out)

    shown = bilayer("keys", "show", "carol", keystore=keystore)
    assert shown.code == 0, shown
    assert address in shown.out
    assert Keystore(keystore).info("carol").public_key.hex() in shown.out


def test_keys_list_of_empty_or_missing_keystore(keystore: Path) -> None:
    result = bilayer("keys", "list", "--json", keystore=keystore)
    assert result.code == 0, result
    assert result.json() == []
    assert not keystore.exists()


def test_keystore_option_overrides_the_environment(tmp_path: Path, keystore: Path) -> None:
    other = tmp_path / "other"
    result = bilayer("keys", "new", "dave", "--plaintext", "--keystore", str(other), "--json", keystore=keystore)
    assert result.code == 0, result
    assert Path(result.json()["keystore"]) == other
    assert Keystore(other).info("dave").name == "dave"
    assert not keystore.exists()


def test_keys_new_twice_is_key_exists(keystore: Path) -> None:
    first = bilayer("keys", "new", "alice", "--plaintext", "--json", keystore=keystore).json()
    human, as_json = bilayer_all([("keys", "new", "alice", "--plaintext"), ("keys", "new", "alice", "--json")],
                                 keystore=keystore)
    assert "alice" in assert_error(human, "key_exists")
    assert "alice" in assert_json_error(as_json, "key_exists")
    assert Keystore(keystore).info("alice").address == first["address"]


def test_keys_show_unknown_is_key_not_found(keystore: Path) -> None:
    assert_error(bilayer("keys", "show", "nobody", keystore=keystore), "key_not_found")
    assert_json_error(bilayer("keys", "show", "nobody", "--json", keystore=keystore), "key_not_found")


def test_keys_new_with_invalid_name(tmp_path: Path, keystore: Path) -> None:
    names = ["../x", "a/b", "a\nb"]
    for result in bilayer_all([("keys", "new", name) for name in names], keystore=keystore):
        message = assert_error(result, "keystore_error")
        assert "invalid key name" in message
    assert not (tmp_path / "x.json").exists()
    assert not keystore.exists()


def test_damaged_key_file_is_a_keystore_error_not_a_crash(keystore: Path) -> None:
    keystore.mkdir(mode=0o700)
    (keystore / "broken.json").write_text('{"name": "broken", "address": "bl1x", "public_key": "zz"}')
    message = assert_error(bilayer("keys", "show", "broken", keystore=keystore), "keystore_error")
    assert "damaged" in message
    result = bilayer("keys", "list", "--json", keystore=keystore)
    assert result.code == 0, result
    assert result.json() == []


def test_keys_new_encrypts_by_default_and_plaintext_is_explicit(keystore: Path) -> None:
    refused = bilayer("keys", "new", "eve", "--json", keystore=keystore)  # no passphrase, no terminal
    assert "BILAYER_PASSPHRASE" in assert_json_error(refused, "passphrase_required")
    assert not (keystore / "eve.json").exists()
    created = bilayer("keys", "new", "eve", "--json", keystore=keystore, env={ENV_PASSPHRASE: "pw"})
    assert created.code == 0, created
    assert created.json()["encrypted"] is True and Keystore(keystore).info("eve").encrypted
    assert Keystore(keystore).load("eve", "pw").address == created.json()["address"]
    plain = bilayer("keys", "new", "scratch", "--plaintext", keystore=keystore)
    assert plain.code == 0 and "(plaintext)" in plain.out
    assert not Keystore(keystore).info("scratch").encrypted


def test_encrypted_key_and_passphrase(keystore: Path) -> None:
    created = bilayer("keys", "new", "vault", "--encrypt", "--json", keystore=keystore, env={ENV_PASSPHRASE: "pw"})
    assert created.code == 0, created
    assert created.json()["encrypted"] is True
    assert Keystore(keystore).info("vault").encrypted
    data_args = ("tx", "data", "--text", "x", "--key", "vault", "--node", UNREACHABLE)
    passphrases = [{}, {ENV_PASSPHRASE: "wrong"}, {ENV_PASSPHRASE: "pw"}]
    with ThreadPoolExecutor(max_workers=3) as pool:
        none, wrong, right = pool.map(lambda env: bilayer(*data_args, keystore=keystore, env=env), passphrases)
    assert "encrypted" in assert_error(none, "bad_passphrase")
    assert "wrong passphrase" in assert_error(wrong, "bad_passphrase")
    # The right passphrase unlocks the key, so the next failure is the missing node.
    assert_error(right, "node_unreachable")


# --- errors before any node is reached --------------------------------------------------


def test_query_status_of_unreachable_node() -> None:
    message = assert_error(bilayer("query", "status", "--node", UNREACHABLE), "node_unreachable")
    assert UNREACHABLE in message
    assert_json_error(bilayer("query", "status", "--node", UNREACHABLE, "--json"), "node_unreachable")


def test_node_url_from_environment() -> None:
    message = assert_error(bilayer("query", "tips", env={"BILAYER_NODE": UNREACHABLE}), "node_unreachable")
    assert UNREACHABLE in message


def test_node_url_without_scheme_is_bad_request() -> None:
    assert_error(bilayer("query", "status", "--node", "127.0.0.1:1"), "bad_request")


def test_tx_transfer_to_mistyped_address(keystore: Path) -> None:
    store = Keystore(keystore)
    store.create("alice")
    bob = store.create("bob").address
    typo = bob[:20] + ("a" if bob[20] != "a" else "b") + bob[21:]
    transfer = ("tx", "transfer", "--amount", "5", "--key", "alice", "--node", UNREACHABLE)
    calls = [(*transfer, "--to", to) for to in (typo, bob[:-1], bob.upper(), "bl1" + "a" * 58)]
    results = bilayer_all([*calls, (*transfer, "--to", typo, "--json"), (*transfer, "--to", bob)], keystore=keystore)
    for result in results[:-2]:
        assert_error(result, "invalid_address")
    assert "checksum" in assert_error(results[0], "invalid_address")
    assert_json_error(results[-2], "invalid_address")
    # The same command with the right address gets as far as the node.
    assert_error(results[-1], "node_unreachable")


def test_tx_needs_an_existing_key(keystore: Path) -> None:
    args = ("tx", "data", "--text", "x", "--key", "ghost", "--node", UNREACHABLE)
    assert_error(bilayer(*args, keystore=keystore), "key_not_found")


def test_tx_data_needs_exactly_one_source(tmp_path: Path, keystore: Path) -> None:
    file = tmp_path / "payload.bin"
    file.write_bytes(b"\x00\x01")
    data = ("tx", "data", "--key", "alice", "--node", UNREACHABLE)
    neither, both, as_json = bilayer_all([data, (*data, "--text", "t", "--file", str(file)), (*data, "--json")])
    message = assert_error(neither, "bad_request")
    assert "--text" in message and "--file" in message
    assert_error(both, "bad_request")
    assert_json_error(as_json, "bad_request")


def test_query_author_with_invalid_address() -> None:
    assert_error(bilayer("query", "author", "bl1nope", "--node", UNREACHABLE), "invalid_address")


def test_query_entry_with_malformed_id_is_refused_before_any_request() -> None:
    ids = ["x y", "ab" * 31, "ab" * 32 + "/payload", "../status"]
    for result in bilayer_all([("query", "entry", entry_id, "--node", UNREACHABLE) for entry_id in ids]):
        assert "64 hex characters" in assert_error(result, "bad_request")


# --- node init --------------------------------------------------------------------------


def test_node_init_then_again_needs_force(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = bilayer("node", "init", "--home", str(home), "--chain-id", "test-x", "--pow-bits", "4", "--json")
    assert first.code == 0, first
    info = first.json()
    assert info["chain_id"] == "test-x"
    assert Path(info["config"]).is_file()
    genesis = json.loads((home / "config" / "genesis.json").read_text())
    assert genesis["chain_id"] == "test-x" and genesis["params"]["pow_bits"] == 4
    node_key = Keystore(home / "config").info("node_key")
    assert node_key.public_key.hex() == info["node_key"]
    config_text = Path(info["config"]).read_text()

    again = bilayer("node", "init", "--home", str(home), "--api-listen", "127.0.0.1:8801")
    message = assert_error(again, "config_error")
    assert "--force" in message
    assert Path(info["config"]).read_text() == config_text
    assert_json_error(bilayer("node", "init", "--home", str(home), "--json"), "config_error")

    forced = bilayer("node", "init", "--home", str(home), "--force", "--api-listen", "127.0.0.1:8801", "--json")
    assert forced.code == 0, forced
    assert forced.json()["api"] == "127.0.0.1:8801"
    assert "127.0.0.1:8801" in Path(info["config"]).read_text()
    assert forced.json()["node_key"] == info["node_key"]


def test_node_init_with_funds(tmp_path: Path, keystore: Path) -> None:
    alice = Keystore(keystore).create("alice").address
    home = tmp_path / "home"
    result = bilayer("node", "init", "--home", str(home), "--fund", f"{alice}=1000", "--fund", f"{alice}=7:GOLD")
    assert result.code == 0, result
    assert f"--home {home}" in result.out
    genesis = json.loads((home / "config" / "genesis.json").read_text())
    assert genesis["allocations"] == [
        {"address": alice, "asset": "BLY", "amount": 1000},
        {"address": alice, "asset": "GOLD", "amount": 7},
    ]


def test_node_init_with_malformed_fund(tmp_path: Path, keystore: Path) -> None:
    alice = Keystore(keystore).create("alice").address
    home = tmp_path / "home"
    typo = alice[:-2] + ("a" if alice[-2] != "a" else "b") + alice[-1]
    funds = {
        "nonsense": "ADDRESS=AMOUNT",
        "=5": "ADDRESS=AMOUNT",
        f"{alice}=x": "ADDRESS=AMOUNT",
        f"{alice}=-5": "ADDRESS=AMOUNT",
        f"{alice}=\u00b2": "ADDRESS=AMOUNT",
        f"{alice}=0": "amount must be positive",
        f"{typo}=5": "checksum",
    }
    init = ("node", "init", "--home", str(home), "--fund")
    results = bilayer_all([(*init, fund) for fund in funds] + [(*init, "nonsense", "--json")])
    for (fund, fragment), result in zip(funds.items(), results[:-1], strict=True):
        assert fragment in assert_error(result, "config_error"), fund
    assert_json_error(results[-1], "config_error")
    assert not (home / "config" / "node.toml").exists()
    assert not (home / "config" / "node_key.json").exists()
    ok = bilayer(*init, f"{alice}=5", "--json")
    assert ok.code == 0, ok


# --- against a real node ----------------------------------------------------------------


def test_transactions_and_queries_against_a_real_node(single_node: dict[str, Any]) -> None:
    url = single_node["nodes"][0]["api_url"]
    keys = single_node["keystore"]
    store = Keystore(Path(keys))
    alice = store.info("alice").address
    bob = store.info("bob").address
    common = ("--key", "alice", "--keystore", keys, "--node", url, "--wait", "--json")

    status = bilayer("query", "status", "--node", url, "--json")
    assert status.code == 0, status
    assert status.json()["chain_id"] == single_node["chain_id"]
    assert status.json()["entries"] == 0

    sent = bilayer("tx", "data", "--text", "hello", *common)
    assert sent.code == 0, sent
    data = sent.json()
    assert data["status"] == "PENDING"  # --wait on a chain without validators: stored, never final
    assert re.fullmatch(r"[0-9a-f]{64}", data["id"])
    assert data["author"] == alice

    entry = bilayer("query", "entry", data["id"], "--node", url, "--json")
    assert entry.code == 0, entry
    view = entry.json()
    assert view["id"] == data["id"]
    assert view["kind"] == "data"
    assert view["op"] == {"kind": "data", "media_type": "text/plain"}
    assert view["author"] == alice
    assert view["seq"] == 0
    assert view["status"] == "PENDING"  # stored; nothing is final on a chain without validators
    assert view["payload_size"] == len(b"hello")
    assert "payload" not in view and "header_bytes" not in view
    with_payload = bilayer("query", "entry", data["id"], "--node", url, "--payload", "--json").json()
    assert with_payload["payload"] == "aGVsbG8="

    sent = bilayer("tx", "transfer", "--to", bob, "--amount", "5", *common)
    assert sent.code == 0, sent
    transfer = sent.json()
    assert transfer["status"] == "PENDING" and transfer["id"] != data["id"]
    view = bilayer("query", "entry", transfer["id"], "--node", url, "--json").json()
    assert view["kind"] == "transfer"
    assert view["op"] == {"kind": "transfer", "asset": "BLY", "amount": 5, "to": bob}
    assert view["author"] == alice
    assert view["seq"] == 1
    assert view["parents"][0] == data["id"]

    net_dir = str(Path(keys).parent)
    node = ("--node", url)
    (
        author,
        fresh,
        tips,
        human_tips,
        evidence,
        human_evidence,
        status,
        missing,
        missing_json,
        listed,
        listed_json,
    ) = bilayer_all(
        [
            ("query", "author", alice, *node, "--json"),
            ("query", "author", bob, *node, "--json"),
            ("query", "tips", *node, "--json"),
            ("query", "tips", *node),
            ("query", "evidence", *node, "--json"),
            ("query", "evidence", *node),
            ("query", "status", *node, "--json"),
            ("query", "entry", "ab" * 32, *node),
            ("query", "entry", "ab" * 32, *node, "--json"),
            ("localnet", "status", "--dir", net_dir),
            ("localnet", "status", "--dir", net_dir, "--json"),
        ]
    )
    assert author.code == 0, author
    assert author.json() == {"address": alice, "next_seq": 2, "head": transfer["id"]}
    assert fresh.json()["next_seq"] == 0 and fresh.json()["head"] is None

    assert tips.code == 0, tips
    assert tips.json() == {"count": 1, "tips": [transfer["id"]]}
    assert human_tips.code == 0 and "1 tips" in human_tips.out and transfer["id"] in human_tips.out

    assert evidence.code == 0, evidence
    assert evidence.json() == {"forks": [], "equivocations": []}
    assert "0 forks" in human_evidence.out

    assert status.json()["entries"] == 2

    assert_error(missing, "not_found")
    assert_json_error(missing_json, "not_found")

    assert listed.code == 0, listed
    assert "ledger0" in listed.out and url in listed.out and single_node["chain_id"] in listed.out
    rows = listed_json.json()["nodes"]
    assert len(rows) == 1
    assert rows[0]["name"] == "ledger0" and rows[0]["running"] is True and rows[0]["entries"] == 2


def test_localnet_status_of_missing_directory(tmp_path: Path) -> None:
    message = assert_error(bilayer("localnet", "status", "--dir", str(tmp_path / "none")), "localnet_error")
    assert "localnet up" in message


@pytest.fixture
def localnet_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "net"
    try:
        yield directory
    finally:
        manifest = directory / "localnet.json"
        if manifest.exists() and any(n.get("pid") for n in json.loads(manifest.read_text())["nodes"]):
            bilayer("localnet", "down", "--dir", str(directory), "--json", timeout=60)


def test_localnet_up_status_down(localnet_dir: Path) -> None:
    directory = str(localnet_dir)
    up = bilayer(
        "localnet", "up", "--validators", "0", "--ledger-nodes", "2", "--dir", directory, "--pow-bits", "4",
        "--timeout", "30", "--json",
    )
    assert up.code == 0, up
    manifest = up.json()
    assert [n["name"] for n in manifest["nodes"]] == ["ledger0", "ledger1"]
    assert manifest["funded_keys"] == ["alice", "bob", "carol", "dave"]
    assert all(n["api_url"].startswith("http://127.0.0.1:") for n in manifest["nodes"])
    assert all(isinstance(n["pid"], int) for n in manifest["nodes"])
    genesis = json.loads(Path(manifest["genesis"]).read_text())
    assert genesis["params"]["pow_bits"] == 4

    status = bilayer("localnet", "status", "--dir", directory, "--json")
    assert status.code == 0, status
    rows = status.json()["nodes"]
    assert [r["name"] for r in rows] == ["ledger0", "ledger1"]
    assert all(r["running"] is True and r["healthy"] is True and "error" not in r for r in rows), rows

    again = bilayer("localnet", "up", "--dir", directory, "--json")
    assert again.code == 0, again
    assert [n["pid"] for n in again.json()["nodes"]] == [n["pid"] for n in manifest["nodes"]]

    down = bilayer("localnet", "down", "--dir", directory, "--json", timeout=60)
    assert down.code == 0, down
    assert sorted(down.json()["stopped"]) == ["ledger0", "ledger1"]

    after = bilayer("localnet", "status", "--dir", directory, "--json").json()["nodes"]
    assert all(r["running"] is False and "error" in r for r in after), after
    assert bilayer("localnet", "down", "--dir", directory, "--json").json() == {"stopped": []}

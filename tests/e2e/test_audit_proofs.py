"""Audit proofs: made from a chain finalized in process on SQLite, checked offline against
genesis alone, and refused, with a code naming the part, when any part is tampered with."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bilayer import codec
from bilayer.api.status import error_status
from bilayer.audit.export import ExportQuery, Package, build_package, verify_directory, verify_document, write_package
from bilayer.audit.proof import (
    AccountProof,
    EntryProof,
    StateProof,
    ValidatorChangeProof,
    decode_proof,
    encode_proof,
    prove_account,
    prove_entry,
    verify_proof,
)
from bilayer.bench.proof import ChainBuilder, seeded
from bilayer.consensus.messages import CommitSignature, FinalizedCheckpoint, VoteType, sign_vote
from bilayer.errors import BilayerError, NotFound, NotYetProvable, ProofInvalid
from bilayer.execution.executor import EntryResult, Outcome
from bilayer.execution.governance.freezes import frozen_key
from bilayer.execution.governance.validator_set import validator_change_key
from bilayer.execution.merkle import leaf_hash, root_from_inclusion
from bilayer.genesis import Genesis, write_genesis
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import Data, FreezeAccount, RedactEntries, RegReview, SetInterceptionRule
from bilayer.node.metrics import NodeMetrics
from tests.support.cli import UNREACHABLE, assert_error, bilayer, bilayer_all
from tests.support.openapi import _check, app_for, document, proof_source_of

NEWCOMER = seeded(9, 4)


class Built:
    """h1 adds NEWCOMER (proposal 1; it governs from h3) and orders a transfer to bob; h2 a
    transfer, two data entries with payloads and a freeze of bob (proposal 2); h3 a transfer
    the freeze refuses and the redaction of one data entry (proposal 3); h4 one more transfer,
    so everything up to h3 is provable."""

    def __init__(self, path: Path) -> None:
        self.builder = builder = ChainBuilder(path)
        builder.add_validator(NEWCOMER)
        self.t1 = builder.transfer(5)
        builder.checkpoint()
        self.t2 = builder.transfer(7)
        self.data = builder.write(builder.alice, Data(media_type="text/plain"), b"the minutes of the meeting")
        self.personal = builder.write(builder.alice, Data(media_type="text/plain"), b"a home address")
        self.freeze = builder.decide(FreezeAccount(account=builder.bob.public_key))
        builder.checkpoint()
        self.t3 = builder.transfer(11)
        self.redaction = builder.decide(RedactEntries(entries=(self.personal,), reason_code="personal_data"))
        builder.checkpoint()
        self.t4 = builder.transfer(13)
        builder.checkpoint()
        self.genesis = builder.genesis
        self.source = builder.source()


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Built]:
    chain = Built(tmp_path / "chain.sqlite")
    yield chain
    chain.builder.close()


def as_json(proof: EntryProof | AccountProof) -> dict[str, Any]:
    return dict(json.loads(encode_proof(proof)))


def tampered(proof: EntryProof | AccountProof, change: Callable[[dict[str, Any]], None]) -> EntryProof | AccountProof:
    """The proof after editing its JSON, as an attacker holding the file would."""
    document = as_json(proof)
    change(document)
    return decode_proof(json.dumps(document).encode())


def refused(proof: EntryProof | AccountProof, genesis: Genesis) -> str:
    with pytest.raises(ProofInvalid) as caught:
        verify_proof(proof, genesis)
    return caught.value.code


def b64_flip(text: str, position: int = 0) -> str:
    raw = bytearray(msgspec.json.decode(json.dumps(text).encode(), type=bytes))
    raw[position] ^= 1
    return msgspec.json.encode(bytes(raw)).decode().strip('"')


def resign(finalized: dict[str, Any], signers: list[Any]) -> None:
    """Make a certificate of valid precommits of `signers` for the checkpoint it is attached to."""
    checkpoint = msgspec.convert(finalized, FinalizedCheckpoint).checkpoint
    finalized["certificate"]["value_id"] = msgspec.to_builtins(checkpoint.id)
    finalized["certificate"]["signatures"] = [
        msgspec.to_builtins(CommitSignature(s.public_key, sign_vote(s, checkpoint.chain, checkpoint.height, 0,
                                                                    VoteType.PRECOMMIT, checkpoint.id).signature))
        for s in signers]


# --- what a valid proof says --------------------------------------------------------------------


def test_an_entry_proof_verifies_offline_and_says_what_it_proves(built: Built) -> None:
    proof = decode_proof(encode_proof(prove_entry(built.source, built.t3)))
    summary = verify_proof(proof, built.genesis)
    assert summary["entry"] == built.t3.hex()
    assert (summary["outcome"], summary["reason"], summary["cause"]) == ("REJECTED", "account_frozen", "proposal:2")
    assert summary["height"] == 3 and summary["certified_by"] == 4
    assert summary["validator_changes"] == 1  # the newcomer's change, certified by the genesis set
    assert summary["payload"] == "present"


def test_a_proof_before_and_after_a_set_change_each_use_the_set_of_their_heights(built: Built) -> None:
    # t1: ordered at 1 and certified at 2, both by the genesis set; the change was executed at 1
    summary = verify_proof(prove_entry(built.source, built.t1), built.genesis)
    assert summary["height"] == 1 and summary["validator_changes"] == 1
    # the certificate of height 4 needs the newcomer's set: 3 of the old 4 signers are not enough
    proof = prove_entry(built.source, built.t3)
    assert len(proof.certified_by.certificate.signatures) == 5


def test_the_payload_is_proven_and_a_redacted_one_leaves_its_tombstone_and_stays_provable(built: Built) -> None:
    proof = prove_entry(built.source, built.data)
    assert proof.entry.payload == b"the minutes of the meeting"
    assert verify_proof(proof, built.genesis)["payload"] == "present"
    redacted = prove_entry(built.source, built.personal)
    assert redacted.entry.payload is None and redacted.entry.tombstone is not None
    assert verify_proof(redacted, built.genesis)["payload"] == "withheld by proposal:3 (personal_data)"


def test_an_entry_proof_whose_height_was_pruned_anchors_its_validator_chain_at_the_latest(built: Built) -> None:
    fresh = {id_: prove_entry(built.source, id_) for id_ in (built.t1, built.t2, built.t3)}
    assert all(proof.validators.anchor is None for proof in fresh.values())  # each rests on its own h+1
    built.source.storage.prune_state(3)  # keep the states after heights 3 and 4 only
    older = prove_entry(built.source, built.t1)
    # the change count is proven at height 3, signed by checkpoint 4; the change's own record was
    # proven when it executed (height 1, whose state is gone) and kept
    assert older.validators.anchor is not None and older.validators.anchor.checkpoint.height == 4
    assert older.certified_by.checkpoint.height == 2
    assert verify_proof(older, built.genesis) == verify_proof(fresh[built.t1], built.genesis)
    assert encode_proof(prove_entry(built.source, built.t3)) == encode_proof(fresh[built.t3])


def test_an_anchor_must_be_certified_and_never_below_the_proven_height(built: Built) -> None:
    later = prove_entry(built.source, built.t3)  # rests on checkpoint 4
    built.source.storage.prune_state(3)
    older = prove_entry(built.source, built.t1)
    assert older.validators.anchor is not None

    # an anchor older than the checkpoint the proof rests on could hide the changes that govern it
    def old_anchor(d: dict[str, Any]) -> None:
        d["validators"]["anchor"] = as_json(older)["certified_by"]
    assert refused(tampered(later, old_anchor), built.genesis) == "validator_chain_incomplete"

    # an anchor whose certificate is not a quorum's
    def unsigned(d: dict[str, Any]) -> None:
        d["validators"]["anchor"]["certificate"]["signatures"] = d["validators"]["anchor"]["certificate"][
            "signatures"][:1]
    assert refused(tampered(older, unsigned), built.genesis) == "certificate_no_quorum"

    # with its anchor removed, the count proven at height 3 does not match the root checkpoint 2 signs
    assert refused(tampered(older, lambda d: d["validators"].update(anchor=None)), built.genesis) == \
        "validator_chain_incomplete"


def test_an_entry_of_the_latest_checkpoint_is_not_yet_provable(built: Built) -> None:
    with pytest.raises(NotYetProvable) as caught:
        prove_entry(built.source, built.t4)
    assert caught.value.code == "not_yet_provable" and error_status(caught.value.code) == 409
    with pytest.raises(NotFound):
        prove_entry(built.source, b"\x01" * 32)


def test_an_account_proof_shows_balances_and_head_against_a_certified_state_root(built: Built) -> None:
    proof = decode_proof(encode_proof(prove_account(built.source, built.builder.bob.address)))
    summary = verify_proof(proof, built.genesis)
    assert summary["height"] == 3 and summary["certified_by"] == 4
    assert summary["balances"] == {"BLY": 5 + 7}  # t3 was refused; t4 is in height 4, not yet certified
    assert summary["next_seq"] == 0 and summary["frozen_by"] == "proposal:2"
    assert summary["proven_absent"] == ["banned_by", "emergency_freeze", "identity", "next_seq"]
    alice = verify_proof(prove_account(built.source, built.builder.alice.address, "BLY"), built.genesis)
    assert alice["balances"] == {"BLY": 10**12 - 12} and alice["next_seq"] == 5
    # not frozen, not banned: proven by absence, not merely unmentioned
    assert alice["frozen_by"] is None and alice["banned_by"] is None and alice["emergency_freeze"] is None
    assert {"frozen_by", "banned_by", "emergency_freeze"} <= set(alice["proven_absent"])
    gold = verify_proof(prove_account(built.source, built.builder.bob.address, "GOLD"), built.genesis)
    assert gold["balances"] == {"GOLD": 0}  # no leaf: a zero balance proven by absence


def test_an_account_proof_of_an_older_height_comes_from_the_store_and_a_pruned_one_is_refused(built: Built) -> None:
    bob = built.builder.bob.address
    before = verify_proof(decode_proof(encode_proof(prove_account(built.source, bob, height=1))), built.genesis)
    assert before["height"] == 1 and before["certified_by"] == 2
    assert before["balances"] == {"BLY": 5} and before["frozen_by"] is None  # the freeze executed at height 2
    after = verify_proof(prove_account(built.source, bob, height=2), built.genesis)
    assert after["frozen_by"] == "proposal:2" and after["balances"] == {"BLY": 12}
    with pytest.raises(NotYetProvable):
        prove_account(built.source, bob, height=4)  # signed by checkpoint 5, which does not exist
    built.source.storage.prune_state(2)
    with pytest.raises(BilayerError) as caught:
        prove_account(built.source, bob, height=1)
    assert caught.value.code == "state_version_pruned" and error_status(caught.value.code) == 410
    assert verify_proof(prove_account(built.source, bob, height=2), built.genesis)["frozen_by"] == "proposal:2"


# --- tampering with each part -------------------------------------------------------------------


def test_tampering_with_the_entry_is_refused_with_its_code(built: Built) -> None:
    proof = prove_entry(built.source, built.data)
    genesis = built.genesis

    def other_header(d: dict[str, Any]) -> None:
        header = codec.decode(proof.entry.header, EntryHeader)
        forged = msgspec.structs.replace(header, time_ms=header.time_ms + 1)
        d["entry"]["header"] = msgspec.json.encode(codec.encode(forged)).decode().strip('"')

    assert refused(tampered(proof, other_header), genesis) == "entry_signature_invalid"
    assert refused(tampered(proof, lambda d: d["entry"].update(signature=b64_flip(d["entry"]["signature"]))),
                   genesis) == "entry_signature_invalid"
    assert refused(tampered(proof, lambda d: d["entry"].update(payload=b64_flip(d["entry"]["payload"]))),
                   genesis) == "payload_mismatch"
    assert refused(tampered(proof, lambda d: d["entry"].update(header=b64_flip(d["entry"]["header"], 0))),
                   genesis) == "entry_malformed"


def test_tampering_with_the_result_or_its_path_is_refused(built: Built) -> None:
    proof = prove_entry(built.source, built.t2)
    genesis = built.genesis
    assert refused(tampered(proof, lambda d: d["result"].update(outcome="REJECTED", code="insufficient_funds")),
                   genesis) == "result_path_invalid"
    assert refused(tampered(proof, lambda d: d["result"].update(cause="proposal:1")), genesis) == "result_path_invalid"
    assert refused(tampered(proof, lambda d: d["result"].update(index=d["result"]["index"] ^ 1)),
                   genesis) == "result_path_invalid"
    assert refused(tampered(proof, lambda d: d["result"]["path"].__setitem__(0, b64_flip(d["result"]["path"][0]))),
                   genesis) == "result_path_invalid"
    assert refused(tampered(proof, lambda d: d["result"]["path"].pop()), genesis) == "result_path_invalid"


def test_a_proven_position_cannot_be_moved_to_another_size_the_same_path_reaches(built: Built) -> None:
    """An RFC 6962 path can verify at another index of another tree size; the signed results
    root commits to the count, so every such move is refused."""
    proof = prove_entry(built.source, built.t2)
    r = proof.result
    leaf = leaf_hash(EntryResult(bytes.fromhex(verify_proof(proof, built.genesis)["entry"]), Outcome(r.outcome),
                                 r.code, r.cause).leaf())
    tree_root = root_from_inclusion(leaf, r.index, r.size, r.path)
    moves = [(index, size) for size in range(1, 2 * r.size + 64) for index in range(size)
             if (index, size) != (r.index, r.size) and root_from_inclusion(leaf, index, size, r.path) == tree_root]
    assert moves, "the path reaches its tree root from no other position: the case this guards is not exercised"
    for index, size in moves[:8]:
        moved = tampered(proof, lambda d, i=index, n=size: d["result"].update(index=i, size=n))
        assert refused(moved, built.genesis) == "result_path_invalid"
    assert refused(tampered(proof, lambda d: d["result"].update(size=d["result"]["size"] + 1)),
                   built.genesis) == "result_path_invalid"


def test_tampering_with_certificates_is_refused_naming_what_failed(built: Built) -> None:
    proof = prove_entry(built.source, built.t3)
    genesis = built.genesis

    def flip_signature(d: dict[str, Any]) -> None:
        signature = d["certified_by"]["certificate"]["signatures"][0]
        signature[1] = b64_flip(signature[1])

    assert refused(tampered(proof, flip_signature), genesis) == "certificate_signature_invalid"
    assert refused(tampered(proof, lambda d: d["certified_by"]["certificate"]["signatures"].__delitem__(
        slice(0, 2))), genesis) == "certificate_no_quorum"
    stranger = seeded(77, 5)
    assert refused(tampered(proof, lambda d: resign(d["certified_by"], [*built.builder.validator_keys, stranger])),
                   genesis) == "certificate_unknown_signer"
    assert refused(tampered(proof, lambda d: d["ordered_in"]["certificate"]["signatures"].__delitem__(slice(0, 3))),
                   genesis) == "certificate_no_quorum"
    # a certificate moved from another checkpoint
    other = as_json(prove_entry(built.source, built.t2))
    moved = other["certified_by"]["certificate"]
    assert refused(tampered(proof, lambda d: d["certified_by"].update(certificate=moved)),
                   genesis) == "certificate_mismatch"


def test_the_results_root_must_be_signed_by_the_next_checkpoint_of_the_same_chain(built: Built) -> None:
    proof = prove_entry(built.source, built.t3)
    other = as_json(prove_entry(built.source, built.t1))
    assert refused(tampered(proof, lambda d: d.update(ordered_in=other["ordered_in"])),
                   built.genesis) == "checkpoint_link_invalid"
    assert refused(tampered(proof, lambda d: d.update(certified_by=other["certified_by"])),
                   built.genesis) == "checkpoint_link_invalid"


def test_a_wrong_genesis_is_refused(built: Built) -> None:
    proof = prove_entry(built.source, built.t3)
    other = msgspec.structs.replace(built.genesis, chain_id="another-chain")
    assert refused(proof, other) == "genesis_mismatch"
    richer = msgspec.structs.replace(built.genesis, genesis_time_ms=built.genesis.genesis_time_ms + 1)
    assert refused(proof, richer) == "genesis_mismatch"


def test_forged_or_omitted_validator_changes_are_refused(built: Built) -> None:
    proof = prove_entry(built.source, built.t3)
    assert isinstance(proof, EntryProof)
    genesis = built.genesis
    change = proof.validators.changes[0]

    # a record edited to claim another set: its state proof no longer leads to the signed root
    def other_set(d: dict[str, Any]) -> None:
        d["validators"]["changes"][0]["record"]["value"] = b64_flip(d["validators"]["changes"][0]["record"]["value"],
                                                                    -3)
    assert refused(tampered(proof, other_set), genesis) in ("validator_change_invalid",)

    # a whole forged change: attackers' own set, a made-up state, signed by themselves
    attackers = [seeded(i, 6) for i in range(4)]
    forged_record = msgspec.structs.replace(change.record, key=validator_change_key(2))
    forged_checkpoint = msgspec.structs.replace(change.checkpoint.checkpoint, state_root=b"\x00" * 32)
    forged = ValidatorChangeProof(forged_record, FinalizedCheckpoint(forged_checkpoint, change.checkpoint.certificate))
    document = as_json(proof)
    document["validators"]["changes"][0] = msgspec.to_builtins(forged)
    resign(document["validators"]["changes"][0]["checkpoint"], attackers)
    assert refused(decode_proof(json.dumps(document).encode()), genesis) == "certificate_unknown_signer"

    # the change left out: the newcomer's signature on height 4 is by no validator the verifier knows
    assert refused(tampered(proof, lambda d: d["validators"].update(changes=[])), genesis) == \
        "certificate_unknown_signer"

    # left out, and the newcomer's signature dropped (the old four are still a quorum of the old set): the
    # certified state counts two changes and the proof walks one
    def omitted(d: dict[str, Any]) -> None:
        d["validators"]["changes"] = []
        d["certified_by"]["certificate"]["signatures"] = [
            s for s in d["certified_by"]["certificate"]["signatures"]
            if s[0] != msgspec.json.encode(NEWCOMER.public_key).decode().strip('"')]
    assert refused(tampered(proof, omitted), genesis) == "validator_chain_incomplete"

    # a count proven against nothing the anchor signs
    def other_count(d: dict[str, Any]) -> None:
        d["validators"]["count"] = msgspec.to_builtins(StateProof(**{**msgspec.structs.asdict(
            proof.validators.count), "value": codec.encode(1)}))
    assert refused(tampered(proof, other_count), genesis) == "validator_chain_incomplete"


def test_tampering_with_an_account_proof_is_refused(built: Built) -> None:
    proof = prove_account(built.source, built.builder.bob.address, "BLY")
    genesis = built.genesis

    def richer(d: dict[str, Any]) -> None:
        d["items"][0]["value"] = msgspec.json.encode(codec.encode(10**9)).decode().strip('"')

    assert refused(tampered(proof, richer), genesis) == "state_proof_invalid"
    assert refused(tampered(proof, lambda d: d.update(address=built.builder.alice.address)),
                   genesis) == "state_proof_invalid"
    assert refused(tampered(proof, lambda d: d.update(height=1)), genesis) == "checkpoint_link_invalid"

    # alice is not frozen: her absence proof cannot be turned into a freeze, dropped, or bent
    alice = prove_account(built.source, built.builder.alice.address, "BLY")
    frozen = next(i for i, item in enumerate(alice.items) if item.key == frozen_key(built.builder.alice.public_key))
    assert alice.items[frozen].value is None

    def claims_frozen(d: dict[str, Any]) -> None:
        d["items"][frozen]["value"] = msgspec.json.encode(codec.encode(9)).decode().strip('"')

    def bent(d: dict[str, Any]) -> None:
        siblings = d["items"][frozen]["proof"][1]
        siblings[-1] = b64_flip(siblings[-1])

    assert refused(tampered(alice, claims_frozen), genesis) == "state_proof_invalid"
    assert refused(tampered(alice, lambda d: d["items"].pop(frozen)), genesis) == "state_proof_invalid"
    assert refused(tampered(alice, bent), genesis) == "state_proof_invalid"
    # and bob's freeze cannot be proven away: his leaf is there, so no absence proof verifies
    bob = prove_account(built.source, built.builder.bob.address, "BLY")
    index = next(i for i, item in enumerate(bob.items) if item.key == frozen_key(built.builder.bob.public_key))
    assert refused(tampered(bob, lambda d: d["items"][index].update(value=None)), genesis) == "state_proof_invalid"


def test_garbage_is_refused_as_malformed() -> None:
    for data in (b"", b"{}", b"[1,2]", b'{"type": "entry", "format": 1}', b"\xff\x00"):
        with pytest.raises(ProofInvalid) as caught:
            decode_proof(data)
        assert caught.value.code == "proof_malformed"


# --- evidence export ----------------------------------------------------------------------------


def test_an_export_lists_the_accounts_entries_in_the_window_and_verifies(built: Built, tmp_path: Path) -> None:
    first, last = (built.source.finalized(h).checkpoint.time_ms for h in (2, 4))
    package = build_package(built.source, built.builder.chain.state,
                            ExportQuery(built.builder.bob.address, from_ms=first, to_ms=last))
    manifest = package.manifest
    assert [item.id for item in manifest.entries] == [built.t2.hex(), built.t3.hex()]  # t1 is before the window
    assert {item.role for item in manifest.entries} == {"received"}
    assert [u.id for u in manifest.unproven] == [built.t4.hex()]
    # the freeze behind t3's refusal travels with it: the proposal, the votes that passed it and its
    # execution, each proven
    assert [item.role for item in manifest.acts] == ["proposal:2 proposed", "proposal:2 voted", "proposal:2 voted",
                                                     "proposal:2 executed"]
    summary = verify_document(package)
    assert summary["entries"] == 2 and summary["unproven"] == 1 and summary["acts"] == 4
    assert summary["outcomes"] == {"FINAL": 1, "REJECTED": 1}

    # the same window by heights
    by_height = build_package(built.source, built.builder.chain.state,
                              ExportQuery(built.builder.bob.address, from_height=2, to_height=4))
    assert by_height.manifest.entries == manifest.entries and verify_document(by_height)["entries"] == 2

    out = tmp_path / "evidence"
    write_package(package, out)
    assert verify_directory(out, built.genesis)["entries"] == 2

    # every file is hashed in the manifest: any edit is caught before any proof is read
    victim = out / manifest.entries[0].file
    victim.write_text(victim.read_text().replace('"FINAL"', '"REJECTED"'))
    with pytest.raises(ProofInvalid) as caught:
        verify_directory(out)
    assert caught.value.code == "export_hash_mismatch"


def test_an_export_refuses_an_entry_that_does_not_concern_the_account(built: Built) -> None:
    first, last = (built.source.finalized(h).checkpoint.time_ms for h in (1, 4))
    bob = build_package(built.source, built.builder.chain.state, ExportQuery(built.builder.bob.address, first, last))
    alice = build_package(built.source, built.builder.chain.state,
                          ExportQuery(built.builder.alice.address, first, last))
    assert built.data.hex() in {item.id for item in alice.manifest.entries}
    # slip alice's data entry into bob's package, hashes and all
    item = next(i for i in alice.manifest.entries if i.id == built.data.hex())
    files = {**bob.files, item.file: alice.files[item.file]}
    digests = {**bob.manifest.files, item.file: alice.manifest.files[item.file]}
    forged_item = msgspec.structs.replace(item, role="received")
    manifest = msgspec.structs.replace(bob.manifest, entries=(*bob.manifest.entries, forged_item), files=digests)
    with pytest.raises(ProofInvalid) as caught:
        verify_document(msgspec.structs.replace(bob, manifest=manifest, files=files))
    assert caught.value.code == "export_entry_unrelated"


def test_an_export_carries_the_accounts_state_with_absence_proofs_checked_offline(built: Built) -> None:
    alice = build_package(built.source, built.builder.chain.state, ExportQuery(built.builder.alice.address))
    assert alice.manifest.account == "account.json" and "account.json" in alice.manifest.files
    state = verify_document(alice)["account_state"]
    assert state["frozen_by"] is None and state["banned_by"] is None  # proven, at the latest certified height
    assert {"frozen_by", "banned_by", "emergency_freeze"} <= set(state["proven_absent"])
    bob = build_package(built.source, built.builder.chain.state, ExportQuery(built.builder.bob.address))
    assert verify_document(bob)["account_state"]["frozen_by"] == "proposal:2"

    def rehashed(package: Package, text: str) -> Package:
        files = {**package.files, "account.json": text}
        digests = {**package.manifest.files, "account.json": hashlib.sha256(text.encode()).hexdigest()}
        return msgspec.structs.replace(package, files=files,
                                       manifest=msgspec.structs.replace(package.manifest, files=digests))

    # a tamperer who rewrites the hashes too: bob's freeze proven away, or alice's proof passed off as bob's
    document = json.loads(bob.files["account.json"])
    frozen = frozen_key(built.builder.bob.public_key)
    for item in document["items"]:
        if msgspec.json.decode(json.dumps(item["key"]).encode(), type=bytes) == frozen:
            item["value"] = None
    for forged, code in ((json.dumps(document), "state_proof_invalid"),
                         (alice.files["account.json"], "export_entry_unrelated")):
        with pytest.raises(ProofInvalid) as caught:
            verify_document(rehashed(bob, forged))
        assert caught.value.code == code
    # and a package without its account proof is not complete
    files = {k: v for k, v in bob.files.items() if k != "account.json"}
    digests = {k: v for k, v in bob.manifest.files.items() if k != "account.json"}
    with pytest.raises(ProofInvalid) as caught:
        verify_document(msgspec.structs.replace(bob, files=files, manifest=msgspec.structs.replace(
            bob.manifest, files=digests)))
    assert caught.value.code == "export_file_missing"


def test_an_export_carries_the_review_that_released_a_held_transfer(tmp_path: Path) -> None:
    builder = ChainBuilder(tmp_path / "held.sqlite")
    try:
        rule = builder.decide(SetInterceptionRule(rule_id="large", min_amount=1000, asset="BLY", outcome="hold"))
        builder.checkpoint()
        held = builder.transfer(5000)
        builder.checkpoint()
        release = builder.write(builder.regulator, RegReview(entry=held, decision="release", reason="documents seen"))
        builder.checkpoint()
        builder.transfer(1)
        builder.checkpoint()
        source = builder.source()
        package = build_package(source, builder.chain.state, ExportQuery(builder.bob.address))
    finally:
        builder.close()
    assert [(item.id, item.role) for item in package.manifest.entries] == [(held.hex(), "received")]
    roles = {item.id: item.role for item in package.manifest.acts}
    assert roles[release.hex()] == f"review of {held.hex()}"
    assert sorted(roles[i] for i in roles if i != release.hex()) == [
        f"proposal:{rule} executed", f"proposal:{rule} proposed", f"proposal:{rule} voted", f"proposal:{rule} voted"]
    summary = verify_document(package)
    assert summary["outcomes"] == {"HELD": 1} and summary["acts"] == 5


# --- the command line, offline ------------------------------------------------------------------


def test_cli_verifies_a_proof_file_offline_and_names_a_failure(built: Built, tmp_path: Path) -> None:
    genesis_file = tmp_path / "genesis.json"
    write_genesis(built.genesis, genesis_file)
    good = tmp_path / "proof.json"
    good.write_bytes(encode_proof(prove_entry(built.source, built.t3)))
    result = bilayer("audit", "verify", str(good), "--genesis", str(genesis_file), "--json")
    assert result.code == 0, result
    assert result.json()["entry"] == built.t3.hex() and result.json()["valid"] is True
    human = bilayer("audit", "verify", str(good), "--genesis", str(genesis_file))
    assert human.code == 0 and human.out.startswith("VALID: entry"), human

    bad = tmp_path / "bad.json"
    bad.write_bytes(encode_proof(tampered(prove_entry(built.source, built.t3),
                                          lambda d: d["result"].update(outcome="FINAL", code="", cause=""))))
    assert "results root" in assert_error(bilayer("audit", "verify", str(bad), "--genesis", str(genesis_file)),
                                          "result_path_invalid")
    assert_error(bilayer("audit", "verify", str(good)), "bad_request")  # a single proof needs the genesis
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    assert_error(bilayer("audit", "verify", str(garbage), "--genesis", str(genesis_file)), "proof_malformed")


# --- the routes ---------------------------------------------------------------------------------


def test_routes_serve_proofs_and_packages_and_refuse_bad_requests_with_codes(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bilayer.audit import export

    builder = built.builder
    node = SimpleNamespace(metrics=NodeMetrics(), chain=builder.chain, storage=builder.storage,
                           genesis=builder.genesis, ingest=SimpleNamespace(dag=builder.dag),
                           proof_source=proof_source_of(builder))
    window = f"from=0&to={10**13}"
    asks = [
        ("/v1/audit/proof/{entry_id}", f"/v1/audit/proof/{built.t3.hex()}"),
        ("/v1/audit/proof/{entry_id}", f"/v1/audit/proof/{built.t4.hex()}"),
        ("/v1/audit/proof/{entry_id}", f"/v1/audit/proof/{'ab' * 32}"),
        ("/v1/audit/proof/{entry_id}", "/v1/audit/proof/xyz"),
        ("/v1/audit/state-proof/{address}", f"/v1/audit/state-proof/{builder.bob.address}?asset=BLY"),
        ("/v1/audit/state-proof/{address}", f"/v1/audit/state-proof/{builder.bob.address}?asset=bly"),
        ("/v1/audit/state-proof/{address}", "/v1/audit/state-proof/bl1nobody"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}&{window}"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}&from=yesterday&to=1"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}&from_height=0"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}&to={'9' * 5000}"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}&from_height=3&to_height=3"),
        ("/v1/audit/export", f"/v1/audit/export?account={builder.bob.address}&from=2030-01-01T00:00:00Z&to=1"),
    ]

    async def scenario() -> list[tuple[str, int, Any]]:
        answers = []
        async with TestClient(TestServer(app_for(node))) as client:
            for template, url in asks:
                response = await client.get(url)
                answers.append((template, response.status, await response.json()))
            monkeypatch.setattr(export, "MAX_EXPORT_ITEMS", 1)
            response = await client.get(f"/v1/audit/export?account={builder.bob.address}&{window}")
            answers.append(("/v1/audit/export", response.status, await response.json()))
        return answers

    answers = asyncio.run(asyncio.wait_for(scenario(), 60))
    doc = document()
    for template, status, body in answers:
        _check(doc, template, status, body)
    assert [status for _, status, _ in answers] == [200, 409, 404, 400, 200, 400, 400, 200, 400, 400, 400, 400, 200,
                                                    400, 413]
    assert [body["error"]["code"] for _, status, body in answers if status != 200] == [
        "not_yet_provable", "not_found", "bad_request", "bad_request", "invalid_address", "bad_request",
        "bad_request", "bad_request", "bad_request", "bad_request", "export_too_large"]
    assert [item["id"] for item in answers[12][2]["manifest"]["entries"]] == [built.t3.hex()]
    entry = verify_proof(decode_proof(json.dumps(answers[0][2]).encode()), built.genesis)
    assert entry["entry"] == built.t3.hex()
    account = verify_proof(decode_proof(json.dumps(answers[4][2]).encode()), built.genesis)
    assert account["balances"] == {"BLY": 12}
    package = verify_document(msgspec.convert(answers[7][2], type=Package))
    assert package["entries"] == 3 and package["unproven"] == 1


# --- hostile files ------------------------------------------------------------------------------

_PROOFS: dict[str, bytes] = {}


def _sample_proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if not _PROOFS:
        chain = Built(tmp_path_factory.mktemp("fuzz") / "chain.sqlite")
        try:
            _PROOFS["entry"] = encode_proof(prove_entry(chain.source, chain.t3))
            _PROOFS["account"] = encode_proof(prove_account(chain.source, chain.builder.bob.address))
            _PROOFS["genesis"] = msgspec.json.encode(chain.genesis)
        finally:
            chain.builder.close()
    return _PROOFS


@pytest.mark.parametrize("kind", ["entry", "account"])
def test_any_corruption_of_a_proof_file_is_a_coded_error_never_a_crash_nor_another_claim(
    kind: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from bilayer.errors import BilayerError

    samples = _sample_proofs(tmp_path_factory)
    original, genesis = samples[kind], msgspec.json.decode(samples["genesis"], type=Genesis)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1, max_size=4))
    def corrupted(edits: list[tuple[int, int]]) -> None:
        data = bytearray(original)
        for position, value in edits:
            data[position] = value
        try:
            summary = verify_proof(decode_proof(bytes(data)), genesis)
        except BilayerError as exc:
            assert exc.code != "error" and exc.message
        else:  # an edit the format ignores may pass, but it never changes what is proven
            assert summary == expected

    expected = verify_proof(decode_proof(original), genesis)
    corrupted()


def test_cli_refuses_bad_audit_requests_before_reaching_a_node(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    address = seeded(1, 3).address
    results = bilayer_all([
        ["audit", "proof", "--node", UNREACHABLE],
        ["audit", "proof", "ab" * 32, "--account", address, "--node", UNREACHABLE],
        ["audit", "export", "--account", address, "--out", str(tmp_path / "new"), "--node", UNREACHABLE],
        ["audit", "export", "--account", address, "--from", "last tuesday", "--out", str(empty)],
        ["audit", "export", "--account", address, "--from", "0", "--out", str(full), "--node", UNREACHABLE],
        ["audit", "verify", str(empty)],
        ["audit", "proof", "ab" * 32, "--node", UNREACHABLE],
    ])
    codes = ["bad_request", "bad_request", "bad_request", "bad_request", "export_dir_not_empty", "export_file_missing",
             "node_unreachable"]
    for result, code in zip(results, codes, strict=True):
        assert_error(result, code)

"""Warehouse finance through the executor, as every node runs it: price marks, facilities,
the valuation at the end of each checkpoint and the margin-call state machine (WAREHOUSE.md
§6.9, §6.12 (6)), against figures computed by hand."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bilayer import codec
from bilayer.apps.warehouse.chain import query_exposure, query_facility, query_prices, query_valuation
from bilayer.apps.warehouse.errors import EvidenceInvalid
from bilayer.apps.warehouse.finance import FACILITY_TRANSITIONS, INFINITE_LTV, ex_vat, holdings, ltv_bp
from bilayer.apps.warehouse.keeper import Keeper, Queued, ValuedMemory, facility_key
from bilayer.apps.warehouse.operations import (
    AppointPublisher,
    CloseFacility,
    ConfirmPledge,
    Countersign,
    DeclareDefault,
    InvokePledge,
    OpenFacility,
    PublishPrice,
    ReleasePledge,
    ReportOutstanding,
    RequestPledge,
    SetFinanceBounds,
    TopUp,
)
from bilayer.apps.warehouse.records import FACILITY_STATES, Facility, Valuation
from bilayer.execution.executor import execute, genesis_state
from bilayer.execution.governance.context import ExecContext
from bilayer.keys.address import address_from_public_key
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import Operation
from tests.support.builders import seeded_signer
from tests.support.governance import PARAMS
from tests.support.ledger import FINAL, GENESIS, A, rejected
from tests.support.warehouse_ledger import BANK, BANK_B, BUYER, DEP, WH, WarehouseLedger

SPEC, OTHER_SPEC = "5.75x1500", "9.5x2000"
PUB, PUB2 = seeded_signer(50), seeded_signer(51)
START = date(2026, 11, 2)
NET_KG = 23_000  # each coil; a receipt of the three COILS holds 69 t
PRICE = 400_000  # 4,000.00 CNY per tonne, in fen
OWED = 19_320_000  # 70 % of 69 t at 4,000.00 CNY


class FinanceLedger(WarehouseLedger):
    """A warehouse with a pledged-receipt borrower (DEP), bank A's facility F1 and two publishers."""

    def __init__(self) -> None:
        super().__init__()
        self.onboard()
        self.ok((A, AppointPublisher(PUB.public_key, "Mysteel", ("mysteel_spot",), (SPEC, OTHER_SPEC))),
                (A, AppointPublisher(PUB2.public_key, "SHFE and NBS", ("shfe_settlement", "nbs_spot"), (SPEC,))))
        self.days = 0
        self.coils = 0

    @property
    def k(self) -> Keeper:
        return Keeper(self.state)

    def day(self, offset: int | None = None) -> str:
        return (START + timedelta(days=self.days if offset is None else offset)).isoformat()

    def mark(self, price: int, *, next_day: bool = True, signer: Signer = PUB, source: str = "mysteel_spot",
             kind: str = "spot", spec: str = SPEC) -> list[tuple[str, str]]:
        """One mark; by default on the next calendar day (a new trading day)."""
        if next_day:
            self.days += 1
        return self.step((signer, PublishPrice(spec, source, kind, self.day(), price)))  # type: ignore[arg-type]

    def receipt(self, coils: int) -> bytes:
        lots = []
        for _ in range(coils):
            self.coils += 1
            lots.append(self.intake(("MILL01", "H24A1187", f"C{self.coils:02d}"), NET_KG))
        return self.issue(tuple(lots), NET_KG * coils)

    def pledge(self, rid: bytes, facility: str = "F1") -> None:
        assert self.step((DEP, RequestPledge(rid, BANK.public_key, facility))) == [FINAL]
        offer = self.ids[-1]
        self.ok((BANK, ConfirmPledge(rid, offer)), (WH, Countersign(rid, offer)))

    def facility(self, name: str = "F1", bank: Signer = BANK) -> Facility:
        found = self.k.facility(bank.public_key, name)
        assert found is not None
        return found

    def valuation(self, name: str = "F1") -> Valuation:
        f = self.facility(name)
        found = self.k.valuation(f.bank, f.name, f.last_day)
        assert found is not None
        return found


def financed(owed: int = OWED, **terms: int) -> tuple[FinanceLedger, bytes]:
    """Day 1 at 4,000.00 CNY/t; 69 t pledged to F1; 70 % of its value owed."""
    ledger = FinanceLedger()
    rid = ledger.receipt(3)
    ledger.ok((BANK, OpenFacility("F1", DEP.public_key, 50_000_000, **terms)))  # type: ignore[arg-type]
    assert ledger.mark(PRICE) == [FINAL]
    ledger.pledge(rid)
    ledger.ok((BANK, ReportOutstanding("F1", owed, ledger.day())))
    return ledger, rid


def test_the_state_table_names_every_state_and_only_them() -> None:
    assert set(FACILITY_TRANSITIONS) == set(FACILITY_STATES)
    assert all(target in FACILITY_STATES for row in FACILITY_TRANSITIONS.values() for target in row.values())
    assert FACILITY_TRANSITIONS["closed"] == {}
    assert all(row["close"] == "closed" for state, row in FACILITY_TRANSITIONS.items() if state != "closed")


def test_the_arithmetic_of_section_6_9() -> None:
    """70 % at the start; a 10 % fall gives 77.8 % (WATCH); a 20 % fall gives 87.5 % (DEFAULT)."""
    ledger, rid = financed()
    v = ledger.valuation()
    assert (v.collateral, v.outstanding, v.ltv_bp, v.state) == (27_600_000, OWED, 7000, "performing")
    assert [(line.receipt, line.quantity_kg, line.price, line.source, line.value) for line in v.lines] == [
        (rid, 69_000, PRICE, "mysteel_spot", 27_600_000)]
    # headroom: how far collateral may fall before each line (ceil(owed / line))
    assert (v.headroom_warning, v.headroom_call, v.headroom_liquidation) == (
        27_600_000 - 25_090_910, 27_600_000 - 24_150_000, 27_600_000 - 22_206_897)
    ledger.ok((A, SetFinanceBounds(daily_limit_bp=2500)))  # let whole-step moves through
    assert ledger.mark(PRICE * 9 // 10) == [FINAL]
    v = ledger.valuation()
    assert (v.collateral, v.ltv_bp, v.state) == (24_840_000, 7778, "watch")
    assert ledger.mark(PRICE * 8 // 10) == [FINAL]
    v = ledger.valuation()
    assert (v.collateral, v.ltv_bp, v.state) == (22_080_000, 8750, "default")
    events = [(e.day, e.state, e.ltv_bp) for e in ledger.facility().events]
    assert events == [(ledger.day(2), "watch", 7778), (ledger.day(3), "default", 8750)]
    assert ltv_bp(0, 0) == 0 and ltv_bp(1, 0) == INFINITE_LTV
    assert ex_vat(452_000, True) == 400_000 and ex_vat(100, True) == 88 and ex_vat(100, False) == 100


def test_the_demo_path_watch_margin_call_and_cure_by_another_pledge() -> None:
    """§6.12 (6): a 12 % fall over two weeks in daily steps inside the 3 % limit -> 79.5 %
    WATCH; a further 3 % fall -> 82 % MARGIN_CALL; another receipt pledged -> CURED; below
    warning on the next valuation -> PERFORMING."""
    ledger, _ = financed()
    price = PRICE
    states = []
    for _ in range(10):
        price -= PRICE * 12 // 100 // 10
        assert ledger.mark(price) == [FINAL]
        states.append(ledger.facility().state)
    assert price == 352_000
    assert states[0] == "performing" and states[-1] == "watch" and "margin_call" not in states
    v = ledger.valuation()
    assert (v.ltv_bp, v.state, v.stale) == (7955, "watch", False)
    assert ledger.mark(price * 97 // 100) == [FINAL]  # exactly 3 %: inside the limit
    v = ledger.valuation()
    assert (v.lines[0].price, v.ltv_bp, v.state) == (341_440, 8201, "margin_call")
    f = ledger.facility()
    call_day = ledger.k.calendar().ordinal
    assert f.deadline_ordinal == call_day + 1
    ledger.pledge(ledger.receipt(1))  # cure: another receipt, the same trading day
    v = ledger.valuation()
    assert v.collateral == 23_559_360 + 7_853_120 and v.ltv_bp == 6151 and v.state == "cured"
    assert len(v.lines) == 2
    assert ledger.mark(341_440) == [FINAL]
    assert ledger.facility().state == "performing"
    assert [e.state for e in ledger.facility().events] == ["watch", "margin_call", "cured", "performing"]
    view = query_facility(ledger.state, {"bank": BANK.public_key.hex(), "name": "F1"})
    assert [h["ltv_bp"] for h in view["ltv_history"]][:1] == [7000]
    assert len(view["ltv_history"]) == 13 and view["facility"]["state"] == "performing"


def test_an_uncured_call_defaults_after_its_deadline() -> None:
    ledger, _ = financed(cure_days=1)
    ledger.ok((A, SetFinanceBounds(daily_limit_bp=1500)))
    assert ledger.mark(PRICE * 88 // 100) == [FINAL]  # 7955: watch
    assert ledger.mark(PRICE * 86 // 100) == [FINAL]  # 8140: margin call on this trading day
    assert ledger.facility().state == "margin_call"
    assert ledger.mark(PRICE * 86 // 100) == [FINAL]  # the deadline day: still in time
    assert ledger.facility().state == "margin_call"
    assert ledger.mark(PRICE * 86 // 100) == [FINAL]  # past it, uncured
    f = ledger.facility()
    assert f.state == "default" and f.events[-1].cause.startswith("margin call uncured")


def test_a_top_up_or_repayment_cures_a_call() -> None:
    ledger, _ = financed()
    ledger.ok((A, SetFinanceBounds(daily_limit_bp=1500)))
    assert ledger.mark(PRICE * 86 // 100) == [FINAL]
    assert ledger.facility().state == "margin_call"
    ledger.ok((BANK, TopUp("F1", 2_000_000)))
    v = ledger.valuation()
    assert (v.cash, v.collateral, v.state) == (2_000_000, 23_736_000 + 2_000_000, "cured")
    assert ledger.mark(PRICE * 78 // 100) == [FINAL]  # the call again
    assert ledger.facility().state == "margin_call"
    ledger.ok((BANK, ReportOutstanding("F1", 15_000_000, ledger.day())))  # a repayment
    assert ledger.facility().state == "cured"


def test_default_then_enforcement_the_bank_holds_the_receipt_then_close() -> None:
    ledger, rid = financed()
    ledger.ok((A, SetFinanceBounds(daily_limit_bp=2500)))
    assert ledger.mark(PRICE * 8 // 10) == [FINAL]
    assert ledger.facility().state == "default"
    ledger.ok((BANK, DeclareDefault(rid, 0)))  # no cure period: the facility is in default
    assert ledger.facility().state == "enforcement"
    ledger.ok((BANK, InvokePledge(rid)))
    receipt = ledger.k.receipt(rid)
    assert receipt is not None and (receipt.status, receipt.holder) == ("active", BANK.public_key)
    assert ledger.k.facility_pledges(BANK.public_key, "F1") == []
    assert ledger.step((BANK, CloseFacility("F1"))) == [rejected("warehouse.facility_not_closable")]
    ledger.ok((BANK, ReportOutstanding("F1", 0, ledger.day())))
    ledger.ok((BANK, CloseFacility("F1")))
    assert [e.state for e in ledger.facility().events] == ["default", "enforcement", "closed"]
    assert ledger.step((BANK, TopUp("F1", 1))) == [rejected("warehouse.facility_closed")]


def test_publishers_are_held_to_their_appointment() -> None:
    ledger = FinanceLedger()
    day = ledger.day(1)
    assert ledger.step((PUB, PublishPrice("7x1250", "mysteel_spot", "spot", day, PRICE))) == [
        rejected("warehouse.spec_not_appointed")]
    assert ledger.step((PUB, PublishPrice(SPEC, "shfe_settlement", "settlement", day, PRICE))) == [
        rejected("warehouse.source_not_appointed")]
    assert ledger.step((DEP, PublishPrice(SPEC, "mysteel_spot", "spot", day, PRICE))) == [
        rejected("warehouse.not_publisher")]
    assert ledger.step((PUB, AppointPublisher(DEP.public_key, "self", ("x",), (SPEC,)))) == [
        rejected("warehouse.not_council")]
    assert ledger.mark(PRICE) == [FINAL]
    assert ledger.mark(PRICE + 1, next_day=False) == [rejected("warehouse.mark_exists")]
    assert ledger.step((PUB, PublishPrice(SPEC, "mysteel_spot", "spot", "2026-02-30", PRICE))) == [
        rejected("warehouse.invalid_operation")]
    with pytest.raises(EvidenceInvalid):
        PublishPrice(SPEC, "mysteel_spot", "spot", "2026-11-2", PRICE).check_body()
    with pytest.raises(EvidenceInvalid):
        PublishPrice(SPEC, "mysteel_spot", "spot", "2026-11-02", 0).check_body()
    assert ledger.mark(PRICE, signer=PUB2, source="shfe_settlement", kind="settlement") == [FINAL]
    # a mark for a day before the spec's latest
    assert ledger.step((PUB2, PublishPrice(SPEC, "nbs_spot", "spot", ledger.day(1), PRICE))) == [
        rejected("warehouse.mark_too_old")]
    assert ledger.k.calendar().ordinal == 2


def test_a_move_beyond_the_limit_waits_for_a_second_source() -> None:
    ledger, _ = financed()
    assert ledger.mark(PRICE * 90 // 100) == [FINAL]  # -10 %: beyond 3 %, one source
    day = ledger.day()
    mark = ledger.k.mark(SPEC, day, "mysteel_spot")
    assert mark is not None and mark.status == "unconfirmed"
    assert ledger.k.calendar().ordinal == 1  # not a trading day: no usable mark names it
    assert ledger.valuation().ltv_bp == 7000 and ledger.facility().state == "performing"
    # a second source far from it confirms nothing, and is itself beyond the limit
    assert ledger.mark(PRICE * 80 // 100, next_day=False, signer=PUB2, source="nbs_spot") == [FINAL]
    assert ledger.k.calendar().ordinal == 1
    # a mark of the day within 3 % of the first, from a third source: the first counts
    assert ledger.mark(PRICE * 91 // 100, next_day=False, signer=PUB2, source="shfe_settlement",
                       kind="settlement") == [FINAL]
    marks = {m.source: (m.status, m.confirmed_by) for m in ledger.k.marks_of_day(SPEC, day)}
    assert marks == {"mysteel_spot": ("usable", "shfe_settlement"), "shfe_settlement": ("usable", ""),
                     "nbs_spot": ("unconfirmed", "")}
    v = ledger.valuation()
    assert v.day == day and v.lines[0].price == PRICE * 90 // 100 and v.lines[0].source == "mysteel_spot"
    assert (v.ltv_bp, v.state) == (7778, "watch")
    prices = query_prices(ledger.state, {"spec": SPEC})
    assert prices["as_of"] == day and prices["specs"][0]["price"] == 360_000
    assert [d["price"] for d in prices["daily"]] == [PRICE, 360_000]


def test_a_vat_inclusive_mark_is_valued_ex_vat() -> None:
    ledger = FinanceLedger()
    ledger.days += 1
    assert ledger.step((PUB, PublishPrice(SPEC, "mysteel_spot", "spot", ledger.day(), 452_000, "CNY", True))) == [
        FINAL]
    head = ledger.k.spec_head(SPEC)
    assert head is not None and head.price == 400_000


def test_a_stale_price_puts_the_facility_on_watch_with_a_higher_haircut() -> None:
    ledger, _ = financed(17_388_000, haircut_bp=1000)  # 70 % of 69 t at 4,000.00 CNY less 10 %
    assert ledger.valuation().lines[0].haircut_bp == 1000
    assert ledger.mark(500_000, spec=OTHER_SPEC) == [FINAL]  # day 2: SPEC's price is a day old, still good
    assert ledger.facility().state == "performing"
    assert ledger.mark(500_000, spec=OTHER_SPEC) == [FINAL]  # day 3: two trading days old: stale
    v = ledger.valuation()
    assert v.stale and v.lines[0].haircut_bp == 1500 and v.lines[0].price_day == ledger.day(1)
    assert v.collateral == 69_000 * PRICE * 8500 // 10_000_000 and v.state == "watch"
    assert ledger.facility().events[-1].cause == "a price is stale"
    assert ledger.mark(PRICE) == [FINAL]
    assert ledger.facility().state == "performing"


def test_facilities_are_their_banks_alone() -> None:
    ledger, _ = financed()
    assert ledger.step((BANK_B, ReportOutstanding("F1", 0, ledger.day(), BANK.public_key))) == [
        rejected("warehouse.not_facility_bank")]
    assert ledger.step((BANK_B, TopUp("F1", 5, BANK.public_key))) == [rejected("warehouse.not_facility_bank")]
    assert ledger.step((BANK_B, CloseFacility("F1", BANK.public_key))) == [rejected("warehouse.not_facility_bank")]
    assert ledger.step((BANK_B, ReportOutstanding("F1", 0, ledger.day()))) == [rejected("warehouse.facility_unknown")]
    assert ledger.step((DEP, ReportOutstanding("F1", 0, ledger.day()))) == [rejected("warehouse.not_bank")]
    assert ledger.step((DEP, OpenFacility("F9", DEP.public_key, 1))) == [rejected("warehouse.not_bank")]
    assert ledger.step((BANK, OpenFacility("F1", DEP.public_key, 1))) == [rejected("warehouse.facility_exists")]
    assert ledger.step((BANK, ReportOutstanding("F1", 50_000_001, ledger.day()))) == [
        rejected("warehouse.limit_exceeded")]
    assert ledger.step((BANK, ReportOutstanding("F1", OWED + 1, ledger.day()))) == [
        rejected("warehouse.initial_ltv_exceeded")]
    assert ledger.facility().outstanding == OWED


def test_facility_terms_are_ordered_and_within_the_councils_bounds() -> None:
    ledger = FinanceLedger()
    for terms in ({"warning_bp": 6900}, {"call_bp": 7700}, {"liquidation_bp": 9600}, {"initial_ltv_bp": 8100,
                  "warning_bp": 8200, "call_bp": 8300, "liquidation_bp": 8400}, {"haircut_bp": 6000},
                  {"cure_days": 11}):
        op = OpenFacility("F1", DEP.public_key, 1_000, **terms)  # type: ignore[arg-type]
        assert ledger.step((BANK, op)) == [rejected("warehouse.threshold_out_of_bounds")], terms
    ledger.ok((A, SetFinanceBounds(max_haircut_bp=7000, max_cure_days=20)))
    ledger.ok((BANK, OpenFacility("F1", DEP.public_key, 1_000, haircut_bp=6000, cure_days=11)))
    assert ledger.step((DEP, SetFinanceBounds())) == [rejected("warehouse.not_council")]


def test_a_pledge_names_a_facility_of_its_bank_and_borrower() -> None:
    ledger = FinanceLedger()
    rid = ledger.receipt(1)
    ledger.ok((BANK, OpenFacility("F1", DEP.public_key, 1_000_000)),
              (BANK, OpenFacility("F-BUYER", BUYER.public_key, 1_000_000)))
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "F2"))) == [rejected("warehouse.facility_unknown")]
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "F-BUYER"))) == [
        rejected("warehouse.facility_borrower_mismatch")]
    # bank B has no facility on the chain: its pledges name its own
    assert ledger.step((DEP, RequestPledge(rid, BANK_B.public_key, "off-chain-7"))) == [FINAL]


def test_reads_prices_facilities_valuation_and_exposure() -> None:
    ledger, rid = financed()
    bank = BANK.public_key.hex()
    statement = query_valuation(ledger.state, {"bank": bank, "name": "F1", "day": ledger.day(1)})["valuation"]
    assert statement["ltv_bp"] == 7000 and statement["lines"][0]["receipt"] == rid.hex()
    assert statement["lines"][0]["warehouse"] == address_from_public_key(WH.public_key)
    exposure = query_exposure(ledger.state, {})
    assert exposure["banks"] == [{"bank": address_from_public_key(BANK.public_key), "facilities": 1,
                                  "outstanding": OWED, "collateral": 27_600_000, "margin_calls": 0, "defaults": 0}]
    assert exposure["warehouses"][0]["collateral"] == 27_600_000
    from bilayer.errors import BadRequest, NotFound
    with pytest.raises(NotFound):
        query_valuation(ledger.state, {"bank": bank, "name": "F1", "day": "2020-01-01"})
    with pytest.raises(BadRequest):
        query_facility(ledger.state, {"bank": bank})


def test_only_touched_facilities_are_revalued() -> None:
    ledger, _ = financed()
    height = ledger.valuation().height
    ledger.ok((BANK_B, OpenFacility("FB", BUYER.public_key, 1_000)))  # another bank's: F1 untouched
    assert ledger.valuation().height == height
    assert ledger.mark(500_000, next_day=False, spec=OTHER_SPEC) == [FINAL]  # a spec F1 does not hold
    assert ledger.valuation().height == height
    ledger.ok((BANK, TopUp("F1", 1)))
    assert ledger.valuation().height == ledger.height


def test_each_valuation_values_what_the_pledges_hold_as_collateral_comes_and_goes() -> None:
    """A new trading day reprices the last valuation's lines unless the facility's collateral
    changed since: through a pledge added, a partial release, a default and an invocation,
    every valuation lists exactly what the live pledges hold, at that day's price."""
    ledger, first = financed()
    second = ledger.receipt(2)

    def pledged() -> list[tuple[bytes, int]]:
        return [(h.receipt, h.quantity_kg) for h in holdings(ledger.k, ledger.facility())]

    def valued() -> list[tuple[bytes, int]]:
        return [(line.receipt, line.quantity_kg) for line in ledger.valuation().lines]

    def release_one_lot() -> None:
        receipt = ledger.k.receipt(second)
        assert receipt is not None
        ledger.ok((BANK, ReleasePledge(second, receipt.lots[:1])))

    acts = [lambda: ledger.pledge(second), release_one_lot, lambda: ledger.ok((BANK, DeclareDefault(first, 0))),
            lambda: ledger.ok((BANK, InvokePledge(first)))]
    sizes = []
    for n, act in enumerate(acts, start=1):
        act()
        assert valued() == pledged(), n
        assert ledger.mark(PRICE - n * 1_000) == [FINAL]
        assert valued() == pledged() and {line.price for line in ledger.valuation().lines} == {PRICE - n * 1_000}
        sizes.append(sum(kg for _, kg in pledged()))
    assert sizes == [5 * NET_KG, 4 * NET_KG, 4 * NET_KG, NET_KG]


def test_remembered_valuation_lines_stand_only_for_the_bytes_stored() -> None:
    ledger, _ = financed()
    f, stored = ledger.facility(), ledger.valuation()
    lines = ledger.k.valued(f.bank, f.name, f.last_day)
    assert lines is not None and [line.receipt for line in lines] == [line.receipt for line in stored.lines]
    ledger.state.begin_transaction()
    ledger.k.put_valuation(msgspec.structs.replace(stored, lines=()))
    assert ledger.k.valued(f.bank, f.name, f.last_day) == ()
    ledger.state.rollback_transaction()
    again = ledger.k.valued(f.bank, f.name, f.last_day)
    assert again is not None and [line.receipt for line in again] == [line.receipt for line in stored.lines]
    memory, raw = ValuedMemory(), codec.encode(stored)
    memory.remember(raw, stored.lines)
    assert memory.recall(raw) is stored.lines
    assert memory.recall(bytes(bytearray(raw))) is None  # equal bytes elsewhere: decoded again


def test_a_pledged_receipt_leaving_the_register_flags_its_facility_for_reading_its_pledges() -> None:
    ledger, rid = financed()
    receipt = ledger.k.receipt(rid)
    assert receipt is not None
    ledger.state.begin_transaction()
    ledger.k.put_receipt(msgspec.structs.replace(receipt, status="void"))
    assert ledger.k.take_queue() == [Queued(facility_key(BANK.public_key, "F1"), False, True)]
    ledger.state.rollback_transaction()


class Recording(FinanceLedger):
    """Keeps every checkpoint it ran: (height, time, its ordered entries), for a replay."""

    def __init__(self) -> None:
        self.checkpoints: list[tuple[int, int, list[tuple[bytes, EntryHeader]]]] = []
        self.pending: list[tuple[bytes, EntryHeader]] = []
        super().__init__()

    def entry(self, signer: Signer, op: Operation, payload: bytes = b"") -> tuple[bytes, EntryHeader]:
        written = super().entry(signer, op, payload)
        self.pending.append(written)
        return written

    def run(self, time_ms: int, *writes: Any, keywords: dict[int, tuple[str, ...]] | None = None) -> list[Any]:
        results = super().run(time_ms, *writes, keywords=keywords)
        self.checkpoints.append((self.height, time_ms, self.pending))
        self.pending = []
        return results


def test_two_executions_give_identical_valuations_and_state_roots() -> None:
    """The demo path run once, then its checkpoints executed again on a fresh state: the same
    valuations, facility and state root."""
    ledger = Recording()
    rid = ledger.receipt(3)
    ledger.ok((BANK, OpenFacility("F1", DEP.public_key, 50_000_000)))
    assert ledger.mark(PRICE) == [FINAL]
    ledger.pledge(rid)
    ledger.ok((BANK, ReportOutstanding("F1", OWED, ledger.day())))
    for step in range(1, 5):
        assert ledger.mark(PRICE - step * 4_000) == [FINAL]
    ledger.pledge(ledger.receipt(1))
    replay = genesis_state(GENESIS)
    for height, time_ms, entries in ledger.checkpoints:
        execute(ExecContext(height, time_ms, PARAMS, {}), replay, entries)
    valuations = ledger.k.valuations(BANK.public_key, "F1")
    assert len(valuations) == 5 and valuations[-1].day == ledger.day(5)
    assert Keeper(replay).valuations(BANK.public_key, "F1") == valuations
    assert Keeper(replay).facility(BANK.public_key, "F1") == ledger.facility()
    assert replay.root() == ledger.state.root()


def test_the_valuation_statement_as_csv() -> None:
    """`bilayer warehouse valuation --csv`: a line per pledged receipt, then the total."""
    import csv

    from bilayer.apps.warehouse.cli import CSV_HEADER, valuation_csv

    ledger, first = financed()
    second = ledger.receipt(1)
    ledger.pledge(second)
    ledger.ok((BANK, TopUp("F1", 1_000)))
    statement = query_valuation(ledger.state, {"bank": BANK.public_key.hex(), "name": "F1"})["valuation"]
    rows = list(csv.DictReader(valuation_csv(statement).splitlines()))
    assert tuple(rows[0]) == CSV_HEADER
    assert sorted((r["line"], r["receipt"], r["quantity_kg"], r["value"]) for r in rows[:-1]) == sorted([
        ("receipt", first.hex(), "69000", "27600000"), ("receipt", second.hex(), "23000", "9200000")])
    assert (rows[-1]["line"], rows[-1]["receipt"], rows[-1]["quantity_kg"], rows[-1]["value"]) == (
        "total", "", "92000", "36800000")
    total = rows[-1]
    assert (total["cash"], total["collateral"], total["outstanding"], total["ltv_bp"], total["state"]) == (
        "1000", "36801000", str(OWED), "5250", "performing")


def test_concentration_beyond_the_facilitys_limits_is_flagged() -> None:
    ledger, _ = financed(max_warehouse_bp=5000, max_spec_bp=6000)
    v = ledger.valuation()
    assert v.concentration_breach
    assert [(s.value, s.share_bp, s.breach) for s in v.warehouses] == [(27_600_000, 10_000, True)]
    assert [(s.name, s.share_bp, s.breach) for s in v.specs] == [(SPEC, 10_000, True)]
    ledger.ok((BANK, TopUp("F1", 27_600_000)))  # cash: half the collateral
    v = ledger.valuation()
    assert not v.concentration_breach and [s.share_bp for s in (*v.warehouses, *v.specs)] == [5000, 5000]


def test_a_pledge_does_not_take_effect_under_a_facility_closed_meanwhile() -> None:
    ledger = FinanceLedger()
    rid = ledger.receipt(1)
    ledger.ok((BANK, OpenFacility("F1", DEP.public_key, 1_000_000)))
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "F1"))) == [FINAL]
    offer = ledger.ids[-1]
    ledger.ok((BANK, CloseFacility("F1")))
    assert ledger.step((BANK, ConfirmPledge(rid, offer)), (WH, Countersign(rid, offer))) == [
        FINAL, rejected("warehouse.facility_closed")]
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "F1"))) == [rejected("warehouse.wrong_status")]


def test_the_finance_reads_print_for_a_person_and_as_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's reads against the queries the node serves (here called in-process)."""
    from click.testing import CliRunner

    from bilayer.apps.warehouse import cli
    from bilayer.apps.warehouse.chain import QUERIES

    ledger, _ = financed()
    ledger.ok((A, SetFinanceBounds(daily_limit_bp=1500)))
    assert ledger.mark(PRICE * 86 // 100) == [FINAL]
    monkeypatch.setattr(cli, "_get", lambda _node, query, **params: QUERIES[query](
        ledger.state, {name: value for name, value in params.items() if value}))
    bank = address_from_public_key(BANK.public_key)
    runner = CliRunner()
    for args, expected in ((("facility", "show", bank, "F1"), "margin_call"), (("facility", "list"), "F1"),
                           (("prices", "list", "--spec", SPEC), "mysteel_spot"),
                           (("valuation", bank, "F1"), "LTV 8140 bp")):
        result = runner.invoke(cli.warehouse, [*args, "--node", "http://127.0.0.1:1"])
        assert result.exit_code == 0 and expected in result.output, (args, result.output)
    written = tmp_path / "statement.csv"
    result = runner.invoke(cli.warehouse, ["valuation", bank, "F1", "--day", ledger.day(1), "--csv", str(written)])
    assert result.exit_code == 0 and written.read_text().splitlines()[0] == ",".join(cli.CSV_HEADER)
    assert written.read_text().splitlines()[-1].endswith(f",0,27600000,{OWED},7000,performing")
    result = runner.invoke(cli.warehouse, ["valuation", bank, "F1", "--csv", "-"])
    assert result.output.splitlines()[-1].endswith(",margin_call") and len(result.output.splitlines()) == 3

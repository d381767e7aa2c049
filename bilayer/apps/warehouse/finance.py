"""Prices, credit facilities, daily valuation and margin calls (WAREHOUSE.md §3.4, §6.9).

Prices. The council appoints publishers (`appoint_publisher`), each for named sources
(`mysteel_spot`, `shfe_settlement`, ...) and specs. A publisher publishes one mark per
(spec, source, trading day): the price per tonne in minor units of CNY, spot or settlement.
A mark quoted with VAT is normalised ex-VAT as `price * 100 // 113` (rounded down). A mark
that moves more than the spec's daily limit (the council's bounds: 300 bp unless set per
spec) against the previous trading day's price of the same spec and kind is `unconfirmed`
and not used, until a mark of the same spec and day from a different source lands within
the limit of it; then both are used. The price of a spec on a day is the minimum of that
day's usable marks, spot and settlement alike (no basis is applied: a settlement mark is
taken for the spec it is published under). A mark names a day no earlier than its spec's
latest good day, and a new day after the as-of day (`mark_too_old`).

Trading calendar. Trading days are the days usable marks name (never the checkpoint clock:
simulated time may run faster than the wall clock). The as-of day is the latest of them;
each has a number (1, 2, ...), and deadlines count those numbers. A spec with no mark on the
as-of day is valued at its last good price while that is at most one trading day old;
older, the price is stale: the facility goes to WATCH and its haircut rises by 500 bp.

Facilities. A bank opens a facility to a borrower (`open_facility`) with thresholds ordered
initial < warning < call < liquidation (defaults 70/77/80/87 %) inside the council's bounds.
Its bank reports the balance owed (`report_outstanding`; a rise may not take the last
valuation's LTV above the initial LTV), records cash collateral (`top_up`) and closes it with
nothing owed and no live pledge (`close_facility`). A pledge names its facility: once the
pledgee bank has opened any facility on the chain, the name must be one of its open
facilities, for the pledgor as borrower (a bank with none keeps its facilities off the chain).

Valuation, at the end of each checkpoint (`value`), only of facilities something touched:
a new as-of day (all open facilities, once per trading day), a mark of a spec they hold,
their outstanding, cash or pledges (the keeper's work queue, `keeper.queue_facility`).

    value(r)    = quantity_kg(r) * price_per_tonne * (10000 - haircut_bp) // (1000 * 10000)
    collateral  = sum of value(r) over the receipts of its live pledges + cash
    LTV (bp)    = ceil(outstanding * 10000 / collateral); 0 when nothing is owed;
                  INFINITE_LTV when something is owed against no collateral
    headroom(x) = collateral - ceil(outstanding * 10000 / x), for x = warning, call, liquidation:
                  how far the collateral may fall before the LTV reaches the line
    share (bp)  = value in one warehouse (one spec) * 10000 // collateral; above the
                  facility's max_warehouse_bp (max_spec_bp) is a concentration breach

One valuation is stored per facility and as-of day; the last of the day stands.

State machine (`FACILITY_TRANSITIONS`, as data): each valuation yields one level, normal,
warning (LTV >= warning, or a stale price), call (>= call) or liquidation (>= liquidation);
a margin call still at the call level after its deadline (as-of day number + cure_days)
yields `deadline`; the bank's `declare_default` or `invoke_pledge` on a pledge of the
facility yields `enforce`; `close_facility` yields `close`. An event missing from a state's
row leaves the state as it is. Every change is kept with its day, height, LTV and cause.
While the facility is in DEFAULT the bank may declare default with a cure period of 0 and
invoke at once: it becomes the holder (the receipt path of `transitions.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from .errors import (
    FacilityBorrowerMismatch,
    FacilityClosed,
    FacilityExists,
    FacilityNotClosable,
    FacilityUnknown,
    InitialLtvExceeded,
    LimitExceeded,
    MarkExists,
    MarkTooOld,
    NotBank,
    NotCouncil,
    NotFacilityBank,
    NotPublisher,
    SourceNotAppointed,
    SpecNotAppointed,
    ThresholdOutOfBounds,
    WarehouseRejected,
)
from .keeper import Holding, Keeper, Queued, facility_key
from .operations import (
    BP,
    AppointPublisher,
    CloseFacility,
    OpenFacility,
    PublishPrice,
    ReportOutstanding,
    SetFinanceBounds,
    TopUp,
    WarehouseOperation,
)
from .records import (
    LIVE,
    Calendar,
    DayPrice,
    Facility,
    FacilityEvent,
    FacilityState,
    FinanceBounds,
    Held,
    KindRef,
    Mark,
    MarkKind,
    Publisher,
    Share,
    SpecHead,
    Valuation,
    ValuationLine,
)

if TYPE_CHECKING:
    from .transitions import Context

INFINITE_LTV: Final = 1_000_000_000
"""The LTV (bp) of a facility that owes something against no collateral at all."""

STALE_HAIRCUT_BP: Final = 500
KG_PER_TONNE: Final = 1000
VAT_NUMERATOR: Final = 100
VAT_DENOMINATOR: Final = 113  # 13 % VAT on steel

FACILITY_TRANSITIONS: Final[Mapping[FacilityState, Mapping[str, FacilityState]]] = MappingProxyType({
    # state: {event: next state}; an event not listed leaves the state unchanged
    "performing": {"warning": "watch", "call": "margin_call", "liquidation": "default", "close": "closed"},
    "watch": {"normal": "performing", "call": "margin_call", "liquidation": "default", "close": "closed"},
    "margin_call": {"normal": "cured", "warning": "cured", "liquidation": "default", "deadline": "default",
                    "close": "closed"},
    "cured": {"normal": "performing", "call": "margin_call", "liquidation": "default", "close": "closed"},
    "default": {"enforce": "enforcement", "close": "closed"},
    "enforcement": {"close": "closed"},
    "closed": {},
})


class _Checkpoint(Protocol):
    @property
    def height(self) -> int: ...


def _ensure(condition: bool, error: type[WarehouseRejected], message: str) -> None:
    if not condition:
        raise error(message)


def _bank(k: Keeper, key: bytes) -> None:
    party = k.party(key)
    _ensure(party is not None and party.role == "bank" and not party.revoked, NotBank,
            "only an appointed bank may do this")


def within_limit(price: int, reference: int, limit_bp: int) -> bool:
    """|price - reference| is at most limit_bp of the reference."""
    return abs(price - reference) * BP <= limit_bp * reference


def ex_vat(price: int, vat_included: bool) -> int:
    return price * VAT_NUMERATOR // VAT_DENOMINATOR if vat_included else price


def ltv_bp(outstanding: int, collateral: int) -> int:
    if outstanding == 0:
        return 0
    if collateral <= 0:
        return INFINITE_LTV
    return -(-outstanding * BP // collateral)


def headroom(outstanding: int, collateral: int, line_bp: int) -> int:
    return collateral - (-(-outstanding * BP // line_bp))


# --- prices ----------------------------------------------------------------------------------------


def apply_appoint_publisher(k: Keeper, ctx: Context, op: AppointPublisher) -> None:
    """The council appoints (or re-appoints, replacing sources and specs) a price publisher."""
    _ensure(ctx.council, NotCouncil, "price publishers are appointed by the council")
    k.put_publisher(Publisher(op.publisher, op.name, op.sources, op.specs, ctx.entry_id, ctx.height))


def apply_set_finance_bounds(k: Keeper, ctx: Context, op: SetFinanceBounds) -> None:
    _ensure(ctx.council, NotCouncil, "finance bounds are set by the council")
    k.put_bounds(FinanceBounds(op.min_haircut_bp, op.max_haircut_bp, op.max_initial_ltv_bp, op.max_liquidation_bp,
                               op.min_cure_days, op.max_cure_days, op.daily_limit_bp, op.spec_limits))


def _ref(head: SpecHead | None, kind: MarkKind) -> KindRef | None:
    for ref in head.refs if head is not None else ():
        if ref.kind == kind:
            return ref
    return None


def apply_publish_price(k: Keeper, ctx: Context, op: PublishPrice) -> None:
    publisher = k.publisher(ctx.author)
    _ensure(publisher is not None, NotPublisher, "only an appointed price publisher publishes prices")
    assert publisher is not None
    _ensure(op.source in publisher.sources, SourceNotAppointed, f"not appointed for source {op.source}")
    _ensure(op.spec in publisher.specs, SpecNotAppointed, f"not appointed for spec {op.spec}")
    _ensure(k.mark(op.spec, op.day, op.source) is None, MarkExists,
            f"{op.source} has a mark of {op.spec} on {op.day} already")
    head = k.spec_head(op.spec)
    _ensure(head is None or op.day >= head.day, MarkTooOld, f"{op.spec} has prices of {head and head.day} already")
    calendar = k.calendar()
    _ensure(k.trading_day(op.day) > 0 or op.day > calendar.day, MarkTooOld,
            f"{op.day} is not a trading day and is before the as-of day {calendar.day}")
    net = ex_vat(op.price, op.vat_included)
    limit = k.bounds().limit_of(op.spec)
    ref = _ref(head, op.kind)
    reference = 0 if ref is None else ref.price if ref.day < op.day else ref.prev_price
    usable = reference == 0 or within_limit(net, reference, limit)
    confirmed_by = ""
    for other in k.marks_of_day(op.spec, op.day):
        if other.source == op.source or not within_limit(net, other.net_price, limit):
            continue
        confirmed_by = confirmed_by or other.source
        if other.status == "unconfirmed":
            k.put_mark(msgspec.structs.replace(other, status="usable", confirmed_by=op.source))
    usable = usable or confirmed_by != ""
    k.put_mark(Mark(op.spec, op.source, op.kind, op.day, op.price, op.currency, op.vat_included, net, ctx.author,
                    ctx.entry_id, ctx.height, "usable" if usable else "unconfirmed",
                    "" if reference == 0 or within_limit(net, reference, limit) else confirmed_by))
    if any(m.status == "usable" for m in k.marks_of_day(op.spec, op.day)):
        _reprice(k, op.spec, op.day)


def _reprice(k: Keeper, spec: str, day: str) -> None:
    """The spec's price of the day is the minimum of its usable marks; the facilities
    holding the spec are queued, and the day joins the calendar."""
    usable = [m for m in k.marks_of_day(spec, day) if m.status == "usable"]
    best = min(usable, key=lambda m: (m.net_price, m.source))
    k.put_day_price(DayPrice(spec, day, best.net_price, best.source, best.kind))
    head = k.spec_head(spec)
    refs = []
    for kind in sorted({m.kind for m in usable} | {r.kind for r in (head.refs if head else ())}):
        old = _ref(head, kind)
        today = [m.net_price for m in usable if m.kind == kind]
        if not today:
            assert old is not None
            refs.append(old)
        elif old is None:
            refs.append(KindRef(kind, day, min(today)))
        elif old.day == day:
            refs.append(msgspec.structs.replace(old, price=min(today)))
        else:
            refs.append(KindRef(kind, day, min(today), old.day, old.price))
    k.put_spec_head(SpecHead(spec, day, best.net_price, best.source, tuple(refs)))
    k.add_trading_day(day)
    for fkey in k.facilities_holding(spec):
        k.queue_facility(fkey)


def price_of(k: Keeper, spec: str, calendar: Calendar) -> tuple[int, str, str, bool]:
    """(price per tonne, source, its day, stale) of a spec on the as-of day."""
    head = k.spec_head(spec)
    if head is None:
        return 0, "", "", True
    return head.price, head.source, head.day, calendar.ordinal - k.trading_day(head.day) > 1


# --- facilities -----------------------------------------------------------------------------------------


def apply_open_facility(k: Keeper, ctx: Context, op: OpenFacility) -> None:
    _bank(k, ctx.author)
    borrower = k.party(op.borrower)
    _ensure(borrower is not None and borrower.role in ("depositor", "bank") and not borrower.revoked, FacilityUnknown,
            "the borrower is an appointed depositor or bank")
    _ensure(k.facility(ctx.author, op.facility) is None, FacilityExists, f"the bank has a facility {op.facility}")
    b = k.bounds()
    _ensure(op.initial_ltv_bp < op.warning_bp < op.call_bp < op.liquidation_bp, ThresholdOutOfBounds,
            "thresholds are ordered initial < warning < call < liquidation")
    _ensure(op.initial_ltv_bp <= b.max_initial_ltv_bp and op.liquidation_bp <= b.max_liquidation_bp
            and b.min_haircut_bp <= op.haircut_bp <= b.max_haircut_bp
            and b.min_cure_days <= op.cure_days <= b.max_cure_days, ThresholdOutOfBounds,
            f"outside the council's bounds: initial LTV <= {b.max_initial_ltv_bp} bp, liquidation <= "
            f"{b.max_liquidation_bp} bp, haircut {b.min_haircut_bp}-{b.max_haircut_bp} bp, "
            f"cure {b.min_cure_days}-{b.max_cure_days} days")
    k.put_facility(Facility(ctx.author, op.facility, op.borrower, op.limit, op.currency, op.haircut_bp,
                            op.initial_ltv_bp, op.warning_bp, op.call_bp, op.liquidation_bp, op.cure_days,
                            op.max_warehouse_bp, op.max_spec_bp, ctx.entry_id, ctx.height))


def _own(k: Keeper, ctx: Context, name: str, bank: bytes) -> Facility:
    """The named facility of `bank` (default: the author), acted on by its own bank only."""
    _bank(k, ctx.author)
    facility = k.facility(bank or ctx.author, name)
    _ensure(facility is not None, FacilityUnknown, f"no facility {name}")
    assert facility is not None
    _ensure(facility.bank == ctx.author, NotFacilityBank, "only the facility's own bank may do this")
    _ensure(facility.state != "closed", FacilityClosed, "the facility is closed")
    return facility


def apply_report_outstanding(k: Keeper, ctx: Context, op: ReportOutstanding) -> None:
    facility = _own(k, ctx, op.facility, op.bank)
    _ensure(op.outstanding <= facility.limit, LimitExceeded, f"the facility's limit is {facility.limit}")
    if op.outstanding > facility.outstanding:
        _ensure(op.outstanding * BP <= facility.initial_ltv_bp * facility.last_collateral, InitialLtvExceeded,
                f"a drawdown keeps the LTV within {facility.initial_ltv_bp} bp of the last valuation's collateral "
                f"({facility.last_collateral})")
    k.put_facility(msgspec.structs.replace(facility, outstanding=op.outstanding, outstanding_day=op.day))
    k.queue_facility(facility_key(facility.bank, facility.name))


def apply_top_up(k: Keeper, ctx: Context, op: TopUp) -> None:
    facility = _own(k, ctx, op.facility, op.bank)
    k.put_facility(msgspec.structs.replace(facility, cash=facility.cash + op.amount))
    k.queue_facility(facility_key(facility.bank, facility.name))


def apply_close_facility(k: Keeper, ctx: Context, op: CloseFacility) -> None:
    facility = _own(k, ctx, op.facility, op.bank)
    _ensure(facility.outstanding == 0 and not k.facility_pledges(facility.bank, facility.name), FacilityNotClosable,
            "a facility closes with nothing outstanding and no live pledge")
    event = FacilityEvent(k.calendar().day, ctx.height, "closed", 0, "closed by its bank")
    k.put_facility(msgspec.structs.replace(facility, state=FACILITY_TRANSITIONS[facility.state]["close"],
                                           events=(*facility.events, event)))


def check_pledge_facility(k: Keeper, pledgee: bytes, name: str, pledgor: bytes) -> None:
    """A pledge to a bank with facilities on the chain names one of them, of the pledgor."""
    if not k.has_facilities(pledgee):
        return
    facility = k.facility(pledgee, name)
    _ensure(facility is not None, FacilityUnknown, f"the pledgee has no facility {name}")
    assert facility is not None
    _ensure(facility.borrower == pledgor, FacilityBorrowerMismatch, f"facility {name} lends to another borrower")
    _ensure(facility.state != "closed", FacilityClosed, f"facility {name} is closed")


def check_facility_open(k: Keeper, pledgee: bytes, name: str) -> None:
    """A pledge does not take effect under a facility closed since it was requested."""
    facility = k.facility(pledgee, name)
    _ensure(facility is None or facility.state != "closed", FacilityClosed, f"facility {name} is closed")


# --- valuation at the end of each checkpoint ---------------------------------------------------------------


ONE_WALK_FACILITIES: Final = 8


def value(k: Keeper, ctx: _Checkpoint) -> None:
    """Revalue the queued facilities (all open ones on a new as-of day), then move each
    through the state machine. Nothing is valued before the first trading day.

    A facility whose collateral is what it was at its last valuation (no flag in the queue)
    reprices that valuation's lines: the same receipts, spec, warehouse and quantity in the
    same order, which is what reading its pledges would give. Otherwise its pledges are read."""
    queued = {item.facility: item for item in k.take_queue()}
    known: dict[bytes, Facility] = {}
    if k.take_new_day():
        for facility in k.facilities():
            fkey = facility_key(facility.bank, facility.name)
            known[fkey] = facility
            if facility.state != "closed":
                queued.setdefault(fkey, Queued(fkey, False, False))
    calendar = k.calendar()
    if not calendar.day or not queued:
        return
    prices: dict[str, tuple[int, str, str, bool]] = {}  # each spec's price, read once per checkpoint
    due: list[tuple[Queued, Facility, Sequence[Holding] | None]] = []
    for fkey in sorted(queued):
        found = known[fkey] if fkey in known else k.facility_by_key(fkey)
        if found is not None and found.state != "closed":
            last = None if queued[fkey].collateral or not found.last_day else k.valued(
                found.bank, found.name, found.last_day)
            due.append((queued[fkey], found, last))
    # one walk of the pledge index for many facilities; a few walk only their own part
    pledges = k.pledge_ids_by_facility() if sum(last is None for _, _, last in due) > ONE_WALK_FACILITIES else None
    for item, facility, last in due:
        ids = None if pledges is None else pledges.get(item.facility, [])
        revalue(k, ctx.height, calendar, facility, enforced=item.enforced, prices=prices, pledge_ids=ids,
                held=last)


def holdings(k: Keeper, facility: Facility, pledge_ids: list[bytes] | None = None) -> list[Held]:
    """What the facility's live pledges hold: each live receipt, pledge by pledge in id order.
    `pledge_ids` names those pledges when the caller has them (it only saves reads)."""
    if pledge_ids is None:
        pledges = k.facility_pledges(facility.bank, facility.name)
    else:
        pledges = [p for p in (k.pledge(pid) for pid in pledge_ids) if p is not None]
    found = []
    for pledge in pledges:
        for rid in pledge.receipts:
            receipt = k.receipt(rid)
            if receipt is not None and receipt.status in LIVE:
                found.append(Held(rid, receipt.goods.spec, receipt.warehouse, receipt.goods.quantity_kg))
    return found


def valuation_lines(k: Keeper, facility: Facility, calendar: Calendar,
                    prices: dict[str, tuple[int, str, str, bool]] | None = None,
                    pledge_ids: list[bytes] | None = None) -> list[ValuationLine]:
    """`prices` caches `price_of` by spec: it only saves reads."""
    return _Priced(k, facility, calendar, {} if prices is None else prices, holdings(k, facility, pledge_ids)).lines


class _Priced:
    """A line for each held receipt at its spec's price of the as-of day, and the totals by
    warehouse and by spec, in one pass (a run of lines of one spec looks its price up once)."""

    def __init__(self, k: Keeper, facility: Facility, calendar: Calendar,
                 prices: dict[str, tuple[int, str, str, bool]], holding: Iterable[Holding]) -> None:
        self.lines: list[ValuationLine] = []
        self.by_warehouse: dict[bytes, int] = {}
        self.by_spec: dict[str, int] = {}
        self.stale = False
        append, by_warehouse, by_spec, line_of = self.lines.append, self.by_warehouse, self.by_spec, ValuationLine
        spec, price, source, day, stale, haircut, factor = "", 0, "", "", False, 0, 0
        for held in holding:
            if held.spec != spec or not self.lines:
                spec = held.spec
                if spec not in prices:
                    prices[spec] = price_of(k, spec, calendar)
                price, source, day, stale = prices[spec]
                haircut = min(facility.haircut_bp + (STALE_HAIRCUT_BP if stale else 0), BP)
                factor = price * (BP - haircut)
                self.stale = self.stale or stale
            worth = held.quantity_kg * factor // (KG_PER_TONNE * BP)
            append(line_of(held.receipt, spec, held.warehouse, held.quantity_kg, price, source, day, stale, haircut,
                           worth))
            by_warehouse[held.warehouse] = by_warehouse.get(held.warehouse, 0) + worth
            by_spec[spec] = by_spec.get(spec, 0) + worth


def _shares(totals: dict[str, int], collateral: int, limit_bp: int) -> tuple[Share, ...]:
    shares = []
    for key in sorted(totals):
        share = totals[key] * BP // collateral if collateral > 0 else 0
        shares.append(Share(key, totals[key], share, share > limit_bp))
    return tuple(shares)


def level_of(facility: Facility, ltv: int, stale: bool) -> tuple[str, str]:
    """The valuation's event and its cause."""
    if ltv >= facility.liquidation_bp:
        return "liquidation", f"LTV {ltv} bp >= liquidation {facility.liquidation_bp} bp"
    if ltv >= facility.call_bp:
        return "call", f"LTV {ltv} bp >= call {facility.call_bp} bp"
    if ltv >= facility.warning_bp:
        return "warning", f"LTV {ltv} bp >= warning {facility.warning_bp} bp"
    if stale:
        return "warning", "a price is stale"
    return "normal", f"LTV {ltv} bp below warning {facility.warning_bp} bp"


def revalue(k: Keeper, height: int, calendar: Calendar, facility: Facility, *, enforced: bool,
            prices: dict[str, tuple[int, str, str, bool]] | None = None,
            pledge_ids: list[bytes] | None = None,
            held: Iterable[Holding] | None = None) -> Valuation:
    """`held`: what the facility's last valuation valued, when its collateral has not changed
    since, to reprice rather than read the pledges again."""
    priced = _Priced(k, facility, calendar, {} if prices is None else prices,
                     holdings(k, facility, pledge_ids) if held is None else held)
    lines, stale = priced.lines, priced.stale
    collateral = sum(priced.by_spec.values()) + facility.cash
    ltv = ltv_bp(facility.outstanding, collateral)
    events: list[tuple[str, str]] = []
    if enforced:
        events.append(("enforce", "the bank declared default on, or invoked, a pledge of the facility"))
    level, cause = level_of(facility, ltv, stale)
    if facility.state == "margin_call" and level == "call" and calendar.ordinal > facility.deadline_ordinal:
        events.append(("deadline", f"margin call uncured after trading day {facility.deadline_ordinal}"))
    events.append((level, cause))
    state, deadline, history = facility.state, facility.deadline_ordinal, facility.events
    for event, why in events:
        following = FACILITY_TRANSITIONS[state].get(event)
        if following is None or following == state:
            continue
        state = following
        history = (*history, FacilityEvent(calendar.day, height, state, ltv, why))
        if state == "margin_call":
            deadline = calendar.ordinal + facility.cure_days
    warehouses = _shares({w.hex(): v for w, v in priced.by_warehouse.items()}, collateral,
                         facility.max_warehouse_bp)
    specs = _shares(priced.by_spec, collateral, facility.max_spec_bp)
    valuation = Valuation(
        facility.bank, facility.name, calendar.day, height, facility.outstanding, facility.cash, collateral, ltv,
        state, headroom(facility.outstanding, collateral, facility.warning_bp),
        headroom(facility.outstanding, collateral, facility.call_bp),
        headroom(facility.outstanding, collateral, facility.liquidation_bp), stale,
        any(s.breach for s in (*warehouses, *specs)), tuple(lines), warehouses, specs)
    k.put_valuation(valuation)
    k.put_facility(msgspec.structs.replace(facility, state=state, deadline_ordinal=deadline, events=history,
                                           last_day=calendar.day, last_ltv_bp=ltv, last_collateral=collateral))
    return valuation


Apply = Callable[[Keeper, Any, Any], None]

APPLY: Final[Mapping[type[WarehouseOperation], Apply]] = MappingProxyType({
    AppointPublisher: apply_appoint_publisher,
    PublishPrice: apply_publish_price,
    OpenFacility: apply_open_facility,
    ReportOutstanding: apply_report_outstanding,
    TopUp: apply_top_up,
    CloseFacility: apply_close_facility,
    SetFinanceBounds: apply_set_finance_bounds,
})
"""The finance operations' transitions, merged into `transitions.APPLY`."""

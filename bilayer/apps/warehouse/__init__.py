"""Warehouse finance (钢宝): steel in supervised warehouses, electronic receipts and pledges.

An application on the module API (`execution/application.py`). The domain core: typed
operations (`operations.py`), the records they create (`records.py`), the keeper that owns
every key under the application's prefix and serves the register (`keeper.py`), the
transition function (`transitions.py`), EPCIS 2.0 device evidence (`epcis.py`), prices,
credit facilities, daily valuation and margin calls (`finance.py`, run at the end of each
checkpoint by `checkpoint.py`), the invariants (`invariants.py`), and reads across
records: lineage, evidence, and a receipt's evidence as one EPCIS document (`queries.py`).
On the chain (`chain.py`): this package registers `OPERATIONS`, and one handler calls
`apply(state, Context(entry_id, author, height, time_ms, council=..., regulator=...), op)`
for each entry, with `council` and `regulator` read from the governance keepers; a refusal
is a `WarehouseRejected` with a stable `warehouse.*` code and leaves the state unchanged. A
malformed operation or EPCIS event is refused at ingress (`EvidenceInvalid`, an
`InvalidOperation`). The compliance gate applies to every kind with no code here:
suspension and operator pauses by kind, bans, identity rules, and freezes of each
operation's `parties` (its author and every key it hands rights to or appoints). The CLI is
`bilayer warehouse ...` (`cli.py`).

Parties and who appoints them
-----------------------------

    warehouse (保管人), bank, supervisor (监管方)   the council (ctx.council)
    depositor                                     the council, a warehouse or a bank (after KYC)
    inspector                                     the council or a supervisor
    device                                        proposed by its warehouse, approved by the
                                                  warehouse's supervisor; revoked by either

A party is revoked by whoever appointed it, or by the council. A revoked party moves no
receipt (it may still withdraw or refuse an offer); an offer takes effect only while its
counterparty is still appointed.

Evidence
--------

A device signs entries with its own key, each carrying one EPCIS 2.0 ObjectEvent as a typed
`Reading`; the event id is the canonical hash of its JSON rendering. A reading is refused
from an unregistered (`device_unknown`), unapproved (`device_not_active`), revoked
(`device_revoked`) or uncalibrated (`device_uncalibrated`) device, signed by another key
(`wrong_signer`), outside the device's read point or warehouse (`location_not_covered`), out
of sequence (`out_of_sequence`), with a clock more than five minutes off the checkpoint's
(`clock_skew`), or twice (`duplicate_event`); a weighbridge's receiving or shipping event
carries a weighing (`weighing_required`). At ingress: not the supported EPCIS subset
(`epcis_invalid`, `epcis_unsupported_field`), masses not in KGM/TNE (`epcis_wrong_unit`),
negative, NaN or sub-kilogram quantities (`epcis_bad_quantity`), gross - tare != net
(`epcis_weighing_inconsistent`), oversized (`epcis_too_large`), a wrong eventID
(`epcis_event_id_mismatch`).

A lot (mill + heat + coil number, chain-wide) is booked by its warehouse against the
weighbridge `receiving` event that weighed it: its net weight is the weighed net.

Receipt lifecycle (`records.TRANSITIONS` is this table as data)
---------------------------------------------------------------

    (none) ──propose: warehouse, over booked lots, next number of its series──► PROPOSED  [holder: warehouse]
    PROPOSED ──accept: depositor, + supervisor sign-off if the warehouse requires it──► ACTIVE [holder: depositor]
    PROPOSED ──reject: depositor or supervisor; withdraw: warehouse──► VOID
    ACTIVE ──offer_transfer: holder──► TRANSFER_OFFERED
    TRANSFER_OFFERED ──accept_transfer: transferee + countersign: warehouse (either order)──► ACTIVE
                              [holder := transferee]
    ACTIVE ──request_pledge: holder──► PLEDGE_REQUESTED
    PLEDGE_REQUESTED ──confirm_pledge: bank + countersign: warehouse (either order)──► PLEDGED [pledge live]
    TRANSFER_OFFERED | PLEDGE_REQUESTED ──cancel_offer: offeror, counterparty or warehouse──► ACTIVE
    PLEDGED | DEFAULTED ──release_pledge (all lots): pledgee──► ACTIVE
    PLEDGED | DEFAULTED ──release_pledge (some lots): pledgee──► SUPERSEDED
                              ⇒ child ACTIVE (released lots) + child PLEDGED|DEFAULTED (rest, same pledge)
    PLEDGED ──declare_default: pledgee, with a cure period──► DEFAULTED
    DEFAULTED ──cure_default: pledgee, before the deadline──► PLEDGED
    DEFAULTED (deadline passed) | EXPIRED (under pledge) ──invoke_pledge: pledgee──► ACTIVE [holder := pledgee]
    ACTIVE | EXPIRED (free) ──surrender: holder──► DELIVERY_PENDING [holder: warehouse, as custodian]
                              (some lots: SUPERSEDED ⇒ child DELIVERY_PENDING + child ACTIVE for the rest)
    DELIVERY_PENDING ──cancel_receipt: warehouse, outbound weighings since surrender cover every lot──► CANCELLED
    ACTIVE ──split_receipt: holder──► SUPERSEDED ⇒ children ACTIVE
    ACTIVE (n) ──merge_receipts: holder (same warehouse, holder, depositor, terms, goods)──► SUPERSEDED ⇒ child ACTIVE
    ACTIVE | PLEDGED | DEFAULTED ──expire_receipt: anyone, after the storage period──► EXPIRED
    ACTIVE | PLEDGED | DEFAULTED | EXPIRED ──extend_receipt: warehouse──► the same (or pre-expiry) state
    ACTIVE ──convert_to_paper: holder──► CONVERTED_TO_PAPER (lots stay bound to the paper;
                              a later propose with `replaces_paper` over the same lots brings it back)
    any live ──void_receipt: council, citing a case──► VOID
    overlay FROZEN ──freeze_receipt / unfreeze_receipt: regulator, citing a case
                              (open_case: a regulator, or the council)

Children are new receipts, numbered from the warehouse's series, with parents/children lineage.

Invariants (`invariants.violations` checks them over a whole state)
-------------------------------------------------------------------

    INV-1  one holder: a live receipt has exactly one holder, a depositor or bank (the warehouse
           while proposed or surrendered); transfers replace it atomically.
    INV-2  a lot backs at most one live (or paper) receipt on the whole chain; a lot is in stock
           at one warehouse at a time (`lot_held_elsewhere`, `lot_already_receipted`).
    INV-3  a receipt's quantity and pieces are the sums of its lots' weighed nets (`quantity_mismatch`).
    INV-4  at most one live pledge (`already_pledged`); nothing moves a pledged receipt without
           the pledgee (`receipt_pledged`); children of a partial release keep the pledge.
    INV-5  no receipt without finalized weighbridge intake evidence at its warehouse.
    INV-7  split, merge, partial release and partial delivery conserve lots and quantity.
    INV-8  frozen is absorbing: every transition is refused (`receipt_frozen`) until the
           regulator unfreezes under the same case, or the council voids.
    INV-11 receipt numbers are consumed in order and never reused (`receipt_number_out_of_series`).
    INV-12 a paper receipt's lots back no electronic receipt until it is brought back.
    INV-13 a hold names the open alert that set it; only CRITICAL alerts and R6 hold.

Reconciliation, alerts and HELD (`monitor.py`)
----------------------------------------------

At the end of every checkpoint (`checkpoint.py`), the device evidence and stocktakes of the
checkpoint are compared with the book (rules R1-R12, WAREHOUSE.md §6.8; R4 is impossible by
INV-3), and every finding is an `Alert` record. A CRITICAL alert (and R6) holds the receipts
or bins it names: a held receipt refuses transfer, pledge, release, split, merge and
surrender (`receipt_held`), a held bin new receipts over its goods (`bin_held`), until the
warehouse's supervisor resolves the alert (`resolve_alert`: `not_supervisor`,
`alert_unknown`, `alert_resolved`). The supervisor records stocktakes
(`record_stocktake`), the council the policy (`set_monitoring`: tolerance, business hours,
heartbeat factor, ageing and expiry notice days). A reading naming a coil in a bin the device
does not cover is refused (`location_not_covered`). An alert's evidence travels as one
document a verifier checks against genesis alone (`alert_proof.py`): the signed readings or
stocktake, their devices' registrations, and the observed side recomputed from them; the
book side is state, taken on trust there.

Left out of WAREHOUSE.md, and why
---------------------------------

* INV-6 and INV-9 are not refusals: an outflow without instruction is accepted as evidence and
  raises R2 (or R5) with a hold; over-issuance against verified stock raises R12 with a hold.
* Camera occlusion and clock skew as R7 findings (a skewed reading is refused, `clock_skew`),
  trucks or crane tags in R5 (a tag names the coils it follows), owners to notify, SLA timers
  and acknowledgements of alerts: an alert is open or resolved.
* In finance (`finance.py`): a spec/location basis on settlement prices, accrued interest
  computed on the chain (the bank reports the balance owed), several currencies, and auction
  after invocation.
* Delivery instructions as separate records with consumed quantities: a surrender is the
  instruction here (whole lots, one collector reference).
* Auction after invocation, interception (hold for review) of transfers to sanctioned parties,
  and deny-service: the chain's compliance gate does the latter two for every operation kind.
* The GS1 CBV 2.0 event-hash algorithm: our id hashes the canonical JSON of the supported
  subset, which is as syntax-independent for JSON but not equal to GS1's pre-hash string.
* Gateways signing for devices, AssociationEvents for bin membership: a device signs its own
  entries and its bins are declared at registration.
* Amendments of receipt data, uncancel, the Kansas 30-day merge limit, external registry
  checks (中登网/中仓登 numbers are stored, not verified), insurance validation.
* Partial release and partial delivery by weight: both go by whole lots (a coil is the unit
  that is weighed, marked and tracked); a lot's net weight is its intake weighing.
* Extension by the warehouse with the controllers' consent: the warehouse extends alone (it
  only lengthens storage); a revoked bank's pledges move only by the council's void.
* A lot's record is rewritten when a shipped coil is taken in again; its earlier history
  stays in the evidence records and in the receipts that listed it.
"""

from typing import Any

from ...execution.application import Application, AppOperation, register_application
from ...genesis import Genesis
from ...ledger.operations import register
from .chain import QUERIES, handle
from .checkpoint import end_checkpoint
from .epcis import Reading, event_hash, event_uri, parse, render
from .errors import EvidenceInvalid, WarehouseRejected
from .invariants import violations
from .keeper import Keeper
from .operations import OPERATIONS
from .records import TRANSITIONS, Receipt, lot_key, lot_urn, receipt_id
from .transitions import APPLY, APPLY_BY_KIND, Context, apply


def verify_receipt_proof(data: bytes, genesis: Genesis) -> dict[str, Any]:
    """`bilayer audit verify` of a receipt proof (imported when used: audit imports execution)."""
    from .proof import verify

    return verify(data, genesis)


def verify_alert_proof(data: bytes, genesis: Genesis) -> dict[str, Any]:
    """`bilayer audit verify` of an alert's evidence package (`alert_proof.py`)."""
    from .alert_proof import verify

    return verify(data, genesis)


APPLICATION = register_application(Application(
    name="warehouse",
    summary="steel in supervised warehouses: device evidence, electronic receipts and pledges",
    operations=tuple(AppOperation(register(struct), handle) for struct in OPERATIONS),
    keeper=Keeper,
    queries=QUERIES,
    cli="bilayer.apps.warehouse.cli:warehouse",
    console="warehouse.js",
    proofs={"warehouse_receipt": verify_receipt_proof, "warehouse_alert": verify_alert_proof},
    end_checkpoint=end_checkpoint,
))

__all__ = [
    "APPLICATION", "APPLY", "APPLY_BY_KIND", "OPERATIONS", "TRANSITIONS", "Context", "EvidenceInvalid", "Keeper",
    "Reading", "Receipt", "WarehouseRejected", "apply", "event_hash", "event_uri", "lot_key", "lot_urn", "parse",
    "receipt_id", "render", "violations",
]

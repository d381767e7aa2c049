"""Every refusal of the warehouse application, each with its own stable code.

Two roots, as in the rest of bilayer: `EvidenceInvalid` (a subclass of the ledger's
`InvalidOperation`) for what is wrong with an operation on its own, so a node refuses it at
ingress and stores nothing; `WarehouseRejected` (an `ExecutionRejected`) for what breaks a
rule of the state machine when the entry is executed. Codes are namespaced `warehouse.`
and are part of the public contract: never rename one, add a class instead.
"""

from __future__ import annotations

from ...errors import InvalidOperation
from ...execution.errors import ExecutionRejected

# --- stateless: the operation or its EPCIS event is malformed ---------------------------------


class EvidenceInvalid(InvalidOperation):
    """The operation breaks the rules of its type."""

    code = "warehouse.invalid_operation"


class EpcisInvalid(EvidenceInvalid):
    """The event is not an EPCIS 2.0 ObjectEvent of the supported subset."""

    code = "warehouse.epcis_invalid"


class EpcisUnsupportedField(EpcisInvalid):
    """The event carries a field the chain would not keep: its hash would not cover it."""

    code = "warehouse.epcis_unsupported_field"


class EpcisWrongUnit(EpcisInvalid):
    """A mass or a quantity is not in kilograms (KGM) or tonnes (TNE)."""

    code = "warehouse.epcis_wrong_unit"


class EpcisBadQuantity(EpcisInvalid):
    """A quantity is negative, not a number, infinite, or finer than a kilogram."""

    code = "warehouse.epcis_bad_quantity"


class EpcisTooLarge(EpcisInvalid):
    """The event exceeds the size a ledger entry can carry."""

    code = "warehouse.epcis_too_large"


class EpcisEventIdMismatch(EpcisInvalid):
    """The event names an eventID that is not its canonical hash."""

    code = "warehouse.epcis_event_id_mismatch"


class EpcisWeighingInconsistent(EpcisInvalid):
    """Gross minus tare, the net reading and the quantity list disagree."""

    code = "warehouse.epcis_weighing_inconsistent"


# --- stateful: the entry is valid but breaks a rule of the state machine ---------------------


class WarehouseRejected(ExecutionRejected):
    code = "warehouse.rejected"


class StatelessRuleBroken(WarehouseRejected):
    """An operation that reached execution without its stateless check: the ingress code."""

    def __init__(self, error: InvalidOperation) -> None:
        super().__init__(error.message)
        self.code = error.code


# parties


class NotCouncil(WarehouseRejected):
    code = "warehouse.not_council"


class NotRegulator(WarehouseRejected):
    code = "warehouse.not_regulator"


class NotAppointer(WarehouseRejected):
    code = "warehouse.not_appointer"


class PartyExists(WarehouseRejected):
    code = "warehouse.party_exists"


class PartyUnknown(WarehouseRejected):
    code = "warehouse.party_unknown"


class PartyRevoked(WarehouseRejected):
    code = "warehouse.party_revoked"


class WrongRole(WarehouseRejected):
    code = "warehouse.wrong_role"


class WrongSigner(WarehouseRejected):
    code = "warehouse.wrong_signer"


class UnknownBin(WarehouseRejected):
    code = "warehouse.unknown_bin"


# devices and evidence


class DeviceExists(WarehouseRejected):
    code = "warehouse.device_exists"


class DeviceUnknown(WarehouseRejected):
    code = "warehouse.device_unknown"


class DeviceNotActive(WarehouseRejected):
    code = "warehouse.device_not_active"


class DeviceRevoked(WarehouseRejected):
    code = "warehouse.device_revoked"


class DeviceUncalibrated(WarehouseRejected):
    code = "warehouse.device_uncalibrated"


class DeviceKeyInUse(WarehouseRejected):
    code = "warehouse.device_key_in_use"


class LocationNotCovered(WarehouseRejected):
    code = "warehouse.location_not_covered"


class OutOfSequence(WarehouseRejected):
    code = "warehouse.out_of_sequence"


class ClockSkew(WarehouseRejected):
    code = "warehouse.clock_skew"


class DuplicateEvent(WarehouseRejected):
    code = "warehouse.duplicate_event"


class WrongDeviceKind(WarehouseRejected):
    code = "warehouse.wrong_device_kind"


class WeighingRequired(WarehouseRejected):
    code = "warehouse.weighing_required"


# lots


class EvidenceUnknown(WarehouseRejected):
    code = "warehouse.evidence_unknown"


class NotIntakeEvidence(WarehouseRejected):
    code = "warehouse.not_intake_evidence"


class EvidenceUsed(WarehouseRejected):
    code = "warehouse.evidence_used"


class LotHeldElsewhere(WarehouseRejected):
    """R10: the lot's mill, heat and coil number are in stock at a warehouse already."""

    code = "warehouse.lot_held_elsewhere"


class LotUnknown(WarehouseRejected):
    code = "warehouse.lot_unknown"


class LotNotInWarehouse(WarehouseRejected):
    code = "warehouse.lot_not_in_warehouse"


class LotAlreadyReceipted(WarehouseRejected):
    """INV-2: the lot backs a live receipt already."""

    code = "warehouse.lot_already_receipted"


# receipts


class ReceiptUnknown(WarehouseRejected):
    code = "warehouse.receipt_unknown"


class ReceiptNumberOutOfSeries(WarehouseRejected):
    """INV-11: receipt numbers are consumed in order and never reused."""

    code = "warehouse.receipt_number_out_of_series"


class QuantityMismatch(WarehouseRejected):
    """INV-3: a receipt's quantity is the sum of its lots' weighed net weights."""

    code = "warehouse.quantity_mismatch"


class WrongStatus(WarehouseRejected):
    code = "warehouse.wrong_status"


class ReceiptFrozen(WarehouseRejected):
    """INV-8: a frozen receipt moves only by the regulator's unfreeze or the council's void."""

    code = "warehouse.receipt_frozen"


class ReceiptPledged(WarehouseRejected):
    """INV-4: nothing moves a pledged receipt without the pledgee."""

    code = "warehouse.receipt_pledged"


class AlreadyPledged(WarehouseRejected):
    """INV-4: a receipt has at most one live pledge."""

    code = "warehouse.already_pledged"


class OfferMismatch(WarehouseRejected):
    code = "warehouse.offer_mismatch"


class NotHolder(WarehouseRejected):
    code = "warehouse.not_holder"


class NotPledgee(WarehouseRejected):
    code = "warehouse.not_pledgee"


class NotIssuer(WarehouseRejected):
    code = "warehouse.not_issuer"


class IneligibleHolder(WarehouseRejected):
    code = "warehouse.ineligible_holder"


class AcceptanceWindowOver(WarehouseRejected):
    code = "warehouse.acceptance_window_over"


class ReceiptExpired(WarehouseRejected):
    code = "warehouse.receipt_expired"


class NotYetExpired(WarehouseRejected):
    code = "warehouse.not_yet_expired"


class CurePeriodRunning(WarehouseRejected):
    code = "warehouse.cure_period_running"


class CurePeriodOver(WarehouseRejected):
    code = "warehouse.cure_period_over"


class NotAPartition(WarehouseRejected):
    """INV-7: children's lots are exactly the parent's, each in one child."""

    code = "warehouse.not_a_partition"


class MergeMismatch(WarehouseRejected):
    code = "warehouse.merge_mismatch"


class OutboundEvidenceMissing(WarehouseRejected):
    code = "warehouse.outbound_evidence_missing"


class CaseUnknown(WarehouseRejected):
    code = "warehouse.case_unknown"


class NotFrozen(WarehouseRejected):
    code = "warehouse.not_frozen"


class AlreadyFrozen(WarehouseRejected):
    code = "warehouse.already_frozen"


class PaperMismatch(WarehouseRejected):
    """INV-12: a paper receipt comes back electronic only over exactly its own lots."""

    code = "warehouse.paper_mismatch"


class ExtensionNotLater(WarehouseRejected):
    code = "warehouse.extension_not_later"


class CaseMismatch(WarehouseRejected):
    """A freeze is lifted under the case that imposed it."""

    code = "warehouse.case_mismatch"


# --- monitoring: reconciliation, alerts and the HELD overlay (`monitor.py`) -----------------------


class ReceiptHeld(WarehouseRejected):
    """An open alert holds the receipt, or a bin its goods lie in, until the supervisor resolves it."""

    code = "warehouse.receipt_held"


class BinHeld(WarehouseRejected):
    """No new receipt over goods in a bin an open alert holds."""

    code = "warehouse.bin_held"


class NotSupervisor(WarehouseRejected):
    code = "warehouse.not_supervisor"


class AlertUnknown(WarehouseRejected):
    code = "warehouse.alert_unknown"


class AlertResolved(WarehouseRejected):
    code = "warehouse.alert_resolved"


# finance: prices, facilities, valuation (`finance.py`)


class NotPublisher(WarehouseRejected):
    code = "warehouse.not_publisher"


class SourceNotAppointed(WarehouseRejected):
    """The publisher was not appointed for this price source."""

    code = "warehouse.source_not_appointed"


class SpecNotAppointed(WarehouseRejected):
    """The publisher was not appointed for this spec."""

    code = "warehouse.spec_not_appointed"


class MarkExists(WarehouseRejected):
    """One mark per spec, source and trading day."""

    code = "warehouse.mark_exists"


class MarkTooOld(WarehouseRejected):
    """A mark for a day before its spec's latest, or a new day before the as-of day."""

    code = "warehouse.mark_too_old"


class NotBank(WarehouseRejected):
    code = "warehouse.not_bank"


class NotFacilityBank(WarehouseRejected):
    """Only the facility's own bank reports on it, tops it up or closes it."""

    code = "warehouse.not_facility_bank"


class FacilityExists(WarehouseRejected):
    code = "warehouse.facility_exists"


class FacilityUnknown(WarehouseRejected):
    code = "warehouse.facility_unknown"


class FacilityBorrowerMismatch(WarehouseRejected):
    """The pledgor is not the facility's borrower."""

    code = "warehouse.facility_borrower_mismatch"


class FacilityClosed(WarehouseRejected):
    code = "warehouse.facility_closed"


class ThresholdOutOfBounds(WarehouseRejected):
    """Facility thresholds are ordered initial < warning < call < liquidation, within the council's bounds."""

    code = "warehouse.threshold_out_of_bounds"


class LimitExceeded(WarehouseRejected):
    """The outstanding balance exceeds the facility's limit."""

    code = "warehouse.limit_exceeded"


class InitialLtvExceeded(WarehouseRejected):
    """A drawdown takes the facility above its initial LTV on its last valuation."""

    code = "warehouse.initial_ltv_exceeded"


class FacilityNotClosable(WarehouseRejected):
    """A facility closes with nothing outstanding and no live pledge."""

    code = "warehouse.facility_not_closable"

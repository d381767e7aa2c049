"""The answers of the application queries whose shapes the API knows, as types: each has the
checkpoint `height` first, then the fields the application's query renders, in its order.
A route answers one of these by converting the query's answer strictly, so a field the type
lacks fails (in the tests first) instead of reaching a client undescribed.

Statuses and kinds are plain strings here: the API does not import the applications' modules
(they import the API's client)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .responses import Address, Height, Hex, Response

# --- notary -----------------------------------------------------------------------------------


class NotaryDocumentView(Response, frozen=True, kw_only=True):
    document: Annotated[Hex, Meta(description="its SHA-256")]
    owner: Address
    title: str
    registered_entry: Hex
    registered_height: Height
    registered_ms: int
    transfers: Annotated[int, Meta(ge=0, description="times it was handed on")]
    last_entry: Annotated[Hex | None, Meta(description="the last transfer; null when never handed on")]


class NotaryDocument(Response, frozen=True, kw_only=True):
    """`notary/document`: a registered document, its owner and its history counts."""

    height: Height
    document: Annotated[Hex, Meta(description="its SHA-256")]
    owner: Address
    title: str
    registered_entry: Hex
    registered_height: Height
    registered_ms: int
    transfers: Annotated[int, Meta(ge=0, description="times it was handed on")]
    last_entry: Annotated[Hex | None, Meta(description="the last transfer; null when never handed on")]


class NotaryOwned(Response, frozen=True, kw_only=True):
    """`notary/owned`: the documents an account holds."""

    height: Height
    owner: Address
    documents: list[NotaryDocumentView]


# --- warehouse --------------------------------------------------------------------------------


class WarehouseReceiptLine(Response, frozen=True, kw_only=True):
    """One line of the receipt register. A party not yet named is an empty string."""

    id: Hex
    number: int
    warehouse: Address
    holder: Address
    depositor: Address
    status: Annotated[str, Meta(description="proposed, active, transfer_offered, pledge_requested, pledged,"
                                            " defaulted, delivery_pending, expired, superseded, cancelled, void"
                                            " or converted_to_paper")]
    frozen_case: Annotated[int, Meta(ge=0, description="the regulator's case freezing it; 0: not frozen")]
    pledge: Annotated[Hex, Meta(description="the live pledge's id; empty when none")]
    commodity: str
    spec: str
    grade: str
    quantity_kg: int
    pieces: int
    lots: Annotated[int, Meta(ge=0, description="how many lots it covers")]
    issued_height: Height
    storage_until_ms: int


class WarehouseRegister(Response, frozen=True, kw_only=True):
    """`warehouse/register`: the receipt register, filtered; `count` is every match, the list at most
    the first ones."""

    height: Height
    count: Annotated[int, Meta(ge=0)]
    receipts: list[WarehouseReceiptLine]


class WarehouseLineageLine(WarehouseReceiptLine, frozen=True, kw_only=True):
    """A receipt of the lineage: its register line, the receipts it came from and those that came
    from it, and the entries that wrote it."""

    parents: list[Hex]
    children: list[Hex]
    history: list[Hex]


class WarehouseHistory(Response, frozen=True, kw_only=True):
    """`warehouse/history`: the receipt's entries, and its lineage (parents and children, transitively)."""

    height: Height
    receipt: Hex
    history: list[Hex]
    lineage: list[WarehouseLineageLine]


class WarehouseTrail(Response, frozen=True, kw_only=True):
    """`warehouse/trail`: the entries a proof of the receipt's history is made of."""

    height: Height
    receipt: Hex
    history: Annotated[list[Hex], Meta(description="the entries that wrote the receipt")]
    lots: Annotated[list[Hex], Meta(description="the bookings of its lots")]
    evidence: Annotated[list[Hex], Meta(description="the device readings of them")]

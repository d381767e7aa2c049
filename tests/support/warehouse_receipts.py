"""Receipt proposals built the way the warehouse proposes them."""

from __future__ import annotations

from typing import Any

from bilayer.apps.warehouse.operations import (
    ProposeReceipt,
)
from bilayer.apps.warehouse.records import Terms
from tests.support.warehouse_world import YEAR, World, digest, goods, key


def proposal(w: World, lots: tuple[bytes, ...], **changes: Any) -> ProposeReceipt:
    """wh1's next proposal over these lots for dep, with some fields changed."""
    info = w.k.warehouse(key("wh1"))
    assert info is not None
    listed = [w.k.lot(k) for k in lots]
    fields: dict[str, Any] = {
        "number": info.next_receipt_no, "depositor": key("dep"), "lots": lots,
        "goods": goods(sum(x.net_kg for x in listed if x), sum(x.pieces for x in listed if x)),
        "terms": Terms(3, w.time + YEAR, 50, "CNY"), "negotiable": True, "rights_notice": digest("n"),
        "issue_place": "Qingdao", "signer": "clerk"}
    fields.update(changes)
    return ProposeReceipt(**fields)

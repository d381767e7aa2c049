"""The HTTP status of every error code is the API's table (`api/status.py`): each code a node can
answer with keeps the status it has always had, and the failures the HTTP layer raises itself
have codes the table places."""

from __future__ import annotations

import importlib
import json
import pkgutil

import bilayer
from bilayer.api.status import BAD_INPUT, HTTP_CODES, STATUS_OF_CODE, error_status
from bilayer.errors import BilayerError, NotYetProvable, PayloadWithheld, RateLimited
from tests.support.paths import REPO

VECTORS = REPO / "tests" / "support" / "vectors"


def _error_classes() -> set[type[BilayerError]]:
    for module in pkgutil.walk_packages(bilayer.__path__, "bilayer."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[BilayerError]] = set()
    todo: list[type[BilayerError]] = [BilayerError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_error_code_answers_with_the_status_it_always_had() -> None:
    """The statuses are part of the API's contract: recorded once, when they moved from the
    error classes to the table; a new code adds its line to the record."""
    recorded = json.loads((VECTORS / "error_status_v1.json").read_text())
    codes = {cls.code for cls in _error_classes()}
    assert len(codes) > 80
    assert codes - set(recorded) == set(), "a new error code: add its status to the record"
    differing = {code: (error_status(code), recorded[code]) for code in codes if error_status(code) != recorded[code]}
    assert differing == {}


def test_the_table_names_only_codes_that_exist_or_that_the_http_layer_raises() -> None:
    known = {cls.code for cls in _error_classes()} | set(HTTP_CODES.values()) | {"internal"}
    assert set(STATUS_OF_CODE) - known == set()
    assert all(status != BAD_INPUT for status in STATUS_OF_CODE.values())
    assert {error_status(code) for code in HTTP_CODES.values()} == set(HTTP_CODES)


def test_statuses_by_code() -> None:
    assert error_status(NotYetProvable.code) == 409 and error_status(PayloadWithheld.code) == 410
    assert error_status(RateLimited.code) == 429 and error_status("no_such_code") == 400

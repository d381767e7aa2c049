"""Application operators: the role that runs one application and may pause it at once.

Keeper of these state keys:

    b"O" + key + kind   -> the number of the proposal that made `key` an operator of `kind`
    b"Y" + kind         -> OperatorPause: the application is paused by one of its operators

The council appoints and revokes operators by proposal. An operator's whole power is over
its own application: `app.pause` takes effect in the checkpoint that orders it (entries of
that kind are REJECTED `service_suspended`, with cause `operator:<pause entry id>`), and
`app.resume` ends it. An operator cannot lift a suspension the council decided, and the
council's `resume_service` ends an operator's pause as well: the council outranks the role
it appoints. Revoking an operator leaves its pause in force until someone resumes.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from .. import codec
from .errors import ExecutionRejected
from .state import State

PUBLIC_KEY_SIZE = 32


class NotApplicationOperator(ExecutionRejected):
    code = "not_application_operator"


class ServiceNotPaused(ExecutionRejected):
    code = "service_not_paused"


class OperatorPause(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    operator: bytes
    entry_id: bytes
    reason: str
    time_ms: int
    height: int

    @property
    def cause(self) -> str:
        return f"operator:{self.entry_id.hex()}"


def operator_key(key: bytes, kind: str) -> bytes:
    return b"O" + key + kind.encode()


def pause_key(kind: str) -> bytes:
    return b"Y" + kind.encode()


def appoint(state: State, key: bytes, kind: str, decision: int) -> None:
    state.set(operator_key(key, kind), codec.encode(decision))


def revoke(state: State, key: bytes, kind: str) -> None:
    state.delete(operator_key(key, kind))


def end_pause(state: State, kind: str) -> None:
    state.delete(pause_key(kind))


def pause_of(state: State, kind: str) -> OperatorPause | None:
    raw = state.get(pause_key(kind))
    return None if raw is None else codec.decode(raw, OperatorPause)


def operators(state: State) -> Iterator[tuple[bytes, str, int]]:
    """(operator key, application kind, appointing proposal), in key order."""
    for key, value in state.items():
        if key[:1] == b"O" and len(key) > 1 + PUBLIC_KEY_SIZE:
            yield key[1:1 + PUBLIC_KEY_SIZE], key[1 + PUBLIC_KEY_SIZE:].decode(), codec.decode(value, int)


def pauses(state: State) -> Iterator[tuple[str, OperatorPause]]:
    for key, value in state.items():
        if key[:1] == b"Y":
            yield key[1:].decode(), codec.decode(value, OperatorPause)


def require_operator(state: State, author: bytes, kind: str) -> None:
    if state.get(operator_key(author, kind)) is None:
        raise NotApplicationOperator(f"only an operator of {kind!r} appointed by the council may pause or resume it")


def pause(state: State, kind: str, record: OperatorPause) -> None:
    require_operator(state, record.operator, kind)
    state.set(pause_key(kind), codec.encode(record))


def resume(state: State, author: bytes, kind: str) -> None:
    require_operator(state, author, kind)
    if state.get(pause_key(kind)) is None:
        raise ServiceNotPaused(f"{kind!r} is not paused by its operators")
    end_pause(state, kind)

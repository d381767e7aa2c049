"""Applications (operation kinds) as services: the council suspends and resumes them, and
appoints operators, each of whom may pause and resume its own application at once.

Keeper of these state keys:

    b"S" + kind         -> application suspended by proposal number
    b"O" + key + kind   -> the number of the proposal that made `key` an operator of `kind`
    b"Y" + kind         -> OperatorPause: the application is paused by one of its operators

An operator's whole power is over its own application: `app.pause` takes effect in the
checkpoint that orders it (entries of that kind are REJECTED `service_suspended`, with cause
`operator:<pause entry id>`), and `app.resume` ends it. An operator cannot lift a suspension
the council decided, and the council's `resume_service` ends an operator's pause as well:
the council outranks the role it appoints. Revoking an operator leaves its pause in force
until someone resumes.
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...errors import BadRequest
from ...keys.address import PUBLIC_KEY_SIZE
from ...ledger.entry import EntryHeader
from ...ledger.operations import (
    AppointOperator,
    AppPause,
    AppResume,
    Operation,
    ResumeService,
    RevokeOperator,
    SuspendService,
)
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext, decision_cause
from .options import ActionOptions


class ServiceSuspended(ExecutionRejected):
    code = "service_suspended"


class SuspendedByCouncil(ExecutionRejected):
    code = "suspended_by_council"


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


SUSPENDED, OPERATOR, PAUSED = b"S", b"O", b"Y"


def _suspended_key(kind: str) -> bytes:
    return SUSPENDED + kind.encode()


def _operator_key(key: bytes, kind: str) -> bytes:
    return OPERATOR + key + kind.encode()


def _pause_key(kind: str) -> bytes:
    return PAUSED + kind.encode()


class Services(Keeper):
    """The gate reads an entry kind's suspension and pause for every entry: one lookup each."""

    __slots__ = ()
    KEYS = ((SUSPENDED, None), (OPERATOR, None), (PAUSED, None))

    def suspension(self, kind: str) -> int | None:
        """The proposal that suspended `kind`, or None."""
        raw = self.state.get(SUSPENDED + kind.encode())
        return None if raw is None else codec.decode(raw, int)

    def suspended(self) -> list[tuple[str, int]]:
        return [(key[1:].decode(), codec.decode(value, int)) for key, value in self.state.scan(SUSPENDED)]

    def pause_of(self, kind: str) -> OperatorPause | None:
        raw = self.state.get(PAUSED + kind.encode())
        return None if raw is None else codec.decode(raw, OperatorPause)

    def pauses(self) -> list[tuple[str, OperatorPause]]:
        return [(key[1:].decode(), codec.decode(value, OperatorPause)) for key, value in self.state.scan(PAUSED)]

    def is_operator(self, key: bytes, kind: str) -> bool:
        return self.state.get(_operator_key(key, kind)) is not None

    def operators(self) -> list[tuple[bytes, str, int]]:
        """(operator key, application kind, appointing proposal), in key order."""
        return [(key[1:1 + PUBLIC_KEY_SIZE], key[1 + PUBLIC_KEY_SIZE:].decode(), codec.decode(value, int))
                for key, value in self.state.scan(OPERATOR) if len(key) > 1 + PUBLIC_KEY_SIZE]

    def require_operator(self, author: bytes, kind: str) -> None:
        if not self.is_operator(author, kind):
            raise NotApplicationOperator(
                f"only an operator of {kind!r} appointed by the council may pause or resume it")

    def suspend(self, kind: str, number: int) -> None:
        self.state.set(_suspended_key(kind), codec.encode(number))

    def resume(self, kind: str) -> None:
        """The council's resumption ends its suspension and any operator's pause."""
        self.state.delete(_suspended_key(kind))
        self.state.delete(_pause_key(kind))

    def appoint(self, key: bytes, kind: str, number: int) -> None:
        self.state.set(_operator_key(key, kind), codec.encode(number))

    def revoke(self, key: bytes, kind: str) -> None:
        self.state.delete(_operator_key(key, kind))

    def pause(self, kind: str, record: OperatorPause) -> None:
        self.require_operator(record.operator, kind)
        self.state.set(_pause_key(kind), codec.encode(record))

    def end_pause(self, author: bytes, kind: str) -> None:
        self.require_operator(author, kind)
        council = self.suspension(kind)
        if council is not None:
            raise SuspendedByCouncil(f"the council suspended {kind!r}; only the council resumes it",
                                     decision_cause(council))
        if self.pause_of(kind) is None:
            raise ServiceNotPaused(f"{kind!r} is not paused by its operators")
        self.state.delete(_pause_key(kind))


def apply_app_pause(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, AppPause)
    Services(state).pause(op.kind, OperatorPause(header.author, entry_id, op.reason, ctx.time_ms, ctx.height))


def apply_app_resume(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, AppResume)
    Services(state).end_pause(header.author, op.kind)


def suspend_service(ctx: ExecContext, state: State, number: int, action: SuspendService) -> None:
    Services(state).suspend(action.kind, number)


def resume_service(ctx: ExecContext, state: State, number: int, action: ResumeService) -> None:
    Services(state).resume(action.kind)


def appoint_operator(ctx: ExecContext, state: State, number: int, action: AppointOperator) -> None:
    Services(state).appoint(action.key, action.kind, number)


def revoke_operator(ctx: ExecContext, state: State, number: int, action: RevokeOperator) -> None:
    Services(state).revoke(action.key, action.kind)


def _operator_action(o: ActionOptions, action: str) -> tuple[bytes, str]:
    if not o.service or not o.target:
        raise BadRequest(f"--action {action} needs --target ADDRESS and --service KIND (the application)")
    return o.target_key(action), o.service


register_action(ActionSpec(
    SuspendService, "suspend", "suspend an application: its entries are refused",
    build=lambda o, _: SuspendService(o.service_kind("suspend")), effect=suspend_service,
    refusals=(ServiceSuspended.code, SuspendedByCouncil.code)))
register_action(ActionSpec(
    ResumeService, "resume", "resume an application (ends the council's suspension and any operator's pause)",
    build=lambda o, _: ResumeService(o.service_kind("resume")), effect=resume_service))
register_action(ActionSpec(
    AppointOperator, "appoint-operator", "make a key the operator of an application (it may pause and resume it)",
    build=lambda o, _: AppointOperator(*_operator_action(o, "appoint-operator")), effect=appoint_operator))
register_action(ActionSpec(
    RevokeOperator, "revoke-operator", "revoke an application's operator (its pause stays until resumed)",
    build=lambda o, _: RevokeOperator(*_operator_action(o, "revoke-operator")), effect=revoke_operator))

"""The module API for applications.

An application lives in `bilayer/apps/<name>/` and declares one `Application`: its
operation kinds (named `<name>.<verb>`, each a registered `Operation` with its handler),
its keeper (its keys live under `b"Z" + name + b"\\x00"` and nowhere else), its read
queries (served at `GET /v1/apps/<name>/<query>`), its CLI group (`bilayer <name> ...`),
its console page (a script module the web console loads for `#/<name>/...`), the proof
documents it defines (by their JSON `type`), which `bilayer audit verify`
checks offline against genesis like its own, and an optional end-of-checkpoint function.

`end_checkpoint(ctx, state)` runs once per checkpoint, after its last entry, on every node
alike (Cosmos calls this an EndBlocker): the place for work that follows from the
checkpoint as a whole rather than from one entry, such as reconciling device evidence or
valuing collateral. It runs in its own state transaction; an `ExecutionRejected` it raises
undoes its writes and the checkpoint stands. Its cost must grow with what the checkpoint
changed, not with the state, so it keeps its own work queues and time indexes.
It is installed by naming its package in `INSTALLED`.

The compliance gate applies to an application's entries as to any other, with nothing for
the application to write: the council's suspension and its operators' pauses (both by
operation kind), key and identity bans, the identity rule of each of its kinds, and
freezes of the accounts each operation names as its parties (`Operation.parties`). Its
entries execute inside the entry's state transaction, so a handler that refuses after
writing leaves nothing behind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..genesis import Genesis
from ..ledger.operations import MANAGEMENT_PREFIXES, Operation, operation_kinds
from .governance.context import ExecContext, Handler
from .state import Keeper, KeyShape, State

INSTALLED = ("bilayer.apps.notary", "bilayer.apps.warehouse")
APP_PREFIX = b"Z"

Query = Callable[[State, Mapping[str, str]], dict[str, Any]]
EndCheckpoint = Callable[[ExecContext, State], None]
# a proof document's bytes and the trusted genesis -> what it proves; raises a `ProofInvalid`
ProofVerifier = Callable[[bytes, Genesis], dict[str, Any]]


def app_prefix(name: str) -> bytes:
    return APP_PREFIX + name.encode() + b"\x00"


class AppKeeper(Keeper):
    """An application's keeper: keys relative to its own prefix, so it cannot reach another's."""

    __slots__ = ()
    APP: ClassVar[str] = ""

    @classmethod
    def owned_keys(cls) -> tuple[KeyShape, ...]:
        return ((app_prefix(cls.APP), None),)

    def _get(self, key: bytes) -> bytes | None:
        return self.state.get(app_prefix(self.APP) + key)

    def _put(self, key: bytes, value: bytes) -> None:
        self.state.set(app_prefix(self.APP) + key, value)

    def _delete(self, key: bytes) -> None:
        self.state.delete(app_prefix(self.APP) + key)

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key relative to the application's prefix, value), in key order."""
        own = app_prefix(self.APP)
        for key, value in self.state.scan(own + prefix):
            yield key[len(own):], value


@dataclass(frozen=True)
class AppOperation:
    struct: type[Operation]
    handler: Handler


@dataclass(frozen=True)
class Application:
    name: str
    summary: str
    operations: tuple[AppOperation, ...]
    keeper: type[AppKeeper]
    queries: Mapping[str, Query] = field(default_factory=dict)
    cli: str = ""  # "module:attribute" of its click group, imported only by the CLI
    # its console page: a JavaScript module in bilayer/api/static exporting `title` and
    # `page(path, params)`, shown at `#/<name>/...` with a link in the console's navigation
    console: str = ""
    proofs: Mapping[str, ProofVerifier] = field(default_factory=dict)  # document `type` -> its verifier
    end_checkpoint: EndCheckpoint | None = None

    def handlers(self) -> dict[str, Handler]:
        return {operation.struct.KIND: operation.handler for operation in self.operations}


class ApplicationInvalid(ValueError):
    """An application declaration that breaks the module API (a bug in the application)."""


_APPS: dict[str, Application] = {}


def register_application(app: Application) -> Application:
    """Check the declaration against the module API and record it."""
    if not app.name.isidentifier() or not app.name.islower() or app.name in _APPS:
        raise ApplicationInvalid(f"application name {app.name!r} is not a lower-case identifier, or is taken")
    if app.name != app.keeper.APP:
        raise ApplicationInvalid(f"{app.keeper.__name__} keeps the keys of {app.keeper.APP!r}, not {app.name!r}")
    for operation in app.operations:
        kind = operation.struct.KIND
        if not kind.startswith(app.name + ".") or kind.startswith(MANAGEMENT_PREFIXES):
            raise ApplicationInvalid(f"operation kind {kind!r} is not named {app.name}.<verb>")
        if kind not in operation_kinds():
            raise ApplicationInvalid(f"operation kind {kind!r} is not registered (decorate it with @register)")
    _APPS[app.name] = app
    return app


def installed_applications() -> list[Application]:
    """Every installed application, importing each package once (it registers itself)."""
    for package in INSTALLED:
        importlib.import_module(package)
    return [_APPS[name] for name in sorted(_APPS)]


def proof_verifier(document_type: str) -> ProofVerifier | None:
    """The verifier of an application's proof document of this `type`, if one is installed."""
    for app in installed_applications():
        if document_type in app.proofs:
            return app.proofs[document_type]
    return None


def application(name: str) -> Application | None:
    installed_applications()
    return _APPS.get(name)

"""Notary: documents registered by their SHA-256, each with one owner, handed on by its owner.

A small real application on the module API (`execution/application.py`): two operation
kinds, one keeper under its own prefix, two read queries, a CLI group. It writes no
compliance code: the council can suspend `notary.register` or `notary.transfer`, appoint an
operator who pauses them, require an identity level for them, ban a key, or freeze an
account, and the gate refuses the notary's entries accordingly (a transfer to a frozen
account is refused: both owners are the operation's parties).
"""

from __future__ import annotations

from ...execution.application import Application, AppOperation, register_application
from .keeper import Documents, apply_register, apply_transfer, query_document, query_owned
from .operations import NotaryRegister, NotaryTransfer

APPLICATION = register_application(Application(
    name="notary",
    summary="documents registered by hash, with an owner who may hand them on",
    operations=(AppOperation(NotaryRegister, apply_register), AppOperation(NotaryTransfer, apply_transfer)),
    keeper=Documents,
    queries={"document": query_document, "owned": query_owned},
    cli="bilayer.apps.notary.cli:notary",
))

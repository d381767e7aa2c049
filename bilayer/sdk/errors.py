"""The SDK's own refusals. A node's refusal is a `bilayer.errors.RemoteError` whose
`remote_code` is the node's stable code (`insufficient_work`, `rate_limited`, `not_found`,
...); a node that cannot be reached after every try is `NodeUnreachable`; an outcome that
does not come in time is `WaitTimeout`; a malformed operation is refused by its builder with
the code the node would give (`invalid_operation`, `warehouse.*`)."""

from __future__ import annotations

from ..errors import BilayerError


class NoSigningKey(BilayerError):
    """Writing needs a signing key: give the client one, or pass `key=` to the call."""

    code = "sdk_no_signing_key"


class UnexpectedResponse(BilayerError):
    """The node answered with a body that is not what this route returns (another program on
    that port, or a node of an incompatible version)."""

    code = "sdk_unexpected_response"

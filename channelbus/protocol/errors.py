"""Every error of the wire protocol, defined once.

The hierarchy::

    BusError                      base: carries the wire type, message, details and trace id
    ├── BadRequest                error.bad_request   frame is not a valid envelope
    ├── UnknownMessageType        error.msg_type      ``t`` is not registered
    ├── ValidationFailed          error.validation    payload does not match the schema
    ├── Unauthorized              error.unauthorized  user may not send this type
    ├── NotFound                  error.not_found     a referenced object does not exist
    ├── SubscribeRefused          error.subscribe     a topic subscription was refused
    ├── RateLimited               error.rate_limited  the connection sends too fast
    ├── TooLarge                  error.too_large     the frame exceeds the size limit
    ├── JobFailed                 error.job           a background handler failed after retries
    ├── Unavailable               error.unavailable   the channel layer (Redis) cannot be reached now
    └── ServerError               error.server        an unexpected error in a handler

A handler may raise any of these, or its own subclass of :class:`BusError`
with an ``error.<name>`` type (a domain error). The consumer turns every one
of them into an error frame (state ``f``) whose payload is
``{"msg": <text>, **details}``. No traceback or internal detail ever goes
into a frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "BusError",
    "CloseCode",
    "JobFailed",
    "NotFound",
    "RateLimited",
    "ServerError",
    "SubscribeRefused",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownMessageType",
    "ValidationFailed",
]


class CloseCode:
    """WebSocket close codes used by channelbus (protocol section "Close codes")."""

    #: The server requires a signed-in user and the connection has none.
    NOT_SIGNED_IN = 4401
    #: Origin not allowed, or access revoked.
    FORBIDDEN = 4403
    #: Too many errors or messages (a sustained flood).
    TOO_MANY = 4429
    #: Too slow: the client did not read what it was sent (its outbox stayed full, see ``server/outbox.py``).
    TOO_SLOW = 4408
    #: The frame could not be read at all because of its size.
    TOO_BIG = 1009
    #: A normal close (either side).
    NORMAL = 1000
    #: Try again later: the server cannot reach its channel layer (Redis) to set the connection up.
    TRY_AGAIN_LATER = 1013
    #: The server is going away.
    GOING_AWAY = 1001
    #: Never sent by the server: what the Python client closes with after a frame it cannot read.
    PROTOCOL_ERROR = 1002
    #: Never sent: the connection dropped without a close frame (what a client reports then).
    ABNORMAL = 1006


class BusError(Exception):
    """Base of every error that is sent to a client as an ``error.*`` frame.

    Subclasses set :attr:`type` (the wire type, ``error.<name>``) and
    :attr:`default_msg`. Instances carry the human text, the details merged
    into the payload, and the trace id of the message that caused them.
    """

    #: Wire type of the error frame. Must start with ``error.``.
    type: ClassVar[str] = "error.server"
    #: Human text used when none is given.
    default_msg: ClassVar[str] = "The server could not handle this message."

    def __init__(self, msg: str | None = None, *, trace_id: str | None = None, **details: Any) -> None:
        self.msg = msg or self.default_msg
        self.details = details
        self.trace_id = trace_id
        super().__init__(self.msg)

    def payload(self) -> dict[str, Any]:
        """The error frame's payload: ``{"msg": ..., **details}``."""
        return {"msg": self.msg, **self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.msg!r}, trace_id={self.trace_id!r}, **{self.details!r})"


class BadRequest(BusError):
    """The frame is not JSON, not an object, has unknown keys, or ``t``/``i`` are malformed."""

    type = "error.bad_request"
    default_msg = "The frame is not a valid envelope."


class UnknownMessageType(BusError):
    """``t`` is not registered for incoming messages. Details: ``type_name``."""

    type = "error.msg_type"
    default_msg = "Unknown message type."


class ValidationFailed(BusError):
    """The payload does not match the schema. Details: ``type_name``, ``errors``."""

    type = "error.validation"
    default_msg = "The payload is not valid."


class Unauthorized(BusError):
    """The user may not send this message type, or must sign in. Details: ``type_name``."""

    type = "error.unauthorized"
    default_msg = "You may not send this message."


class NotFound(BusError):
    """An object the message refers to does not exist."""

    type = "error.not_found"
    default_msg = "Not found."


class SubscribeRefused(BusError):
    """A topic subscription was refused. Details: ``topic``."""

    type = "error.subscribe"
    default_msg = "You may not subscribe to this topic."


class RateLimited(BusError):
    """The connection sends faster than allowed. Details: ``retry_after`` (seconds)."""

    type = "error.rate_limited"
    default_msg = "Too many messages; slow down."


class TooLarge(BusError):
    """The frame exceeds the size limit. Details: ``limit`` (bytes)."""

    type = "error.too_large"
    default_msg = "The frame is too large."


class JobFailed(BusError):
    """A background handler failed after its retries. Details: ``type_name``, ``attempts``."""

    type = "error.job"
    default_msg = "The job failed."


class Unavailable(BusError):
    """What the message needed could not be done now: the channel layer (Redis) cannot be reached.

    A handler whose ``publish()`` could not reach the layer answers with it (the hub's
    ``DeliveryFailed`` is one), as does a subscription that needed the layer. Retrying later may work.
    """

    type = "error.unavailable"
    default_msg = "The server cannot deliver messages right now; try again shortly."


class ServerError(BusError):
    """An unexpected error in a handler. Never carries internals."""

    type = "error.server"
    default_msg = "The server could not handle this message."

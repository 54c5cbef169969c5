"""The frames of the protocol that are no registered message: the errors, progress, ``s.closing``.

Their payloads are written down here as pydantic models, so that they are described like any other
(``docs/protocol.md`` is what they follow).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..protocol import errors

__all__ = [
    "ERRORS",
    "FRAMES",
    "REQUEST_ERRORS",
    "Closing",
    "ErrorDetails",
    "Progress",
    "ValidationError",
]


class ErrorDetails(BaseModel):
    """An error frame's payload: ``msg``, a text for people, and the details (a domain error's too)."""

    model_config = ConfigDict(extra="allow", title="ErrorDetails")

    msg: str


class TypeNamed(ErrorDetails):
    """Names the message type that was refused."""

    type_name: str


class ValidationErrorItem(BaseModel):
    """One problem of a payload: where (``loc``, the path into ``p``), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationError(TypeNamed):
    """Every problem of the payload, as pydantic, a Django form or a DRF serializer found them."""

    errors: list[ValidationErrorItem]


class Refused(ErrorDetails):
    """The topic that was refused."""

    topic: str


class RetryAfter(ErrorDetails):
    """Seconds to wait before sending again."""

    retry_after: float


class Limit(ErrorDetails):
    """The size limit, in bytes."""

    limit: int


class Attempts(TypeNamed):
    """How many attempts ran; ``timeout`` is set when the last one ran out of time."""

    attempts: int


class Progress(BaseModel):
    """``p`` of an ``r`` frame from ``self.progress()``: keys left at None are left out."""

    done: float
    total: float | None = None
    text: str | None = None


class Closing(BaseModel):
    """``p`` of ``s.closing``: the close code that follows and why."""

    code: int
    reason: str


def _error(cls: type[errors.BusError], payload: type[BaseModel]) -> tuple[str, tuple[str, Any]]:
    summary = " ".join((cls.__doc__ or cls.default_msg).split("\n\n")[0].split())
    return cls.type, (summary, payload)


#: Every built-in error: ``type -> (summary, payload)``.
ERRORS: dict[str, tuple[str, Any]] = dict(
    sorted(
        [
            _error(errors.BadRequest, ErrorDetails),
            _error(errors.UnknownMessageType, TypeNamed),
            _error(errors.ValidationFailed, ValidationError),
            _error(errors.Unauthorized, TypeNamed),
            _error(errors.NotFound, ErrorDetails),
            _error(errors.SubscribeRefused, Refused),
            _error(errors.RateLimited, RetryAfter),
            _error(errors.TooLarge, Limit),
            _error(errors.JobFailed, Attempts),
            _error(errors.Unavailable, ErrorDetails),
            _error(errors.ServerError, ErrorDetails),
        ]
    )
)

#: Errors that may answer a request of any type (``error.job`` is added for deferred types).
REQUEST_ERRORS = (
    "error.validation",
    "error.unauthorized",
    "error.rate_limited",
    "error.unavailable",
    "error.server",
)

#: Frames of the protocol that are neither a registered message nor an error.
FRAMES: dict[str, tuple[str, Any]] = {
    "s.closing": ("The server is about to close this connection: the close code and why.", Closing),
}

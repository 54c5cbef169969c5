"""The channelbus wire protocol: envelope parsing, encoding, errors, states and limits.

Pure functions and small classes with no Django and no I/O, usable by the
server, the Python client and tests alike.
"""

from __future__ import annotations

from . import states
from .envelope import INCOMING_KEYS, Envelope, decode, encode, error_frame, valid_trace_id, valid_type_name
from .errors import (
    BadRequest,
    BusError,
    CloseCode,
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    SubscribeRefused,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownMessageType,
    ValidationFailed,
)
from .limits import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_PAYLOAD_DEPTH,
    MAX_TRACE_ID_LENGTH,
    MAX_TYPE_LENGTH,
    TYPE_PATTERN,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "INCOMING_KEYS",
    "MAX_PAYLOAD_DEPTH",
    "MAX_TRACE_ID_LENGTH",
    "MAX_TYPE_LENGTH",
    "TYPE_PATTERN",
    "BadRequest",
    "BusError",
    "CloseCode",
    "Envelope",
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
    "decode",
    "encode",
    "error_frame",
    "states",
    "valid_trace_id",
    "valid_type_name",
]

"""Envelope parsing and encoding: bytes in, an envelope or an error out; no I/O.

Limits (all in :mod:`channelbus.protocol.limits`):

* a frame larger than ``max_frame_bytes`` (UTF-8 bytes) is :class:`TooLarge`;
* ``t`` must match :data:`TYPE_PATTERN` and be at most :data:`MAX_TYPE_LENGTH` characters;
* ``i`` must be a string of 1 to :data:`MAX_TRACE_ID_LENGTH` printable characters (no control
  characters, no line separators: it is written into log lines);
* only the keys ``t``, ``i`` and ``p`` are accepted from a client.

Every failure is a :class:`BadRequest` or :class:`TooLarge` that carries the
frame's ``i`` whenever that ``i`` could be read and is itself valid, so the
client can match the error to its request. A too-large frame is parsed for
its ``i`` only if it is at most 4x the limit (the server read it already;
larger ones are refused without parsing).
"""

from __future__ import annotations

from typing import Any

import orjson

from . import states
from .errors import BadRequest, BusError, TooLarge
from .limits import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_PAYLOAD_DEPTH,
    MAX_TRACE_ID_LENGTH,
    MAX_TYPE_LENGTH,
    TYPE_PATTERN,
)

__all__ = [
    "INCOMING_KEYS",
    "Envelope",
    "decode",
    "encode",
    "error_frame",
    "valid_trace_id",
    "valid_type_name",
]

#: Keys a client may send.
INCOMING_KEYS = frozenset(("t", "i", "p"))

_type_match = TYPE_PATTERN.match
_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError


class Envelope:
    """A decoded incoming envelope: type ``t``, trace id ``i`` (or None) and payload ``p`` (or None)."""

    __slots__ = ("i", "p", "t")

    def __init__(self, t: str, i: str | None = None, p: Any = None) -> None:
        self.t = t
        self.i = i
        self.p = p

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Envelope) and (self.t, self.i, self.p) == (other.t, other.i, other.p)

    def __repr__(self) -> str:
        return f"Envelope(t={self.t!r}, i={self.i!r}, p={self.p!r})"


def valid_type_name(name: object) -> bool:
    """True if ``name`` is a well-formed message type name."""
    return type(name) is str and len(name) <= MAX_TYPE_LENGTH and _type_match(name) is not None


def valid_trace_id(trace_id: object) -> bool:
    """True if ``trace_id`` is a well-formed trace id (a string of 1 to 64 printable characters)."""
    return type(trace_id) is str and 0 < len(trace_id) <= MAX_TRACE_ID_LENGTH and trace_id.isprintable()


#: A too-large frame is still parsed for its ``i`` up to this many times the limit.
TOO_LARGE_READ_FACTOR = 4


def _read_trace_id(frame: str | bytes, n: int, max_frame_bytes: int) -> str | None:
    """The valid ``i`` of a too-large frame, if it is no more than 4x the limit (one orjson pass)."""
    if n > TOO_LARGE_READ_FACTOR * max_frame_bytes:
        return None
    try:
        data = _loads(frame)
    except (_JSONDecodeError, TypeError, ValueError):
        return None
    i = data.get("i") if type(data) is dict else None
    return i if valid_trace_id(i) else None


def decode(frame: str | bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Envelope:
    """Parse one incoming text frame into an :class:`Envelope`.

    Raises :class:`TooLarge` or :class:`BadRequest` (both :class:`BusError`)
    and nothing else.
    """
    n = len(frame)
    # A str character is 1 to 4 UTF-8 bytes: count the bytes only when it matters.
    if n > max_frame_bytes or (
        n * 4 > max_frame_bytes
        and isinstance(frame, str)
        and len(frame.encode("utf-8", "surrogatepass")) > max_frame_bytes
    ):
        raise TooLarge(
            f"The frame is larger than {max_frame_bytes} bytes.",
            trace_id=_read_trace_id(frame, n, max_frame_bytes),
            limit=max_frame_bytes,
        )
    try:
        data = _loads(frame)
    except (_JSONDecodeError, TypeError, ValueError):
        raise BadRequest("The frame is not valid JSON.") from None
    if type(data) is not dict:
        raise BadRequest("The frame must be a JSON object.")
    i = data.get("i")
    if i is not None and (type(i) is not str or not 0 < len(i) <= MAX_TRACE_ID_LENGTH or not i.isprintable()):
        raise BadRequest(f"'i' must be a string of 1 to {MAX_TRACE_ID_LENGTH} printable characters.")
    if len(data) > 3 or not INCOMING_KEYS.issuperset(data):
        unknown = sorted(k for k in data if k not in INCOMING_KEYS)
        raise BadRequest(f"Unknown envelope keys: {', '.join(unknown)}.", trace_id=i)
    t = data.get("t")
    if type(t) is not str or len(t) > MAX_TYPE_LENGTH or _type_match(t) is None:
        if t is None:
            raise BadRequest("'t' (the message type) is required.", trace_id=i)
        raise BadRequest(
            f"'t' must be a lower-case dotted name of at most {MAX_TYPE_LENGTH} characters.",
            trace_id=i,
        )
    p = data.get("p")
    if type(p) in _CONTAINERS and _too_deep(frame, p):
        raise BadRequest(f"'p' is nested deeper than {MAX_PAYLOAD_DEPTH} levels.", trace_id=i)
    return Envelope(t, i, p)


_CONTAINERS = (dict, list)


def _too_deep(frame: str | bytes, p: Any) -> bool:
    """Whether ``p`` nests arrays and objects deeper than :data:`MAX_PAYLOAD_DEPTH` (no recursion).

    A frame with fewer opening brackets than the limit cannot be too deep: most frames are answered
    by two ``count`` calls, without looking at ``p``.
    """
    if isinstance(frame, str):
        brackets = frame.count("[") + frame.count("{")
    else:
        brackets = frame.count(b"[") + frame.count(b"{")
    if brackets <= MAX_PAYLOAD_DEPTH:
        return False
    level: list[Any] = [p]
    for _ in range(MAX_PAYLOAD_DEPTH):
        inner: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            inner.extend(child for child in children if type(child) in _CONTAINERS)
        if not inner:
            return False
        level = inner
    return True


def encode(
    t: str,
    p: Any = None,
    *,
    i: str | None = None,
    s: str | None = None,
    c: str | None = None,
    n: int | None = None,
) -> str:
    """Encode an outgoing envelope as the text of one frame, leaving out null keys.

    ``p`` must be JSON-serialisable by orjson (dicts, lists, str, numbers,
    bool, None, datetimes, UUIDs, dataclasses). Raises ``TypeError`` otherwise:
    that is a programming error in the server, not a client error.
    """
    data: dict[str, Any] = {"t": t}
    if i is not None:
        data["i"] = i
    if p is not None:
        data["p"] = p
    if s is not None:
        data["s"] = s
    if c is not None:
        data["c"] = c
    if n is not None:
        data["n"] = n
    try:
        return _dumps(data).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"Payload of {t!r} is not JSON-serialisable: {exc}") from None


def error_frame(error: BusError) -> str:
    """Encode ``error`` as its wire frame (state ``f``, its trace id, ``{"msg", **details}``)."""
    return encode(error.type, error.payload(), i=error.trace_id, s=states.FAILED)

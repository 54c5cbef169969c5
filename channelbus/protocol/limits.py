"""Limits of the wire protocol, defined once (see ``docs/protocol.md`` and ``docs/settings.md``)."""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "MAX_TRACE_ID_LENGTH",
    "MAX_TYPE_LENGTH",
    "TYPE_PATTERN",
]

#: Default largest incoming frame, in UTF-8 bytes (256 KiB); the setting ``MAX_FRAME_BYTES`` changes it.
DEFAULT_MAX_FRAME_BYTES = 256 * 1024
#: Longest trace id ``i``, in characters.
MAX_TRACE_ID_LENGTH = 64
#: Longest message type ``t``, in characters.
MAX_TYPE_LENGTH = 100
#: A message type: lower-case dotted name.
TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\Z")
#: Deepest nesting of arrays and objects in a payload ``p`` (``p`` itself is level 1): deeper ones are
#: refused with ``error.bad_request``, before any handler, validator or job encoder recurses into them.
MAX_PAYLOAD_DEPTH = 64

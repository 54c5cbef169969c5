"""Limits of the wire protocol, defined once (see ``docs/protocol.md`` and ``docs/settings.md``)."""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
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

"""Messages: the declarative :class:`Message` class, its :class:`Metadata`, and the registries.

``message`` (the base class), ``registry`` (``incoming`` and ``outgoing``), and the built-in
messages: ``control`` (``s.ping``/``s.pong``) and ``dom`` (server-driven DOM actions).
"""

from __future__ import annotations

from .message import (
    REPLIED,
    Message,
    MessageLookup,
    Metadata,
    ProgressReporter,
    reply_frame,
    validation_errors,
)
from .registry import Registry, all_registries, incoming, outgoing

__all__ = [
    "REPLIED",
    "Message",
    "MessageLookup",
    "Metadata",
    "ProgressReporter",
    "Registry",
    "all_registries",
    "incoming",
    "outgoing",
    "reply_frame",
    "validation_errors",
]

"""Built-in messages: ``s.ping`` in, ``s.pong`` out.

Remove or replace them like any other: ``incoming.unregister("s.ping")`` or
``incoming.register(MyPing, replace=True)`` in your app's ``messages`` module.
"""

from __future__ import annotations

from typing import Any

from .message import Message
from .registry import incoming, outgoing

__all__ = ["Ping", "Pong"]


@outgoing.register
class Pong(Message):
    """The reply to ``s.ping`` (state ``s``, no payload)."""

    name = "s.pong"


@incoming.register
class Ping(Message):
    """Heartbeat: replies ``s.pong``. A control message, never queued behind handlers."""

    name = "s.ping"
    control = True
    idempotent = False  # a heartbeat answers now, or it says nothing

    async def handle(self) -> Any:
        """Reply ``s.pong``."""
        return Pong()

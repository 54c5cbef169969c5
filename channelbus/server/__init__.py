"""The server side of the socket: the consumer, and what stands in front of it.

``consumer`` (:class:`BusConsumer`, one per WebSocket), ``auth`` (connection tokens for clients
without a session), ``origin`` (the ``Origin`` check) and ``ratelimit`` (messages per second).
"""

from __future__ import annotations

from .auth import TokenAuthMiddleware, connection_token, user_for_token
from .consumer import BusConsumer
from .origin import BusOriginValidator

__all__ = ["BusConsumer", "BusOriginValidator", "TokenAuthMiddleware", "connection_token", "user_for_token"]

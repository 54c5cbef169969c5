"""How many connections one user, and one client address, may hold open on one server process.

``MAX_CONNECTIONS_PER_USER`` (default 50) counts the sockets of a signed-in user, whatever their
address; ``MAX_CONNECTIONS_PER_ADDRESS`` (default 200) those of one client address, signed in or not.
The hub counts its own connections (:attr:`channelbus.transport.Hub.counts`, kept by ``attach`` and
``detach``), so the limits hold per server process: with several processes a user may have up to that
many sockets on each. The count and the check happen with no ``await`` in between, so sockets opened at
the same moment cannot slip past the limit together.

The client address is ``scope["client"][0]``. Behind a reverse proxy that is the proxy's address, and
every client would share one count, unless the ASGI server puts the real client there: uvicorn does with
``--proxy-headers`` (its default, also under ``runbus``) for the proxies in ``--forwarded-allow-ips``
(``FORWARDED_ALLOW_IPS``; default ``127.0.0.1`` and ``::1``), from their ``X-Forwarded-For``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..conf import settings
from ..transport import Hub
from .errorlog import ErrorLogLimiter

__all__ = ["PER_ADDRESS", "PER_USER", "Limit", "client_address", "limits_for", "over_limit"]

logger = logging.getLogger("channelbus")

#: One limit a connection is counted under: the hub's key, the most allowed (None: no limit), and the
#: reason sent with the 4429 close when it is reached.
Limit = tuple[str, int | None, str]

#: The reasons sent with the close.
PER_USER = "Too many connections for this user."
PER_ADDRESS = "Too many connections from this address."

#: The refusals are logged like client errors: the first lines of each interval, then one summary.
_log: ErrorLogLimiter | None = None


def client_address(scope: Any) -> str | None:
    """The client's IP address from the ASGI scope (None when the server gives none, e.g. a Unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def limits_for(scope: Any, user: Any) -> list[Limit]:
    """The limits a new connection of ``user`` from ``scope`` counts against: its user's if signed in,
    and its client address's if known."""
    limits: list[Limit] = []
    if user is not None and getattr(user, "is_authenticated", False):
        limits.append((f"user:{user.pk}", settings.MAX_CONNECTIONS_PER_USER, PER_USER))
    address = client_address(scope)
    if address is not None:
        limits.append((f"address:{address}", settings.MAX_CONNECTIONS_PER_ADDRESS, PER_ADDRESS))
    return limits


def over_limit(hub: Hub, limits: list[Limit]) -> str | None:
    """The reason to refuse one more connection counted under ``limits`` (and a log line), or None."""
    for key, most, reason in limits:
        if most is not None and hub.counts.get(key, 0) >= most:
            _log_refusal(f"channelbus: refused a connection with 4429: {key} has {most} open (the limit)")
            return reason
    return None


def _log_refusal(line: str) -> None:
    global _log
    if _log is None or (_log.lines, _log.interval) != _log_settings():
        _log = ErrorLogLimiter("refused connections", *_log_settings())
    for text in _log.admit(time.monotonic(), line):
        logger.warning(text)


def _log_settings() -> tuple[int, float]:
    return int(settings.CLIENT_ERROR_LOG_LINES), float(settings.CLIENT_ERROR_LOG_INTERVAL)

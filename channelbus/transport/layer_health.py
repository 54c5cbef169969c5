"""Whether the channel layer answers, and whether Redis still holds this process's groups.

Every layer call of the hub (:mod:`.hub`) that fails raises :class:`DeliveryFailed` in its caller and
is reported to the hub's :class:`LayerHealth`, which logs one WARNING when the layer stops answering
and one INFO when delivery resumed (how long it took, how many calls failed meanwhile), instead of one
line per failed call.

``RedisChannelLayer`` keeps group memberships in Redis. A Redis restarted empty (or flushed, or
evicting keys) forgets them and tells nobody: publishes then succeed and reach no process. So each hub
keeps a **sentinel key** of its own on every Redis host of the layer, with a TTL that each check
renews (one ``EXPIRE`` per host). When a check finds it gone, the hub adds every group it follows
again (:meth:`Hub.check_layer <channelbus.transport.hub.Hub.check_layer>`). Layers that keep
memberships in the process (``RedisPubSubChannelLayer``, whose redis-py client subscribes again by
itself after a reconnect) get a ``send`` to the hub's own channel instead, which shows whether the
layer answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..protocol import Unavailable

__all__ = [
    "PROBE_EVENT",
    "DeliveryFailed",
    "LayerHealth",
    "drop_idle_connections",
    "keeps_groups_in_redis",
    "place_sentinel",
    "renew_sentinel",
    "sentinel_key",
    "sentinel_ttl",
]

logger = logging.getLogger("channelbus")

#: The layer message a hub sends itself to check a layer without a sentinel (ignored when read).
PROBE_EVENT = "bus.probe"


class DeliveryFailed(Unavailable):
    """A frame or a group change could not be handed to the channel layer (Redis down or unreachable).

    Raised by the hub's layer calls, so by ``Hub.send_to_topic``, ``send_to_address``, ``join``,
    ``apublish()`` and ``publish()``. As an :class:`~channelbus.protocol.Unavailable`, a handler that
    lets it through answers its request with ``error.unavailable``. The layer's own exception is its
    ``__cause__``; none of it reaches a client.
    """


class LayerHealth:
    """One hub's view of its channel layer: up, or down since when, with the failures counted."""

    def __init__(self) -> None:
        #: ``time.monotonic()`` of the first failure of the current outage; None while the layer answers.
        self.down_since: float | None = None
        #: Layer calls that failed during the current outage.
        self.failed_calls = 0
        #: Outages seen so far (each logged once at WARNING).
        self.outages = 0

    @property
    def down(self) -> bool:
        """True from a failed layer call until a check found the layer answering again."""
        return self.down_since is not None

    def failed(self, what: str, exc: BaseException) -> None:
        """Count a failed layer call; the first of an outage is logged at WARNING (with its traceback)."""
        self.failed_calls += 1
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.outages += 1
        logger.warning(
            "channelbus: the channel layer cannot be reached (%s: %s: %s); publishes fail with "
            "DeliveryFailed until it answers again",
            what,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    def lost_groups(self, count: int) -> None:
        """Redis forgot this process's ``count`` group memberships: log it at WARNING. Until they are
        added again (then :meth:`recovered`), the layer counts as down."""
        logger.warning(
            "channelbus: the channel layer lost this process's %d group memberships (Redis restarted "
            "empty, or was flushed); adding them again",
            count,
        )
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1

    def recovered(self, how: str = "") -> None:
        """The layer answers again (and holds this process's groups): log it at INFO, once per outage."""
        if self.down_since is None:
            return
        logger.info(
            "channelbus: the channel layer answers again%s; delivery resumed after %.1f s "
            "(%d layer calls failed meanwhile)",
            how,
            time.monotonic() - self.down_since,
            self.failed_calls,
        )
        self.down_since = None
        self.failed_calls = 0


def keeps_groups_in_redis(layer: Any) -> bool:
    """True for ``RedisChannelLayer`` (and layers built like it): memberships live in Redis."""
    return callable(getattr(layer, "connection", None)) and isinstance(getattr(layer, "ring_size", None), int)


def sentinel_key(layer: Any, channel: str) -> str:
    """The Redis key that shows Redis still holds what the hub of ``channel`` put there."""
    return f"{layer.prefix}:channelbus.sentinel:{channel}"


def sentinel_ttl(interval: float) -> int:
    """Seconds a sentinel lives without a check: long enough that a busy process never loses it."""
    return max(60, int(30 * interval))


async def renew_sentinel(layer: Any, key: str, ttl: int) -> bool:
    """Renew the sentinel on every host of ``layer`` (one ``EXPIRE`` each); False when a host lost it."""
    present = True
    for index in range(layer.ring_size):
        if not await layer.connection(index).expire(key, ttl):
            present = False
    return present


async def place_sentinel(layer: Any, key: str, ttl: int) -> None:
    """Write the sentinel on every host of ``layer``."""
    for index in range(layer.ring_size):
        await layer.connection(index).set(key, b"1", ex=ttl)


async def drop_idle_connections(layer: Any) -> None:
    """Close the idle pooled connections of every host of ``layer`` (they are made again when needed).

    While Redis is down, those connections are dead, and redis-py finds out only by using one: after
    a restart each would fail one command. A failed check drops them and tries once more.
    """
    for index in range(layer.ring_size):
        await layer.connection(index).connection_pool.disconnect(inuse_connections=False)

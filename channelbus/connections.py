"""Connection tracking and the per-connection session.

With ``TRACK_CONNECTIONS`` on, the consumer enqueues a job when a connection
opens (before any of its strictly ordered messages: Channels 1's "slight"
ordering), at most every ``ACTIVITY_INTERVAL`` seconds while it is active,
and when it closes. The jobs write :class:`~channelbus.models.Connection` rows
and send the sync signals ``connection_created`` and ``connection_closed``
from the worker, so the socket never waits for the database.

:class:`ConnectionSession` is a small dict-like store per connection (Channels
1's ``channel_session``) kept in Django's cache, readable and writable from
the consumer and from workers, dropped when the connection closes.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.core.cache import cache
from django.dispatch import Signal
from django.utils import timezone

from .conf import settings
from .tasks import finish_place, task  # task: django.tasks on Django 6, the backport on 5.2

__all__ = [
    "ConnectionSession",
    "close_stale",
    "connection_closed",
    "connection_created",
    "record_activity",
    "record_closed",
    "record_opened",
]

#: Sent from the worker when a connection's row was created: ``sender=Connection, connection=row``.
connection_created = Signal()
#: Sent from the worker when a connection's close was recorded: ``sender=Connection, connection=row``.
connection_closed = Signal()

SESSION_SECONDS = 24 * 3600
logger = logging.getLogger("channelbus")


def _when(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


@task()
def record_opened(address: str, user_pk: str | None, at: float, user_agent: str, ip: str | None) -> None:
    """Job: create the connection's row and send ``connection_created``."""
    from .models import Connection

    # update_or_create keeps closed_at: with several workers, the close may have been recorded first.
    row, _ = Connection.objects.update_or_create(
        address=address,
        defaults={"user_id": user_pk, "opened_at": _when(at), "user_agent": user_agent[:300], "ip": ip},
        create_defaults={
            "user_id": user_pk,
            "opened_at": _when(at),
            "last_activity": _when(at),
            "user_agent": user_agent[:300],
            "ip": ip,
        },
    )
    finish_place(address, 1)  # the set-up is place 1 of the connection
    _signal(connection_created, row)


@task()
def record_activity(address: str, at: float) -> None:
    """Job: move the connection's ``last_activity`` forward."""
    from .models import Connection

    Connection.objects.filter(address=address, last_activity__lt=_when(at)).update(last_activity=_when(at))


@task()
def record_closed(address: str, at: float) -> None:
    """Job: record the close and send ``connection_closed``."""
    from .models import Connection

    row, created = Connection.objects.get_or_create(
        address=address,
        defaults={"opened_at": _when(at), "last_activity": _when(at), "closed_at": _when(at)},
    )
    if not created:  # else the open is still on its way (several workers): it keeps this closed_at
        row.closed_at = _when(at)
        row.last_activity = max(row.last_activity, row.closed_at)
        row.save(update_fields=["closed_at", "last_activity"])
    _signal(connection_closed, row)


def _signal(signal: Signal, row: Any) -> None:
    """Send a sync signal; a receiver that raises is logged and does not fail the job."""
    from .models import Connection

    for receiver, result in signal.send_robust(sender=Connection, connection=row):
        if isinstance(result, Exception):
            logger.error(
                "channelbus: %r failed for %s", receiver, row.address, exc_info=(type(result), result, None)
            )


def close_stale(older_than: float | None = None) -> int:
    """Mark open rows closed: all of them (``older_than=None``, after every server was restarted), or
    those without activity for ``older_than`` seconds (left open by a crashed server). Returns the count."""
    from .models import Connection

    now = timezone.now()
    rows = Connection.objects.filter(closed_at__isnull=True)
    if older_than is not None:
        rows = rows.filter(last_activity__lt=now - datetime.timedelta(seconds=older_than))
    closed = 0
    for row in rows:
        row.closed_at = now
        row.save(update_fields=["closed_at"])
        _signal(connection_closed, row)
        closed += 1
    return closed


def activity_interval() -> float:
    """The ``ACTIVITY_INTERVAL`` setting."""
    return float(settings.ACTIVITY_INTERVAL)


class ConnectionSession:
    """A dict-like store for one connection, in Django's cache (``channel_session`` of Channels 1).

    Sync methods (``session["k"]``, ``get``, ``set``, ``delete``, ``clear``) are for workers and
    sync code; use the ``a``-prefixed ones (``await session.aget("k")``) on the event loop. Each
    write reads and writes the whole dict: keep it small, and do not write one key from two
    places at once.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.key = f"channelbus:session:{address}"

    def _load(self) -> dict[str, Any]:
        return dict(cache.get(self.key) or {})

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default``."""
        return self._load().get(name, default)

    def set(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``."""
        data = self._load()
        data[name] = value
        cache.set(self.key, data, SESSION_SECONDS)

    def delete(self, name: str) -> None:
        """Remove ``name`` if present."""
        data = self._load()
        if data.pop(name, None) is not None:
            cache.set(self.key, data, SESSION_SECONDS)

    def clear(self) -> None:
        """Drop the whole session."""
        cache.delete(self.key)

    def __getitem__(self, name: str) -> Any:
        data = self._load()
        return data[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    async def aget(self, name: str, default: Any = None) -> Any:
        """Async :meth:`get`."""
        return dict(await cache.aget(self.key) or {}).get(name, default)

    async def aset(self, name: str, value: Any) -> None:
        """Async :meth:`set`."""
        data = dict(await cache.aget(self.key) or {})
        data[name] = value
        await cache.aset(self.key, data, SESSION_SECONDS)

    async def adelete(self, name: str) -> None:
        """Async :meth:`delete`."""
        data = dict(await cache.aget(self.key) or {})
        if data.pop(name, None) is not None:
            await cache.aset(self.key, data, SESSION_SECONDS)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await cache.adelete(self.key)

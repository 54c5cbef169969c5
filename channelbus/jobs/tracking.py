"""Connection tracking: a row per connection, written by jobs, and the signals they send.

With ``TRACK_CONNECTIONS`` on, the consumer enqueues a job when a connection
opens (before any of its strictly ordered messages: Channels 1's "slight"
ordering), at most every ``ACTIVITY_INTERVAL`` seconds while it is active,
and when it closes. The jobs write :class:`~channelbus.models.Connection` rows
and send the sync signals ``connection_created`` and ``connection_closed``
from the worker, so the socket never waits for the database.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.dispatch import Signal
from django.utils import timezone

from ..conf import settings
from .backend import task
from .deferred import finish_place

__all__ = [
    "activity_interval",
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

logger = logging.getLogger("channelbus")


def _when(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


@task()
def record_opened(address: str, user_pk: str | None, at: float, user_agent: str, ip: str | None) -> None:
    """Job: create the connection's row and send ``connection_created``."""
    from ..models import Connection

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
    from ..models import Connection

    Connection.objects.filter(address=address, last_activity__lt=_when(at)).update(last_activity=_when(at))


@task()
def record_closed(address: str, at: float) -> None:
    """Job: record the close and send ``connection_closed``."""
    from ..models import Connection

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
    from ..models import Connection

    for receiver, result in signal.send_robust(sender=Connection, connection=row):
        if isinstance(result, Exception):
            logger.error(
                "channelbus: %r failed for %s", receiver, row.address, exc_info=(type(result), result, None)
            )


def close_stale(older_than: float | None = None) -> int:
    """Mark open rows closed: all of them (``older_than=None``, after every server was restarted), or
    those without activity for ``older_than`` seconds (left open by a crashed server). Returns the count."""
    from ..models import Connection

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

"""Is the connection that queued a job still there? Asked by the worker before it starts the job.

A job's reply goes to its connection's address. When that connection has closed (the tab went away,
the server was restarted or killed), a worker still takes the job later: ``cancel_on_disconnect``
classes are then not started, and the others run with a log line that their reply has no receiver.

The signals, all cheap, and why each:

* **A closed connection** that queued a job (:func:`watch`, called by the consumer when it queues
  one) leaves ``channelbus:gone:<address>`` in Django's cache when it closes (a receiver of
  ``channelbus.signals.connection_closed``, connected at the first :func:`watch`: sockets of a
  process that never queues a job pay nothing). It is kept a day.
* **A dead server process** closes nothing. A process that has queued jobs beats a heartbeat,
  ``channelbus:alive:<hub channel>`` = the time, every :data:`HEARTBEAT_SECONDS`, from a daemon
  thread; a heartbeat older than :data:`STALE_AFTER` means the process is gone, and every
  connection of it. A channel that never beat (no job queued from there) is taken as alive.
* Without a shared channel layer, every address is ``local|<id>``, and only the process that holds
  the connection can reach it. The job names the process that queued it (:func:`process_id`, random
  per process): in that process the hub answers exactly whether it still holds the connection (the
  worker thread of ``runbus``, the immediate backend); in any other one (a ``runbus`` restarted
  after a kill, or a worker process that no reply of it could reach anyway, system check W005) the
  connection is gone.
* With ``TRACK_CONNECTIONS``, a :class:`~channelbus.models.Connection` row with ``closed_at``
  (recorded by a job, so possibly late; ``channelbus_close_stale`` closes those of a crashed server).

Every cache signal needs the cache shared by servers and workers, as strict ordering does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
import weakref
from typing import Any

from django.core.cache import cache

from ..conf import settings
from ..publishing.sender import run_on_sender_loop
from ..signals import connection_closed
from ..transport import get_hub, split_address
from ..transport.addresses import LOCAL

__all__ = [
    "GONE_SECONDS",
    "HEARTBEAT_SECONDS",
    "STALE_AFTER",
    "beat_key",
    "connection_gone",
    "gone_key",
    "process_id",
    "watch",
]

logger = logging.getLogger("channelbus")

#: How long the record of a closed connection is kept.
GONE_SECONDS = 24 * 3600
#: Seconds between two heartbeats of a server process that has queued jobs.
HEARTBEAT_SECONDS = 5.0
#: A heartbeat older than this means its process is gone.
STALE_AFTER = 30.0

_watched: weakref.WeakSet[Any] = weakref.WeakSet()
_channels: set[str] = set()
_beating: tuple[int, threading.Thread] | None = None
_lock = threading.Lock()
_listening = False
_process = secrets.token_hex(8)


def _new_process_id() -> None:
    global _process
    _process = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_process_id)


def process_id() -> str:
    """This process's id, random, made at start-up and again in a forked child: a job carries the id
    of the process that queued it (``DeferredJob.process``)."""
    return _process


def gone_key(address: str) -> str:
    """The cache key that records the close of the connection at ``address``."""
    return f"channelbus:gone:{address}"


def beat_key(channel: str) -> str:
    """The cache key of the heartbeat of the process whose hub reads ``channel``."""
    return f"channelbus:alive:{channel}"


def watch(connection: Any) -> None:
    """Called on the event loop for a connection that queues a job: record its close when it closes,
    and keep its process's heartbeat going. Cheap after the first call for a connection."""
    if connection in _watched or connection.channel_name is None:
        return
    global _listening
    _watched.add(connection)
    if not _listening:
        connection_closed.connect(_record_close, dispatch_uid="channelbus.jobs.liveness")
        _listening = True
    channel, _ = split_address(connection.channel_name)
    if channel != LOCAL:
        _channels.add(channel)
        _start_heartbeat()


async def _record_close(sender: Any, connection: Any = None, **kwargs: Any) -> None:
    """``connection_closed`` receiver: leave the close of a watched connection in the cache."""
    if connection is None or connection not in _watched or connection.channel_name is None:
        return
    _watched.discard(connection)
    await cache.aset(gone_key(connection.channel_name), True, GONE_SECONDS)


def _start_heartbeat() -> None:
    global _beating
    pid = os.getpid()
    with _lock:
        if _beating is not None and _beating[0] == pid and _beating[1].is_alive():
            return
        thread = threading.Thread(target=_beat_forever, name="channelbus-heartbeat", daemon=True)
        _beating = (pid, thread)
        thread.start()


def _beat_forever() -> None:
    while True:
        beat()
        time.sleep(HEARTBEAT_SECONDS)


def beat() -> None:
    """Write the heartbeat of every hub channel of this process that has queued jobs (one cache call)."""
    now = time.time()
    try:
        cache.set_many({beat_key(channel): now for channel in list(_channels)}, GONE_SECONDS)
    except Exception:  # the cache is down: a later beat writes it; meanwhile it merely ages
        logger.warning("channelbus: could not write the process heartbeat", exc_info=True)


def connection_gone(address: str, process: str | None = None) -> bool:
    """True when the connection at ``address`` has closed, or its process is gone (sync: the worker).

    ``process`` is the :func:`process_id` of the process that queued the job (None: unknown).
    """
    channel, connection_id = split_address(address)
    keys = [gone_key(address)] if channel == LOCAL else [gone_key(address), beat_key(channel)]
    found = cache.get_many(keys)
    if found.get(gone_key(address)):
        return True
    last_beat = found.get(beat_key(channel))
    if isinstance(last_beat, int | float) and time.time() - last_beat > STALE_AFTER:
        return True
    if channel == LOCAL and process is not None and process != _process:
        return True  # held by another process, which no frame from here can reach: gone for this job
    if channel == LOCAL and _held_here(connection_id) is False:
        return True
    return bool(settings.TRACK_CONNECTIONS) and _closed_row(address)


def _held_here(connection_id: str) -> bool | None:
    """Whether this process's serving hub holds the connection (None: no hub serves sockets here)."""
    try:
        return run_on_sender_loop(_ask_serving_hub(connection_id), timeout=5.0)
    except Exception:
        logger.warning("channelbus: could not ask the hub about connection %s", connection_id, exc_info=True)
        return None


async def _ask_serving_hub(connection_id: str) -> bool | None:
    own = get_hub()
    serving = own.serving_hub()
    if serving is own and not own.connections:
        return None  # a worker process, or a loop without sockets: it cannot tell
    return connection_id in serving.connections


def _closed_row(address: str) -> bool:
    from ..models import Connection

    with contextlib.suppress(Exception):
        return Connection.objects.filter(address=address, closed_at__isnull=False).exists()
    return False

"""Caps on deferred jobs queued or running at once: per connection and per signed-in user.

``MAX_JOBS_PER_CONNECTION`` and ``MAX_JOBS_PER_USER`` (None: no cap). A message over either cap gets
``error.rate_limited`` with ``retry_after`` from the consumer, before ``q`` and before anything is
queued. A job holds its places from the enqueue until it ends: a result, a refusal, its last failure
or time-out, a cancelled start (``cancel_on_disconnect``), or the reaper giving up on a lost worker
(:mod:`channelbus.jobs.reaping`). A retry keeps them.

Where the count lives, and why there: **Django's cache**, as *slots*. A cap of ``n`` is the ``n`` keys
``channelbus:jobs:<c|u>:<connection address or user pk>:<k>``; a job takes a free one with
``cache.add`` (atomic in Redis, Memcached, the database cache and LocMem: two servers can never
take the same slot) and stores its ``job_id`` in it; when the job ends, the worker deletes the slots
that still hold its id.

* Correct across processes: the job is enqueued by a server process and ends in a worker, usually
  another process, which must free its place. A count in the consumer could not be told; the cache
  is shared by every server and worker already (strict ordering needs it, ``docs/settings.md``).
* Cheap: one ``get_many`` and one ``add`` per cap on the enqueue, one ``get_many`` and one
  ``delete_many`` at the end. Counting django_tasks_db's rows instead would only work for that
  backend, and would filter JSON arguments by user on every enqueue, with no index to help.
* Never stuck: a slot expires by itself (:func:`hold_seconds`), so a job lost where nothing reaps it
  (a crashed RQ work horse, an enqueue that died half-way) frees its place at the latest then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache

from ..conf import settings
from ..messages import Message
from ..protocol import RateLimited
from .timeouts import attempt_limit, reap_grace

__all__ = ["QUEUE_WAIT_SECONDS", "RETRY_AFTER", "applies", "hold_seconds", "release", "slot_key", "take"]

logger = logging.getLogger("channelbus")

#: Seconds a client refused by a cap is told to wait (``retry_after``): a place frees when a job ends.
RETRY_AFTER = 1.0
#: Seconds a job may wait in the queue, counted in :func:`hold_seconds`.
QUEUE_WAIT_SECONDS = 3600.0
_NO_LIMIT = 24 * 3600.0


def slot_key(scope: str, owner: str, index: int) -> str:
    """The cache key of slot ``index`` of a connection (``scope`` ``"c"``) or a user (``"u"``)."""
    return f"channelbus:jobs:{scope}:{owner}:{index}"


def hold_seconds(cls: type[Message]) -> float:
    """How long a job of ``cls`` keeps its slots if nothing frees them: every attempt for its full
    time limit and grace, the waits before it and its retries, and an hour in the queue."""
    limit = attempt_limit(cls.timeout)
    attempts = cls.retries + 1
    waits = sum(cls.retry_delay(n) for n in range(1, attempts)) + (cls.delay or 0.0)
    per_attempt = (_NO_LIMIT if limit is None else limit) + reap_grace()
    return attempts * per_attempt + waits + QUEUE_WAIT_SECONDS


def take(
    cls: type[Message], job_id: str, address: str | None, user_pk: str | None, trace_id: str | None = None
) -> tuple[str, ...]:
    """Take a slot of the connection's cap and of the user's for job ``job_id``; returns their keys.

    Raises :class:`~channelbus.protocol.RateLimited` (and holds nothing) when a cap is full. Sync:
    the cache may be Redis or a database.
    """
    caps: list[tuple[str, str, int, str]] = []
    per_connection = settings.MAX_JOBS_PER_CONNECTION
    if address is not None and per_connection is not None:
        caps.append(("c", address, int(per_connection), "this connection"))
    per_user = settings.MAX_JOBS_PER_USER
    if user_pk is not None and per_user is not None:
        caps.append(("u", user_pk, int(per_user), "your account"))
    if not caps:
        return ()
    keys = [[slot_key(scope, owner, k) for k in range(cap)] for scope, owner, cap, _ in caps]
    held = cache.get_many([key for scope_keys in keys for key in scope_keys])
    seconds = hold_seconds(cls)
    taken: list[str] = []
    for (_, _, cap, whose), scope_keys in zip(caps, keys, strict=True):
        slot = next((key for key in scope_keys if key not in held and cache.add(key, job_id, seconds)), None)
        if slot is None:
            release(taken, job_id)
            raise RateLimited(
                f"Too many jobs of {whose} are queued or running (at most {cap}); try again later.",
                trace_id=trace_id,
                retry_after=RETRY_AFTER,
                type_name=cls.name,
                limit=cap,
            )
        taken.append(slot)
    return tuple(taken)


def release(slots: Sequence[str], job_id: str | None) -> None:
    """Free the slots that job ``job_id`` still holds (one that expired and was taken again by
    another job is left alone). Never raises: a place it cannot free expires by itself."""
    if not slots or job_id is None:
        return
    try:
        held: dict[str, Any] = cache.get_many(list(slots))
        mine = [key for key, value in held.items() if value == job_id]
        if mine:
            cache.delete_many(mine)
    except Exception:
        logger.warning("channelbus: could not free the job places of %s", job_id, exc_info=True)


def applies(address: str | None, user_pk: str | None) -> bool:
    """Whether a job of this connection and user is under any cap (else :func:`take` holds nothing)."""
    return (address is not None and settings.MAX_JOBS_PER_CONNECTION is not None) or (
        user_pk is not None and settings.MAX_JOBS_PER_USER is not None
    )

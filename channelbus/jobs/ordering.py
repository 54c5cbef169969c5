"""Strict ordering: the strictly ordered deferred messages of one connection run one after another.

Each strictly ordered message of a connection gets a place (``seq``: 1, 2, 3...) when it is
received; the cache shared by the workers remembers the last place of each connection that
finished. A job whose predecessor has not finished *parks*: it leaves itself in the cache for the
predecessor to wake, and looks again later by itself in case the predecessor is lost. This module
keeps that state; it queues nothing itself (:mod:`channelbus.jobs.deferred` does).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import cache

from ..conf import settings
from .job import DeferredJob

__all__ = [
    "ORDER_POLL_MAX_SECONDS",
    "ORDER_POLL_SECONDS",
    "ORDER_STATE_SECONDS",
    "Parked",
    "claim_run",
    "finish",
    "is_my_turn",
    "order_key",
    "park",
]

logger = logging.getLogger("channelbus")

#: Seconds before the first look of a parked strictly ordered job at whether its turn has come; each
#: next look waits as long as the job has waited so far, at most ``ORDER_POLL_MAX_SECONDS``.
ORDER_POLL_SECONDS = 0.2
ORDER_POLL_MAX_SECONDS = 5.0
#: How long the last finished place of a connection is remembered.
ORDER_STATE_SECONDS = 24 * 3600

#: A parked job as the cache keeps it: ``(job as JSON, queue name, priority)``.
Parked = tuple[dict[str, Any], str, int]


def order_key(address: str, what: str = "") -> str:
    """The cache key of a connection's last finished place, or of ``what`` about one of its places."""
    return f"channelbus:order:{address}:{what}" if what else f"channelbus:order:{address}"


def is_my_turn(address: str, seq: int, waiting_since: float | None) -> bool:
    """True when every earlier strictly ordered message of the connection has finished.

    A job that waited longer than the ``STRICT_ORDER_TIMEOUT`` setting goes ahead anyway (its
    predecessor was lost, e.g. with a killed worker), with a warning.
    """
    done = cache.get(order_key(address), 0)
    if done >= seq - 1:
        return True
    if waiting_since is not None and time.time() - waiting_since > settings.STRICT_ORDER_TIMEOUT:
        logger.warning(
            "channelbus: job %d of %s waited too long for job %d; running it", seq, address, done + 1
        )
        return True
    return False


def claim_run(address: str, seq: int, attempt: int) -> bool:
    """A job that waited has copies (the wake-up, its own looks): True for the one that runs it."""
    if not cache.add(order_key(address, f"run:{seq}:{attempt}"), True, ORDER_STATE_SECONDS):
        return False
    cache.delete(order_key(address, f"parked:{seq}"))
    return True


def park(job: DeferredJob, queue_name: str, priority: int) -> float:
    """Leave ``job`` in the cache for its predecessor to wake; returns the delay of its own next look.

    The look waits longer and longer while the job waits (``ORDER_POLL_SECONDS`` doubling up to
    ``ORDER_POLL_MAX_SECONDS``, and at the latest just after ``STRICT_ORDER_TIMEOUT``), so a
    predecessor that is lost, or that finished before the job was parked, is not waited for in
    vain; 0 when the predecessor finished meanwhile.
    """
    assert job.address is not None
    assert job.seq is not None
    assert job.waiting_since is not None
    timeout = settings.STRICT_ORDER_TIMEOUT
    parked: Parked = (job.to_json(), queue_name, priority)
    cache.set(order_key(job.address, f"parked:{job.seq}"), parked, timeout + 3600)
    waited = time.time() - job.waiting_since
    delay = min(ORDER_POLL_MAX_SECONDS, max(ORDER_POLL_SECONDS, waited))
    if waited < timeout:
        delay = min(delay, timeout - waited + ORDER_POLL_SECONDS / 4)
    if cache.get(order_key(job.address), 0) >= job.seq - 1:
        delay = 0  # the predecessor finished meanwhile, maybe before the job was parked
    return delay


def finish(address: str, seq: int) -> Parked | None:
    """Record that place ``seq`` of a connection is over (never going back); returns the job parked
    at the next place, taken out of the cache, for the caller to queue (None if there is none)."""
    key = order_key(address)
    if cache.get(key, 0) < seq:
        cache.set(key, seq, ORDER_STATE_SECONDS)
    parked_key = order_key(address, f"parked:{seq + 1}")
    parked: Parked | None = cache.get(parked_key)
    if parked is not None:
        cache.delete(parked_key)
    return parked

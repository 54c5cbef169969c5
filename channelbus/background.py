"""Work started without waiting for it: :func:`in_background`, and :func:`log_failure` for its end.

Every task or future that channelbus starts and does not await (a connection's tracking job, a
send from a worker thread) ends in :func:`log_failure`, so a failure is one ERROR line on the
``channelbus`` logger with its traceback, never lost and never an "exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["in_background", "log_failure"]

logger = logging.getLogger("channelbus")

#: Tasks started by :func:`in_background`, held until they end (asyncio keeps only weak references).
_running: set[asyncio.Future[Any]] = set()


def log_failure(done: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
    """Done-callback of a task or future nobody awaits: log its exception, if it raised one."""
    if done.cancelled():
        return
    exc = done.exception()
    if exc is not None:
        logger.error("channelbus: background work failed", exc_info=(type(exc), exc, exc.__traceback__))


def in_background(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run ``coro`` on the running loop without waiting for it; a failure is logged."""
    task = asyncio.ensure_future(coro)
    _running.add(task)
    task.add_done_callback(_running.discard)
    task.add_done_callback(log_failure)
    return task

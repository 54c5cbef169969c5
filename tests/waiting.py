"""Waiting in tests for a condition, with a deadline, instead of sleeping for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> Any:
    """Call ``predicate`` every ``interval`` seconds until it returns something true; return that.

    ``predicate`` may be a plain function or return an awaitable (an ``async def`` or a lambda around
    an ORM ``a...`` call). An exception it raises ends the wait at once. When ``timeout`` seconds pass
    first, raises :class:`AssertionError` naming the condition (``what``, else the predicate's source)
    and its last value.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            what = what or _describe(predicate)
            raise AssertionError(f"not true within {timeout} s: {what} (last value: {result!r})")
        await asyncio.sleep(interval)


def _describe(predicate: Callable[[], Any]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))

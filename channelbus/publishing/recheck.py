"""``recheck()`` and ``arecheck()``: ask again whether each follower of a topic may still follow it."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..transport import get_hub
from .sender import in_event_loop, run_async
from .targets import resolve_targets

__all__ = ["arecheck", "recheck"]


async def arecheck(target: Any) -> None:
    """Ask again, in every process, whether each follower of a topic may still follow it.

    Those who may not are removed and get ``topic.left`` with the reason.
    ``target`` is anything ``publish(to=...)`` takes that names topics.
    """
    topics, _ = resolve_targets(target)
    hub = get_hub()
    for topic in topics:
        await hub.recheck(topic)


def recheck(target: Any) -> None:
    """Sync :func:`arecheck`, run after the current transaction commits."""
    topics, _ = resolve_targets(target)
    if in_event_loop():
        run_async(arecheck(topics))
    else:
        transaction.on_commit(lambda: run_async(arecheck(topics)), robust=True)

"""Who is in a presence topic, from any code: ``presence()`` for sync code, ``apresence()`` for async code.

::

    members = presence("chat.room:lobby")        # {"4": {"info": {"name": "alice"}, "conns": 2}, ...}
    members = await apresence(room)              # a Topic, a name, or a model instance (its topic)

The members over every server process (Redis in the distributed setup; this process's memory with the
in-memory layer, read on the loop that serves the sockets), all of them: no ``PRESENCE_MAX_MEMBERS``
here, and no permission check (server code decides who sees them).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from ..topics import topic_kinds, topic_name
from ..transport import get_hub
from .sender import _outer_loop, in_event_loop, run_on_sender_loop

__all__ = ["apresence", "presence"]


async def apresence(topic: Any) -> dict[str, dict[str, Any]]:
    """The members of ``topic`` now: ``{<user pk as a string>: {"info": {...}, "conns": <int>}}``.

    ``topic`` is a name, a :class:`~channelbus.topics.Topic` or a model instance. Raises ``ValueError``
    when its kind is not registered or keeps no presence, and
    :class:`~channelbus.transport.DeliveryFailed` when Redis cannot be read.
    """
    name = _presence_topic(topic, "apresence()")
    state = await get_hub().presence_state(name, None)
    members: dict[str, dict[str, Any]] = state["members"]
    return members


def presence(topic: Any) -> dict[str, dict[str, Any]]:
    """Sync :func:`apresence`: from a view, a job or a shell (it waits for the answer).

    From a ``sync_to_async`` thread of the server (a sync view under ASGI) it runs on the server's loop;
    elsewhere on the process's sender loop. A sync function called by async code on a running loop
    cannot wait: it raises ``RuntimeError`` (use ``await apresence(...)`` there).
    """
    name = _presence_topic(topic, "presence()")
    if in_event_loop():
        raise RuntimeError("presence() cannot wait inside a running event loop; use await apresence().")
    if _outer_loop() is not None:
        members: dict[str, dict[str, Any]] = async_to_sync(apresence)(name)
        return members
    return run_on_sender_loop(apresence(name))


def _presence_topic(topic: Any, caller: str) -> str:
    """The name of ``topic``, if its kind keeps presence; else ``ValueError`` naming ``caller``."""
    name = topic_kinds.require_kind(topic_name(topic), f"{caller}")
    if not topic_kinds.presence_of(name):
        raise ValueError(
            f"{caller}: topic kind {name.partition(':')[0]!r} keeps no presence (set presence = True)."
        )
    return name

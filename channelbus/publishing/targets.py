"""What ``publish(to=...)`` and ``recheck()`` take, turned into topic names and connection addresses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from ..messages import Message
from ..topics import Topic, topic_kinds, topic_name
from ..transport import is_address

__all__ = ["exclude_address", "resolve_targets"]


def resolve_targets(to: Any) -> tuple[list[str], list[str]]:
    """Split ``to`` into (topic names, connection addresses).

    ``to`` is one target or an iterable of them: a topic name, a :class:`Topic`, a user, another
    model instance or a connection address. A topic whose kind is not registered raises
    ``ValueError`` (nobody could follow it); anything else raises ``TypeError``.
    """
    single = isinstance(to, str | Topic | models.Model) or not isinstance(to, Iterable)
    items: Iterable[Any] = (to,) if single else to
    topics: list[str] = []
    addresses: list[str] = []
    for item in items:
        if is_address(item):
            addresses.append(item)
            continue
        try:
            name = topic_name(item)
        except TypeError:
            raise TypeError(
                f"publish(to=...) takes topic names, Topic objects, users, model instances or "
                f"connection addresses, not {item!r}."
            ) from None
        topics.append(topic_kinds.require_kind(name, "publish(to=...)"))
    return topics, addresses


def exclude_address(exclude: Any) -> str | None:
    """The address of ``exclude``: an address, an incoming :class:`Message` (its sender), or a
    connection (its ``channel_name``); None for None."""
    if exclude is None or isinstance(exclude, str):
        return exclude
    if isinstance(exclude, Message):
        return exclude.meta.channel_name
    return getattr(exclude, "channel_name", None)  # a BusConsumer

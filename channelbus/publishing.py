"""Publishing from any code: ``publish()`` for sync code, ``apublish()`` for async code.

::

    publish(ChatMessage(room="lobby", text="hi"), to="chat.room:lobby")
    publish(Notice(text="Saved"), to=request.user)           # every tab of that user
    await apublish(Shouted(text="hey"), to="demo.all", exclude=self.meta.channel_name)

``to`` takes one target or a list: a topic name (``"chat.room:lobby"``,
``"broadcast"``), a :class:`~channelbus.topics.Topic`, a user (their
``user:<pk>`` topic), another model instance (its ``<app>.<model>:<pk>``
topic), or a connection address (``BusConsumer.channel_name``).

The message was validated when it was built; it is encoded once per topic
(the frame carries the topic in ``c``), whatever the number of subscribers.

Inside a transaction, ``publish()`` waits for the commit by default
(``on_commit=True``): calls keep their order, and what a rolled-back
savepoint published is dropped. ``on_commit=False`` sends at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from django.db import models, transaction

from .fanout import ADDRESS_SEPARATOR, get_hub
from .messages import Message
from .topics import Topic, topic_name

__all__ = ["Published", "apublish", "arecheck", "publish", "recheck", "resolve_targets", "send_text"]

logger = logging.getLogger("channelbus")


def resolve_targets(to: Any) -> tuple[list[str], list[str]]:
    """Split ``to`` into (topic names, connection addresses)."""
    single = isinstance(to, str | Topic | models.Model) or not isinstance(to, Iterable)
    items: Iterable[Any] = (to,) if single else to
    topics: list[str] = []
    addresses: list[str] = []
    for item in items:
        if isinstance(item, str) and ADDRESS_SEPARATOR in item:
            addresses.append(item)
        else:
            try:
                topics.append(topic_name(item))
            except TypeError:
                raise TypeError(
                    f"publish(to=...) takes topic names, Topic objects, users, model instances or "
                    f"connection addresses, not {item!r}."
                ) from None
    return topics, addresses


def _exclude_address(exclude: Any) -> str | None:
    if exclude is None or isinstance(exclude, str):
        return exclude
    if isinstance(exclude, Message):
        return exclude.meta.channel_name
    return getattr(exclude, "channel_name", None)  # a BusConsumer


async def apublish(message: Message, to: Any, *, exclude: Any = None) -> None:
    """Send ``message`` to every connection following the targets in ``to`` (at once; async code).

    ``exclude`` is a connection (its address, the consumer, or an incoming
    message whose sender should not get it).
    """
    if not isinstance(message, Message):
        raise TypeError(f"publish() takes a Message instance, not {message!r}.")
    topics, addresses = resolve_targets(to)
    skip = _exclude_address(exclude)
    for capture in _captures:
        capture.append(Published(message, topics, addresses, skip))
    hub = get_hub()
    payload = message.payload()
    for topic in topics:
        await hub.publish(topic, message_frame(message, payload, topic), skip)
    if addresses:
        text = message_frame(message, payload, None)
        for address in addresses:
            if address != skip:
                await hub.send_to(address, text)


@dataclass(frozen=True)
class Published:
    """One message as it was sent: the message, its topics, its connection addresses, the excluded one."""

    message: Message
    topics: list[str]
    addresses: list[str]
    exclude: str | None = None


#: Lists filled by :func:`channelbus.testing.capture_published`.
_captures: list[list[Published]] = []


def message_frame(message: Message, payload: Any, topic: str | None) -> str:
    """The frame of a published message (state absent, ``c`` = the topic)."""
    from .protocol import encode

    return encode(message.name, payload, c=topic)


def publish(
    message: Message, to: Any, *, exclude: Any = None, on_commit: bool = True, using: str | None = None
) -> None:
    """Send ``message`` to the targets in ``to`` from sync code, after the current transaction commits.

    Outside a transaction (or with ``on_commit=False``) it is sent at once.
    From inside a running event loop (a sync function called by async code)
    it is scheduled on that loop; prefer ``await apublish(...)`` there.
    """
    if not isinstance(message, Message):
        raise TypeError(f"publish() takes a Message instance, not {message!r}.")
    topics, addresses = resolve_targets(to)  # fail here, in the caller, on a bad target
    targets = topics + addresses

    def send() -> None:  # a function, not a partial: Django's robust on_commit logs its __qualname__
        _send_now(message, targets, exclude)

    if on_commit and not _in_event_loop():
        # robust: a failed send (Redis down) is logged and the next on-commit callbacks still run.
        transaction.on_commit(send, using=using, robust=True)
    else:
        # Async code runs outside transactions (Django's atomic() is sync), so there is nothing to wait for.
        send()


def _send_now(message: Message, to: Any, exclude: Any) -> None:
    _run_async(apublish(message, to, exclude=exclude))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("channelbus: sending in the background failed", exc_info=task.exception())


async def arecheck(target: Any) -> None:
    """Ask again, in every process, whether each follower of a topic may still follow it.

    Those who may not are removed and get ``topic.left`` with the reason.
    ``target`` is anything ``publish(to=...)`` takes that names topics.
    """
    topics, _ = resolve_targets(target)
    hub = get_hub()
    for topic in topics:
        await hub.recheck_everywhere(topic)


def recheck(target: Any) -> None:
    """Sync :func:`arecheck`, run after the current transaction commits."""
    topics, _ = resolve_targets(target)
    if _in_event_loop():
        _run_async(arecheck(topics))
    else:
        transaction.on_commit(lambda: _run_async(arecheck(topics)), robust=True)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_async(coro: Any) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        loop.create_task(coro).add_done_callback(_log_failure)
    else:
        async_to_sync(_await)(coro)


async def _await(coro: Any) -> None:
    await coro


def send_text(address: str, text: str) -> None:
    """Send an encoded frame to one connection from sync code (a worker), at once."""
    _run_async(_send_text(address, text))


async def _send_text(address: str, text: str) -> None:
    await get_hub().send_to(address, text)

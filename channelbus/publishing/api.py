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

When the channel layer (Redis) cannot be reached, a send is never a silent success:

- ``apublish()``, and ``publish()`` outside a transaction or with ``on_commit=False``, raise
  :class:`~channelbus.transport.DeliveryFailed` (an ``error.unavailable``): a handler that lets it
  through answers its request with ``error.unavailable``, not ``s``. A message for several targets
  may have reached those before the one that failed.
- ``publish()`` inside a transaction sends after the commit, when the caller can no longer be told:
  the failure is logged at ERROR (``channelbus: <type> to <targets> was not sent after its
  transaction committed``) and the next on-commit callbacks still run.
- ``publish()`` from a sync function running on an event loop schedules the send; a failure is
  logged at ERROR ("channelbus: background work failed").
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ..messages import Message
from ..protocol import encode
from ..transport import DeliveryFailed, get_hub
from .sender import in_event_loop, run_async
from .targets import exclude_address, resolve_targets

__all__ = ["Published", "apublish", "hold_publishes", "message_frame", "publish"]

logger = logging.getLogger("channelbus")


async def apublish(message: Message, to: Any, *, exclude: Any = None) -> None:
    """Send ``message`` to every connection following the targets in ``to`` (at once; async code).

    ``exclude`` is a connection (its address, the consumer, or an incoming
    message whose sender should not get it). Raises :class:`~channelbus.transport.DeliveryFailed`
    when the channel layer cannot be reached.
    """
    if not isinstance(message, Message):
        raise TypeError(f"publish() takes a Message instance, not {message!r}.")
    held = _held.get()
    if held is not None:  # an async deferred handler: sent once its transaction committed
        resolve_targets(to)  # fail here, in the caller, on a bad target
        held.append((message, to, exclude))
        return
    await _apublish_now(message, to, exclude)


async def _apublish_now(message: Message, to: Any, exclude: Any) -> None:
    topics, addresses = resolve_targets(to)
    skip = exclude_address(exclude)
    for capture in captures:
        capture.append(Published(message, topics, addresses, skip))
    hub = get_hub()
    payload = message.payload()
    volatile = message.volatile
    for topic in topics:
        await hub.send_to_topic(topic, message_frame(message, payload, topic), skip, volatile)
    if addresses:
        text = message_frame(message, payload, None)
        for address in addresses:
            if address != skip:
                await hub.send_to_address(address, text, volatile)


@dataclass(frozen=True)
class Published:
    """One message as it was sent: the message, its topics, its connection addresses, the excluded one."""

    message: Message
    topics: list[str]
    addresses: list[str]
    exclude: str | None = None


#: Lists filled by :func:`channelbus.testing.capture_published`.
captures: list[list[Published]] = []


def message_frame(message: Message, payload: Any, topic: str | None) -> str:
    """The frame of a published message (state absent, ``c`` = the topic)."""
    return encode(message.name, payload, c=topic)


def publish(
    message: Message, to: Any, *, exclude: Any = None, on_commit: bool = True, using: str | None = None
) -> None:
    """Send ``message`` to the targets in ``to`` from sync code, after the current transaction commits.

    Outside a transaction (or with ``on_commit=False``) it is sent at once, and raises
    :class:`~channelbus.transport.DeliveryFailed` when the channel layer cannot be reached.
    After a commit it cannot raise into the code that committed: a failed send is logged at
    ERROR and the next on-commit callbacks still run. From inside a running event loop (a sync
    function called by async code) it is scheduled on that loop, and a failure is logged;
    prefer ``await apublish(...)`` there.
    """
    if not isinstance(message, Message):
        raise TypeError(f"publish() takes a Message instance, not {message!r}.")
    topics, addresses = resolve_targets(to)  # fail here, in the caller, on a bad target
    targets = topics + addresses

    def send() -> None:  # a function, not a partial: Django's robust on_commit logs its __qualname__
        try:
            _send_now(message, targets, exclude)
        except DeliveryFailed:
            logger.error(
                "channelbus: %s to %s was not sent after its transaction committed",
                message.name,
                ", ".join(targets),
                exc_info=True,
            )

    if on_commit and not in_event_loop():
        if transaction.get_connection(using).in_atomic_block:
            # robust: a failed send is logged and the next on-commit callbacks still run.
            transaction.on_commit(send, using=using, robust=True)
            return
    elif on_commit and (held := _held.get()) is not None:  # an async deferred handler (hold_publishes)
        held.append((message, targets, exclude))
        return
    # No transaction to wait for: async code runs outside transactions (Django's atomic() is sync).
    _send_now(message, targets, exclude)


def _send_now(message: Message, to: Any, exclude: Any) -> None:
    run_async(_apublish_now(message, to, exclude))


#: What an async deferred handler published, while :func:`hold_publishes` collects it.
_held: contextvars.ContextVar[list[tuple[Message, Any, Any]] | None] = contextvars.ContextVar(
    "channelbus_held_publishes", default=None
)


@contextlib.contextmanager
def hold_publishes() -> Iterator[list[tuple[Message, Any, Any]]]:
    """Collect ``(message, to, exclude)`` of every ``publish()`` and ``apublish()`` in this context
    (and in the coroutines ``async_to_sync`` runs from it) instead of sending them.

    The worker wraps an ``async def`` deferred handler of an ``atomic`` class in it, then publishes
    what was collected from its own thread, where ``publish()`` waits for the job's commit.
    ``publish(..., on_commit=False)`` is not held.
    """
    held: list[tuple[Message, Any, Any]] = []
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)

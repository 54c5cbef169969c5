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
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from django.db import models, transaction

from .fanout import ADDRESS_SEPARATOR, get_hub
from .messages import Message
from .topics import Topic, topic_kinds, topic_name

__all__ = [
    "FrameSender",
    "Published",
    "apublish",
    "arecheck",
    "publish",
    "recheck",
    "resolve_targets",
    "send_text",
    "sender_loop",
]

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
                name = topic_name(item)
            except TypeError:
                raise TypeError(
                    f"publish(to=...) takes topic names, Topic objects, users, model instances or "
                    f"connection addresses, not {item!r}."
                ) from None
            topics.append(topic_kinds.require_kind(name, "publish(to=...)"))
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
    held = _held.get()
    if held is not None:  # an async deferred handler: sent once its transaction committed
        resolve_targets(to)  # fail here, in the caller, on a bad target
        held.append((message, to, exclude))
        return
    await _apublish_now(message, to, exclude)


async def _apublish_now(message: Message, to: Any, exclude: Any) -> None:
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
    elif on_commit and (held := _held.get()) is not None:  # an async deferred handler (hold_publishes)
        held.append((message, targets, exclude))
    else:
        # Async code runs outside transactions (Django's atomic() is sync), so there is nothing to wait for.
        send()


def _send_now(message: Message, to: Any, exclude: Any) -> None:
    _run_async(_apublish_now(message, to, exclude))


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
    elif _outer_loop() is not None:
        # A thread of sync_to_async (a sync handler in the server): asgiref runs it on the server's loop.
        async_to_sync(_await)(coro)
    else:
        run_on_sender_loop(coro)


async def _await(coro: Any) -> None:
    await coro


def _outer_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop that started this thread through ``sync_to_async``, if any."""
    loop: asyncio.AbstractEventLoop | None = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


#: Seconds sync code waits for one send on the sender loop (a stuck channel layer) before it raises.
SEND_TIMEOUT = 30.0

_sender: tuple[int, asyncio.AbstractEventLoop] | None = None
_sender_lock = threading.Lock()


def _forget_sender() -> None:
    """In a forked child: the parent's loop thread does not exist there."""
    global _sender, _sender_lock
    _sender = None
    _sender_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_sender)


def sender_loop() -> asyncio.AbstractEventLoop:
    """This process's long-lived event loop for sends from sync code (workers), in a daemon thread.

    Made on first use, and again in a forked child (RQ forks a work horse per job): its hub and
    channel-layer connections are then reused from frame to frame instead of made per frame.
    """
    global _sender
    pid = os.getpid()
    current = _sender
    if current is not None and current[0] == pid:
        return current[1]
    with _sender_lock:
        current = _sender
        if current is not None and current[0] == pid:
            return current[1]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_serve_forever, args=(loop,), name="channelbus-sender", daemon=True)
        thread.start()
        _sender = (pid, loop)
        return loop


def _serve_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def run_on_sender_loop(coro: Coroutine[Any, Any, Any], timeout: float | None = SEND_TIMEOUT) -> Any:
    """Run ``coro`` on :func:`sender_loop` and wait for its result (from sync code without a running loop).

    Raises ``TimeoutError`` (and cancels it) when it takes longer than ``timeout`` seconds.
    """
    future = asyncio.run_coroutine_threadsafe(coro, sender_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"channelbus: a send took longer than {timeout} s") from None


class FrameSender:
    """Sends frames to one connection address from sync or async code, in call order.

    A deferred job's states, progress and result go through one of these. From sync code each call
    waits for its send on :func:`sender_loop` (or on the server's loop, in a ``sync_to_async``
    thread). From a thread whose event loop is running (an ``async def`` deferred handler run by
    ``async_to_sync``), it cannot wait: the send is queued on the sender loop, after the previous one.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._last: concurrent.futures.Future[None] | None = None

    def send(self, text: str) -> None:
        """Send one encoded frame, after every frame sent before through this sender."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro = self._in_turn(self._last, text)
            self._last = asyncio.run_coroutine_threadsafe(coro, sender_loop())
            self._last.add_done_callback(_log_future_failure)
            return
        last, self._last = self._last, None
        if last is not None:
            concurrent.futures.wait([last], SEND_TIMEOUT)
        if _outer_loop() is not None:
            async_to_sync(_send_text)(self.address, text)
        else:
            run_on_sender_loop(_send_text(self.address, text))

    async def _in_turn(self, previous: concurrent.futures.Future[None] | None, text: str) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([asyncio.wrap_future(previous)])
        await _send_text(self.address, text)


def _log_future_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("channelbus: sending in the background failed", exc_info=future.exception())


def send_text(address: str, text: str) -> None:
    """Send an encoded frame to one connection from sync code (a worker), at once."""
    _run_async(_send_text(address, text))


async def _send_text(address: str, text: str) -> None:
    await get_hub().send_to(address, text)

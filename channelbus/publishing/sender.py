"""Sending from sync code: one long-lived event loop per process, in a daemon thread.

Workers and other sync code have no event loop, yet a send goes through the hub and the
channel layer, which are async. :func:`sender_loop` is this process's loop for them, made on
first use and again in a forked child (RQ forks a work horse per job), so its hub and
channel-layer connections are reused from frame to frame. :func:`run_async` picks the right
loop for a coroutine from any code; :class:`FrameSender` sends one connection's frames in call
order (a deferred job's states, progress and result).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, async_to_sync

from ..background import log_failure
from ..transport import get_hub

__all__ = [
    "SEND_TIMEOUT",
    "FrameSender",
    "in_event_loop",
    "run_async",
    "run_on_sender_loop",
    "send_text",
    "sender_loop",
]

T = TypeVar("T")


def in_event_loop() -> bool:
    """True when this thread runs an event loop (async code, or sync code called from it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_async(coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro`` from any code: on the running loop without waiting (failures logged), on the
    server's loop from a ``sync_to_async`` thread, else on :func:`sender_loop`, waiting for it.

    When it waits, what ``coro`` raises is raised here (``DeliveryFailed`` when the channel layer
    cannot be reached; ``TimeoutError`` after :data:`SEND_TIMEOUT` on the sender loop).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        loop.create_task(coro).add_done_callback(log_failure)
    elif _outer_loop() is not None:
        # A thread of sync_to_async (a sync handler in the server): asgiref runs it on the server's loop.
        async_to_sync(_await)(coro)
    else:
        run_on_sender_loop(coro)


async def _await(coro: Coroutine[Any, Any, Any]) -> None:
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


def run_on_sender_loop(coro: Coroutine[Any, Any, T], timeout: float | None = SEND_TIMEOUT) -> T:
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
        """Send one encoded frame, after every frame sent before through this sender.

        From sync code it raises what the send raised (``DeliveryFailed`` when the channel layer
        cannot be reached); a send queued from a running loop logs its failure at ERROR instead.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro = self._in_turn(self._last, text)
            self._last = asyncio.run_coroutine_threadsafe(coro, sender_loop())
            self._last.add_done_callback(log_failure)
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


def send_text(address: str, text: str) -> None:
    """Send an encoded frame to one connection from sync code (a worker), at once (see :func:`run_async`)."""
    run_async(_send_text(address, text))


async def _send_text(address: str, text: str) -> None:
    await get_hub().send_to_address(address, text)

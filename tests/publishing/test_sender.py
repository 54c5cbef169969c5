"""Sending from sync code (channelbus.publishing.sender): the sender loop, run_async, FrameSender."""

import asyncio
import logging
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from channelbus.publishing import sender
from channelbus.publishing.sender import (
    FrameSender,
    in_event_loop,
    run_async,
    run_on_sender_loop,
    sender_loop,
)


def wait_until(condition, timeout=2.0):
    """Wait (from sync code) until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


async def await_until(condition, timeout=2.0):
    """Wait (on the loop) until ``condition()`` is true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - set by another thread or a done-callback, not an Event
            await asyncio.sleep(0.002)


async def where():
    """The running loop and thread."""
    return asyncio.get_running_loop(), threading.current_thread()


@pytest.fixture
def recorded(monkeypatch):
    """Replace the hub send with a recorder; a text in ``delays`` waits that long before it is recorded."""
    sent: list[tuple[str, str]] = []
    delays: dict[str, float] = {}

    async def fake_send_text(address, text):
        await asyncio.sleep(delays.get(text, 0))
        sent.append((address, text))

    monkeypatch.setattr(sender, "_send_text", fake_send_text)
    return sent, delays


# ------------------------------------------------------------------------------ the sender loop


def test_one_sender_loop_per_process_reused():
    loop = sender_loop()
    assert sender_loop() is loop
    assert not loop.is_closed()
    wait_until(loop.is_running)
    threads = [t for t in threading.enumerate() if t.name == "channelbus-sender"]
    assert len(threads) == 1
    assert threads[0].daemon


def test_the_sender_loop_is_shared_by_threads():
    found = []
    threads = [threading.Thread(target=lambda: found.append(sender_loop())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert found == [sender_loop()] * 4


def test_run_on_sender_loop_returns_the_result():
    loop, thread = run_on_sender_loop(where())
    assert loop is sender_loop()
    assert thread.name == "channelbus-sender"

    async def answer():
        return 42

    assert run_on_sender_loop(answer()) == 42


def test_run_on_sender_loop_raises_what_the_coroutine_raises():
    async def fail():
        raise LookupError("from the coroutine")

    with pytest.raises(LookupError, match="from the coroutine"):
        run_on_sender_loop(fail())


def test_a_stuck_send_times_out_and_is_cancelled():
    cancelled = threading.Event()

    async def stuck():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"channelbus: a send took longer than 0\.05 s"):
        run_on_sender_loop(stuck(), timeout=0.05)
    assert time.monotonic() - started < 2
    assert cancelled.wait(2)


# ------------------------------------------------------------------------------ in_event_loop, run_async


def sync_helper():
    return in_event_loop()


async def test_in_event_loop_in_async_code_and_sync_code_it_calls():
    assert in_event_loop() is True
    assert sync_helper() is True
    assert await sync_to_async(sync_helper)() is False  # a thread of its own: no loop runs there


def test_in_event_loop_in_sync_code():
    assert in_event_loop() is False


def test_run_async_from_sync_code_runs_on_the_sender_loop_and_waits():
    ran = []

    async def record():
        ran.append(await where())

    run_async(record())
    assert len(ran) == 1  # done when run_async returned
    assert ran[0][0] is sender_loop()


async def test_run_async_in_a_sync_to_async_thread_runs_on_the_outer_loop():
    ran = []

    async def record():
        ran.append(await where())

    await sync_to_async(lambda: run_async(record()))()
    assert ran == [(asyncio.get_running_loop(), threading.current_thread())]


async def test_run_async_on_a_running_loop_schedules_without_waiting():
    ran = []

    async def record():
        ran.append(await where())

    run_async(record())
    assert ran == []  # scheduled, not run yet
    await await_until(lambda: ran)
    assert ran[0][0] is asyncio.get_running_loop()


async def test_run_async_on_a_running_loop_logs_a_failure(caplog):
    async def fail():
        raise RuntimeError("lost send")

    with caplog.at_level(logging.ERROR, logger="channelbus"):
        run_async(fail())
        await await_until(lambda: any(r.name == "channelbus" for r in caplog.records))
    (record,) = [r for r in caplog.records if r.name == "channelbus"]
    assert record.levelno == logging.ERROR
    assert record.exc_info[0] is RuntimeError


# ------------------------------------------------------------------------------ FrameSender


def test_frame_sender_from_sync_code_sends_in_order_each_done_on_return(recorded):
    sent, delays = recorded
    delays["1"] = 0.03
    frames = FrameSender("local|c")
    frames.send("1")
    assert sent == [("local|c", "1")]
    frames.send("2")
    assert sent == [("local|c", "1"), ("local|c", "2")]


def test_frame_sender_keeps_call_order_when_it_cannot_wait(recorded):
    """In a thread whose loop runs (an async deferred handler), sends are queued one after another."""
    sent, delays = recorded
    delays.update({"1": 0.05, "2": 0.02})  # later frames would overtake earlier ones if not chained
    frames = FrameSender("local|c")

    async def handler():
        for text in ("1", "2", "3"):
            frames.send(text)
        return list(sent)

    assert asyncio.run(handler()) == []  # queued, not waited for
    frames.send("4")  # sync again: waits for the queued ones first
    assert [text for _, text in sent] == ["1", "2", "3", "4"]


def test_frame_sender_queued_sends_finish_in_order(recorded):
    sent, delays = recorded
    delays["a"] = 0.03
    frames = FrameSender("local|c")

    async def handler():
        frames.send("a")
        frames.send("b")

    asyncio.run(handler())
    frames._last.result(2)
    assert sent == [("local|c", "a"), ("local|c", "b")]


async def test_frame_sender_in_a_sync_to_async_thread_sends_on_the_outer_loop(monkeypatch):
    loops = []

    async def fake_send_text(address, text):
        loops.append((asyncio.get_running_loop(), address, text))

    monkeypatch.setattr(sender, "_send_text", fake_send_text)
    frames = FrameSender("local|c")
    await sync_to_async(frames.send)("x")
    assert loops == [(asyncio.get_running_loop(), "local|c", "x")]

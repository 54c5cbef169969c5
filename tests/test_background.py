"""Background work (channelbus.background): in_background and log_failure."""

import asyncio
import concurrent.futures
import gc
import logging

import pytest

from channelbus import background
from channelbus.background import in_background, log_failure


def channelbus_records(caplog):
    return [r for r in caplog.records if r.name == "channelbus"]


async def await_until(condition, timeout=2.0):
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - set by a done-callback or a log record, not an Event
            await asyncio.sleep(0.002)


async def failing():
    raise ValueError("broken in the background")


async def test_in_background_runs_the_coroutine_and_holds_it_until_it_ends():
    release = asyncio.Event()

    async def work():
        await release.wait()
        return "done"

    task = in_background(work())
    assert isinstance(task, asyncio.Task)
    assert task in background._running  # asyncio keeps only a weak reference
    release.set()
    assert await task == "done"
    await await_until(lambda: task not in background._running)


async def test_a_failure_is_logged_once_at_error_with_its_traceback(caplog):
    with caplog.at_level(logging.ERROR, logger="channelbus"):
        task = in_background(failing())
        await await_until(lambda: channelbus_records(caplog))
        await asyncio.sleep(0)  # any second log line would have been written by now
    (record,) = channelbus_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "channelbus: background work failed"
    assert record.exc_info[0] is ValueError
    assert str(record.exc_info[1]) == "broken in the background"
    assert "in failing" in caplog.text
    assert "Traceback" in caplog.text
    assert task.done()
    assert task not in background._running


async def test_a_logged_failure_is_never_reported_as_unretrieved(caplog):
    with caplog.at_level(logging.ERROR):
        task = in_background(failing())
        await await_until(task.done)
        await asyncio.sleep(0)
        del task
        gc.collect()
    assert not [r for r in caplog.records if r.name == "asyncio"]
    assert len(channelbus_records(caplog)) == 1


async def test_log_failure_ignores_success_and_cancellation(caplog):
    loop = asyncio.get_running_loop()
    done, cancelled = loop.create_future(), loop.create_future()
    done.set_result(1)
    cancelled.cancel()
    with caplog.at_level(logging.DEBUG, logger="channelbus"):
        log_failure(done)
        log_failure(cancelled)
        task = in_background(asyncio.sleep(3600))
        task.cancel()
        await await_until(lambda: task not in background._running)
    assert channelbus_records(caplog) == []


def test_log_failure_works_for_concurrent_futures(caplog):
    failed, succeeded, cancelled = (concurrent.futures.Future() for _ in range(3))
    for future in (failed, succeeded, cancelled):
        future.add_done_callback(log_failure)
    with caplog.at_level(logging.ERROR, logger="channelbus"):
        succeeded.set_result(None)
        cancelled.cancel()
        failed.set_exception(KeyError("from a thread"))
    (record,) = channelbus_records(caplog)
    assert record.exc_info[0] is KeyError
    assert record.getMessage() == "channelbus: background work failed"


def test_log_failure_of_a_thread_pool_future(caplog):
    def work():
        raise OSError("disk")

    with (
        caplog.at_level(logging.ERROR, logger="channelbus"),
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        future = pool.submit(work)
        with pytest.raises(OSError):
            future.result(2)
        log_failure(future)
    (record,) = channelbus_records(caplog)
    assert record.exc_info[0] is OSError
    assert "in work" in caplog.text

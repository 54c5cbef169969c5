"""Jobs whose connection lives in a process this one cannot reach (channelbus/jobs/strays.py), in-process on
django_tasks_db: the worker given such a job logs a WARNING with the cause and the fix; the process that
queued it answers its client with error.job once a worker of another process took the row, and not when its
own worker did. A worker of another process is a row claimed under another worker id, as the reaper's tests
do; two real runbus processes on one SQLite database: tests/system/test_two_runbus.py."""

import asyncio
import logging
import tempfile
import time

import pytest
from django.core.cache import cache

import tests.lostapp.messages  # noqa: F401 - registers the lost.* types
from channelbus.jobs import liveness, strays
from channelbus.jobs.deferred import put
from channelbus.jobs.job import DeferredJob
from channelbus.transport import get_hub
from tests.jobs.test_deferred import DB_TASKS, db_worker
from tests.jobs.test_liveness import queued
from tests.jobs.test_neighbours import another_runbus

pytestmark = pytest.mark.django_db(transaction=True)

LATER = strays.GRACE + 0.5  # seconds after the enqueue: past the grace the own worker has


@pytest.fixture(autouse=True)
def watch_on(settings, monkeypatch):
    """The watch on, as runbus turns it on (its thread is not started: the tests call check())."""
    settings.TASKS = DB_TASKS
    monkeypatch.setattr(strays, "_on", True)
    monkeypatch.setattr(strays, "_watched", {})
    monkeypatch.setattr(strays, "_own_workers", set())
    cache.clear()
    yield
    cache.clear()


async def queued_job(bus_client, user, type_name="lost.plain", i="x1"):
    """A connected client that sent ``type_name`` (deferred): its q arrived and its row is READY."""
    client = await bus_client(user=user)
    await client.send(type_name, i=i)
    assert await client.receive() == {"t": type_name, "i": i, "s": "q"}
    await queued(1)
    return client


async def claim(worker_id):
    """A worker called ``worker_id`` takes the one READY row (and does not run it yet)."""
    from django_tasks_db.models import DBTaskResult

    row = await DBTaskResult.objects.aget(status="READY")
    await asyncio.to_thread(row.claim, worker_id)


def check(after=LATER):
    return asyncio.to_thread(strays.check, time.monotonic() + after)


async def test_a_job_taken_by_a_worker_of_another_process_gets_error_job(bus_client, user, caplog):
    client = await queued_job(bus_client, user)
    assert strays.watched() == 1
    await claim("runbus-4242")
    assert await check(after=0) == 0  # within the grace the row is not even read
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        assert await check() == 1
    frame = await client.receive()
    assert frame == {
        "t": "error.job",
        "i": "x1",
        "s": "f",
        "p": {
            "msg": "lost.plain was taken by a worker in another process, which cannot answer this "
            "connection.",
            "type_name": "lost.plain",
            "attempts": 1,
            "reason": "other_process",
        },
    }
    [address] = [c.channel_name for c in get_hub().connections.values()]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(
        f"channelbus: deferred lost.plain (i=x1) of connection {address} was taken by worker runbus-4242 "
        "of another process, whose frames cannot reach the connection; its client gets error.job: "
    )
    assert "Run one runbus per database, or use channels_redis in CHANNEL_LAYERS" in line
    assert strays.watched() == 0
    assert await check() == 0  # answered once
    await client.assert_nothing_received()


async def test_a_job_this_process_runs_leaves_the_watch_and_answers(bus_client, user):
    strays.own_worker("inline")
    client = await queued_job(bus_client, user)
    await asyncio.to_thread(db_worker("default").run)  # worker id "inline", this process
    assert strays.watched() == 0
    assert [(await client.receive())["s"] for _ in range(2)] == ["r", "s"]
    assert await check() == 0


async def test_a_row_taken_by_the_own_worker_before_it_runs_is_no_stray(bus_client, user):
    strays.own_worker("runbus-own")
    client = await queued_job(bus_client, user)
    await claim("runbus-own")  # the look may come between the claim and the start
    assert await check() == 0
    assert strays.watched() == 0
    await client.assert_nothing_received()


async def test_a_row_not_taken_yet_stays_watched_and_a_gone_row_is_forgotten(bus_client, user):
    from django_tasks_db.models import DBTaskResult

    client = await queued_job(bus_client, user)
    assert await check() == 0
    assert strays.watched() == 1
    await DBTaskResult.objects.all().adelete()  # pruned, or its enqueue rolled back
    assert await check() == 0
    assert strays.watched() == 0
    await client.assert_nothing_received()


async def test_only_jobs_for_this_process_s_local_connections_are_watched(bus_client, user):
    await bus_client(user=user)
    [address] = [c.channel_name for c in get_hub().connections.values()]
    here = DeferredJob(
        type_name="lost.plain", trace_id="w", address=address, process=liveness.process_id(), job_id="j1"
    )
    not_watched = [
        here.but(address="channelbus.hub!abc|def"),  # a shared layer: any process reaches it
        here.but(process="another-process"),  # queued again by another process (a retry there)
        here.but(address=None),  # nobody waits for it
        here.but(job_id=None),  # a job of channelbus 0.1
    ]
    for job in not_watched:
        await asyncio.to_thread(put, job, "default", 0, None)
    assert strays.watched() == 0
    await asyncio.to_thread(put, here, "default", 0, None)
    assert strays.watched() == 1


async def test_the_watch_is_off_until_started(bus_client, user, monkeypatch):
    monkeypatch.setattr(strays, "_on", False)
    await queued_job(bus_client, user)
    assert strays.watched() == 0


def test_start_watch_is_for_the_database_queue_without_a_shared_layer(settings, monkeypatch):
    monkeypatch.setattr(strays, "_on", False)
    monkeypatch.setattr(strays, "_start", lambda: None)  # no thread in the test process
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    assert not strays.start_watch()
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert not strays.start_watch()
    settings.TASKS = DB_TASKS
    assert strays.start_watch()


@pytest.fixture
def other_runbus(tmp_path, monkeypatch):
    """Another runbus alive on this job queue database (its lock file in ``tmp_path``)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    proc = another_runbus()
    yield proc
    proc.kill()
    proc.wait(10)


async def queued_for_another_process(bus_client, user, type_name):
    """A job of ``type_name`` for a local connection, queued by another process; its address."""
    await bus_client(user=user)
    [address] = [c.channel_name for c in get_hub().connections.values()]
    job = DeferredJob(type_name=type_name, trace_id="o1", address=address, process="another-process")
    await asyncio.to_thread(put, job, "default", 0, None)
    return address


@pytest.mark.parametrize(
    ("type_name", "outcome"),
    [("lost.plain", "it runs but its reply is lost"), ("lost.cancellable", "it is not started")],
)
async def test_a_worker_given_a_job_of_another_live_runbus_s_connection_warns(
    bus_client, user, caplog, other_runbus, type_name, outcome
):
    """A second runbus's worker takes a job for local|<id> of the first, which is alive."""
    address = await queued_for_another_process(bus_client, user, type_name)
    with caplog.at_level(logging.INFO, logger="channelbus"):
        await asyncio.to_thread(db_worker("default").run)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"channelbus: deferred {type_name} (i=o1) was queued by another process, which holds its connection "
        f"{address}; without a shared channel layer no frame from this one reaches it, so {outcome}"
        + (" (cancel_on_disconnect)" if type_name == "lost.cancellable" else "")
        + ": another runbus, a db_worker or a server before a restart reads the same job queue database. "
        "Run one runbus per database, or use channels_redis in CHANNEL_LAYERS for every process "
        "(docs/deployment.md)."
    ]
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if "has closed" in line]  # not a closed connection: a mistake
    assert (f"lost-test: {type_name} ran (i=o1)" in lines) is (type_name == "lost.plain")


async def test_after_a_restart_the_jobs_of_the_process_before_are_of_closed_connections(
    bus_client, user, caplog, tmp_path, monkeypatch
):
    """No other runbus is alive: the process that queued the job is gone, and its connection with it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    address = await queued_for_another_process(bus_client, user, "lost.plain")
    with caplog.at_level(logging.INFO, logger="channelbus"):
        await asyncio.to_thread(db_worker("default").run)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    no_receiver = f"runs for a connection that has closed ({address}): its reply has no receiver"
    assert f"channelbus: deferred lost.plain (i=o1) {no_receiver}" in [r.getMessage() for r in caplog.records]

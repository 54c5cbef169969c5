"""Liveness of a job's connection (channelbus/jobs/liveness.py), asked by the worker before it starts a job:
a closed connection's record, a dead process's stale heartbeat, the serving hub for local addresses, the
Connection row. cancel_on_disconnect jobs of a gone connection are not started; others run, logged."""

import asyncio
import logging
import time
import uuid

import pytest
from django.core.cache import cache
from django.utils import timezone

import tests.lostapp.messages  # noqa: F401 - registers the lost.* types
from channelbus.jobs import liveness
from channelbus.jobs.deferred import run_deferred
from channelbus.jobs.job import DeferredJob
from channelbus.transport import get_hub
from tests.jobs.test_deferred import DB_TASKS, db_worker
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


async def queued(count):
    """Wait until ``count`` jobs are in the queue (q is sent just before the enqueue)."""
    from django_tasks_db.models import DBTaskResult

    async def all_there():
        return await DBTaskResult.objects.filter(status="READY").acount() == count

    await wait_for(all_there, what=f"{count} queued jobs")


def address_of(client_count=1):
    """The addresses of the connected test clients."""
    return [c.channel_name for c in get_hub().connections.values()][:client_count]


async def test_jobs_of_a_closed_connection_are_cancelled_or_run_with_a_log_line(
    bus_client, user, settings, caplog
):
    settings.TASKS = DB_TASKS  # queued now, run by a worker after the socket closed
    client = await bus_client(user=user)
    [address] = address_of()
    await client.send("lost.cancellable", i="c1")
    await client.send("lost.plain", i="p1")
    assert [(await client.receive())["s"] for _ in range(2)] == ["q", "q"]
    await queued(2)
    assert not await asyncio.to_thread(liveness.connection_gone, address)
    await client.close()
    await wait_for(lambda: cache.get(liveness.gone_key(address)), what="the close record")
    assert await asyncio.to_thread(liveness.connection_gone, address)
    with caplog.at_level(logging.INFO, logger="channelbus"):
        await asyncio.to_thread(db_worker("default").run)
    lines = [r.getMessage() for r in caplog.records]
    assert (
        f"channelbus: deferred lost.cancellable (i=c1) not started: its connection {address} has closed"
        in lines
    )
    assert "lost-test: lost.cancellable ran (i=c1)" not in lines
    no_receiver = f"runs for a connection that has closed ({address}): its reply has no receiver"
    assert f"channelbus: deferred lost.plain (i=p1) {no_receiver}" in lines
    assert "lost-test: lost.plain ran (i=p1)" in lines


async def test_jobs_of_an_open_connection_run_and_answer(bus_client, user, settings, caplog):
    settings.TASKS = DB_TASKS
    client = await bus_client(user=user)
    await client.send("lost.cancellable", i="c2")
    assert (await client.receive())["s"] == "q"
    await queued(1)
    with caplog.at_level(logging.INFO, logger="channelbus"):
        await asyncio.to_thread(db_worker("default").run)
    assert [(await client.receive())["s"] for _ in range(2)] == ["r", "s"]
    assert not [r for r in caplog.records if "has closed" in r.getMessage()]


async def test_a_local_address_is_asked_of_the_serving_hub(bus_client, user):
    """Without a shared layer every address is local|<id>: the serving hub knows which it holds."""
    await bus_client(user=user)
    [address] = address_of()
    assert address.startswith("local|")
    assert not await asyncio.to_thread(liveness.connection_gone, address)
    # A connection of a process that was restarted since: never closed here, and not held here.
    assert await asyncio.to_thread(liveness.connection_gone, f"local|{uuid.uuid4().hex[:16]}")


async def test_a_local_address_queued_by_another_process_is_gone_for_this_one(bus_client, user):
    """A killed runbus's job, run by the restarted one: local|<id> is not reachable from here."""
    await bus_client(user=user)
    [address] = address_of()
    here = liveness.process_id()
    assert not await asyncio.to_thread(liveness.connection_gone, address, here)
    assert await asyncio.to_thread(liveness.connection_gone, address, "another-process")
    assert not await asyncio.to_thread(liveness.connection_gone, address, None)  # a job of an older release


def test_a_local_address_is_unknown_where_no_hub_serves_sockets():
    """A worker process without a serving hub cannot tell: the job is taken as alive."""
    assert liveness._held_here("0123456789abcdef") in (None, False)
    assert liveness._ask_serving_hub  # what the sender loop runs


@pytest.mark.parametrize(
    ("beat_age", "gone"),
    [(None, False), (1.0, False), (liveness.STALE_AFTER + 5, True)],
)
def test_a_stale_heartbeat_means_the_process_and_its_connections_are_gone(beat_age, gone):
    channel = f"channelbus.hub!{uuid.uuid4().hex}"
    if beat_age is not None:
        cache.set(liveness.beat_key(channel), time.time() - beat_age)
    assert liveness.connection_gone(f"{channel}|abc") is gone


def test_watch_keeps_the_heartbeat_of_a_shared_layer_channel_going():
    class Connection:
        channel_name = f"channelbus.hub!{uuid.uuid4().hex}|abc"

    connection = Connection()
    liveness.watch(connection)
    liveness.watch(connection)  # once per connection
    channel = connection.channel_name.rsplit("|", 1)[0]
    deadline = time.monotonic() + 5
    while cache.get(liveness.beat_key(channel)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.time() - cache.get(liveness.beat_key(channel)) < liveness.HEARTBEAT_SECONDS + 1
    assert not liveness.connection_gone(connection.channel_name)


def test_with_track_connections_a_closed_row_means_gone(settings):
    from channelbus.models import Connection

    settings.CHANNELBUS = {"TRACK_CONNECTIONS": True}
    now = timezone.now()
    Connection.objects.create(address="t.hub|closed", opened_at=now, last_activity=now, closed_at=now)
    Connection.objects.create(address="t.hub|open", opened_at=now, last_activity=now)
    assert liveness.connection_gone("t.hub|closed")
    assert not liveness.connection_gone("t.hub|open")
    settings.CHANNELBUS = {}
    assert not liveness.connection_gone("t.hub|closed")  # the row is read only with TRACK_CONNECTIONS


def test_a_job_without_address_is_never_cancelled(caplog):
    job = DeferredJob(type_name="lost.cancellable", trace_id="n1")
    with caplog.at_level(logging.INFO, logger="channelbus"):
        run_deferred.call(job.to_json())
    assert "lost-test: lost.cancellable ran (i=n1)" in [r.getMessage() for r in caplog.records]

"""The reaper (channelbus/jobs/reaping.py), in-process on django_tasks_db: a job row left RUNNING by a dead
worker beyond its limit is marked FAILED and retried, or answered with error.job; one reaper of several
wins; a slow worker that finishes after the reaper drops its outcome; runbus's thread and the command.
Real killed worker processes: tests/system/test_lost_jobs.py."""

import asyncio
import datetime
import os
import time
import uuid

import pytest
from django.core.cache import cache
from django.utils import timezone

import tests.lostapp.messages  # noqa: F401 - registers the lost.* types
from channelbus.jobs import caps, ordering, reaping
from channelbus.jobs.deferred import claim_end, enqueue, new_job_id, run_deferred
from channelbus.jobs.job import DeferredJob
from channelbus.jobs.timeouts import attempt_limit
from channelbus.messages import Metadata, incoming
from channelbus.transport import get_hub
from tests.jobs.test_deferred import DB_TASKS, db_worker
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    settings.TASKS = DB_TASKS
    settings.CHANNELBUS = {"JOB_REAP_GRACE": 0}
    cache.clear()
    yield
    cache.clear()


def started_and_lost(type_name, payload, address=None, seconds_ago=5.0, trace_id="k1", **job):
    """Queue a job of ``type_name``; a worker "dead" claimed it ``seconds_ago`` (as a killed one would)."""
    from django_tasks_db.models import DBTaskResult

    cls = incoming.get(type_name)
    job_id = new_job_id()
    slots = caps.take(cls, job_id, address, None) if address else ()
    meta = Metadata(trace_id=trace_id, channel_name=address, received_at=time.time(), registry=incoming)
    enqueue(cls, payload, meta, job_id=job_id, slots=slots, **job)
    row = DBTaskResult.objects.get(status="READY")
    row.claim("dead")
    DBTaskResult.objects.filter(pk=row.pk).update(
        started_at=timezone.now() - datetime.timedelta(seconds=seconds_ago)
    )
    row.refresh_from_db()
    return row


async def connected(bus_client, user):
    client = await bus_client(user=user)
    [connection] = get_hub().connections.values()
    return client, connection.channel_name


async def test_a_lost_job_with_a_retry_left_is_run_again(bus_client, user):
    from django_tasks_db.models import DBTaskResult

    client, address = await connected(bus_client, user)
    row = await asyncio.to_thread(started_and_lost, "lost.nap", {"seconds": 30}, address)
    assert await asyncio.to_thread(reaping.reap) == 1
    await row.arefresh_from_db()
    assert (row.status, row.exception_class_path) == ("FAILED", "channelbus.jobs.reaping.WorkerLost")
    assert "did not end within 1 s" in row.traceback
    retry = await DBTaskResult.objects.aget(status="READY")
    assert retry.args_kwargs["args"][0]["attempt"] == 2
    await asyncio.to_thread(db_worker("default").run)
    assert [await client.receive() for _ in range(2)] == [
        {"t": "lost.nap", "i": "k1", "s": "r"},
        {"t": "lost.nap", "i": "k1", "p": {"attempt": 2, "pid": os.getpid()}, "s": "s"},
    ]
    assert held_slots(address) == []  # freed once the retry ended


def held_slots(address):
    return sorted(cache.get_many([caps.slot_key("c", address, k) for k in range(10)]))


async def test_a_lost_job_without_retries_left_gets_error_job(bus_client, user):
    from django_tasks_db.models import DBTaskResult

    client, address = await connected(bus_client, user)
    await asyncio.to_thread(started_and_lost, "lost.final", {"seconds": 30}, address, seq=3)
    assert held_slots(address) != []
    assert await asyncio.to_thread(reaping.reap) == 1
    assert await client.receive() == {
        "t": "error.job",
        "i": "k1",
        "p": {
            "msg": "lost.final did not finish: its worker was lost: the attempt did not end within 1 s.",
            "type_name": "lost.final",
            "attempts": 1,
            "reason": "worker_lost",
        },
        "s": "f",
    }
    assert await DBTaskResult.objects.filter(status="READY").acount() == 0
    assert held_slots(address) == []
    assert cache.get(ordering.order_key(address)) == 3  # its strict successor may go ahead now


def test_a_job_within_its_limit_and_grace_is_left_alone(settings):
    settings.CHANNELBUS = {"JOB_REAP_GRACE": 30}
    row = started_and_lost("lost.final", {"seconds": 30}, "t.hub|x", seconds_ago=5)
    assert reaping.reap() == 0
    assert reaping.reap(grace=10) == 0
    row.refresh_from_db()
    assert row.status == "RUNNING"
    assert reaping.reap(grace=3) == 1  # 5 s > 1 s limit + 3 s


def test_a_class_without_timeout_is_reaped_after_job_reap_after(settings):
    settings.CHANNELBUS = {"JOB_REAP_GRACE": 0, "JOB_REAP_AFTER": 60}
    started_and_lost("lost.plain", None, "t.hub|x", seconds_ago=30)
    assert reaping.reap() == 0
    assert reaping.reap(now=timezone.now() + datetime.timedelta(seconds=31)) == 1
    settings.CHANNELBUS = {"JOB_REAP_GRACE": 0, "JOB_REAP_AFTER": None}  # never
    started_and_lost("lost.plain", None, "t.hub|y", seconds_ago=10**6)
    assert reaping.reap() == 0


def test_of_two_reapers_one_ends_the_job():
    row = started_and_lost("lost.final", {"seconds": 30}, "t.hub|x")
    assert reaping.reap() == 1
    assert reaping.reap() == 0  # the row is FAILED now
    row.refresh_from_db()
    # A second reaper that read the row while it was RUNNING loses the conditional update.
    row.status = "RUNNING"
    assert reaping._reap_row(row, 0.0, timezone.now()) is False


def test_a_job_of_an_unregistered_type_is_marked_failed_and_frees_its_places():
    from django_tasks_db.models import DBTaskResult

    row = started_and_lost("lost.final", {"seconds": 30}, "t.hub|gone")
    job = row.args_kwargs["args"][0]
    DBTaskResult.objects.filter(pk=row.pk).update(
        args_kwargs={"args": [{**job, "type_name": "lost.renamed"}], "kwargs": {}}
    )
    limit = attempt_limit(None)  # JOB_REAP_AFTER: no class, no timeout
    assert reaping.reap(now=timezone.now() + datetime.timedelta(seconds=limit)) == 1
    row.refresh_from_db()
    assert row.status == "FAILED"
    assert held_slots("t.hub|gone") == []


async def test_a_slow_worker_that_ends_after_the_reaper_drops_its_outcome(bus_client, user):
    """In a thread the timer cannot cut time.sleep short: the attempt overruns its 1 s limit. The reaper
    took its end meanwhile, so the worker sends no error.job and frees nothing (the retry holds it)."""
    client, address = await connected(bus_client, user)
    job_id = new_job_id()
    slots = await asyncio.to_thread(caps.take, incoming.get("lost.final"), job_id, address, None)
    job = DeferredJob(
        type_name="lost.final",
        payload={"seconds": 1.3},
        trace_id="k2",
        address=address,
        job_id=job_id,
        slots=slots,
    )
    assert claim_end(job)  # the reaper ended attempt 1 while it was still running
    await asyncio.to_thread(run_deferred.call, job.to_json())
    assert await client.receive() == {"t": "lost.final", "i": "k2", "s": "r"}
    await client.assert_nothing_received(0.3)
    assert held_slots(address) == sorted(slots)


async def test_an_attempt_within_its_limit_never_asks_for_its_end(bus_client, user):
    client, address = await connected(bus_client, user)
    job = DeferredJob(
        type_name="lost.final", payload={"seconds": 0}, trace_id="k3", address=address, job_id="j"
    )
    await asyncio.to_thread(run_deferred.call, job.to_json())
    assert [(await client.receive())["s"] for _ in range(2)] == ["r", "s"]
    assert claim_end(job)  # nobody took it


async def test_the_reaper_thread_reaps_every_interval():
    await asyncio.to_thread(started_and_lost, "lost.final", {"seconds": 30}, f"t.hub|{uuid.uuid4().hex}")
    reaper = reaping.start_reaper(0.05)
    assert reaper is not None
    try:
        from django_tasks_db.models import DBTaskResult

        await wait_for(lambda: DBTaskResult.objects.filter(status="FAILED").aexists(), what="a reaped row")
    finally:
        reaper.stop()


def test_no_reaper_without_django_tasks_db_or_with_the_interval_off(settings):
    settings.CHANNELBUS = {"JOB_REAP_INTERVAL": None}
    assert reaping.start_reaper() is None
    settings.CHANNELBUS = {}
    settings.TASKS = {"default": {"BACKEND": _immediate()}}
    assert not reaping.reaps_here()
    assert reaping.start_reaper() is None
    assert reaping.reap() == 0


def _immediate():
    from importlib.util import find_spec

    return (
        "django.tasks" if find_spec("django.tasks") else "django_tasks"
    ) + ".backends.immediate.ImmediateBackend"

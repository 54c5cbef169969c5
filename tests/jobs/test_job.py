"""DeferredJob (channelbus/jobs/job.py): the data a deferred job carries, and that the worker code of this
release runs every format a release may have queued: this one's (frozen below), a newer one's with extra
keys, one without its optional keys, and channelbus 0.1's positional arguments."""

import dataclasses

import orjson
import pytest
from channels.db import database_sync_to_async

from channelbus.jobs.deferred import run_deferred
from channelbus.jobs.job import JOB_FORMAT, DeferredJob

#: What ``DeferredJob.to_json()`` writes in this release (format 1), frozen here: a worker of any later
#: release must still run it. Only ``user_pk`` and ``address`` are filled in by the tests.
QUEUED_BY_THIS_RELEASE = {
    "v": 1,
    "type_name": "test.who_asked",
    "payload": None,
    "trace_id": "j1",
    "user_pk": "<user pk>",
    "address": "<connection address>",
    "attempt": 1,
    "received_at": 1767225600.5,
    "registry": "incoming",
    "seq": None,
    "waiting_since": None,
    "job_id": None,
    "slots": [],
    "process": None,
    "repeat_key": None,
}


def full_job():
    return DeferredJob(
        type_name="test.strict_note",
        payload={"text": "hi", "nested": [1, 2.5, None]},
        trace_id="t9",
        user_pk="42",
        address="local|abc",
        attempt=3,
        received_at=1767225600.25,
        registry="incoming",
        seq=7,
        waiting_since=1767225601.75,
    )


def test_to_json_is_the_frozen_format_of_this_release():
    job = DeferredJob(
        type_name="test.who_asked",
        trace_id="j1",
        user_pk="<user pk>",
        address="<connection address>",
        received_at=1767225600.5,
    )
    assert JOB_FORMAT == 1
    assert job.to_json() == QUEUED_BY_THIS_RELEASE
    assert list(job.to_json()) == list(QUEUED_BY_THIS_RELEASE)  # "v" first, then the fields in order


def test_to_json_from_json_round_trip_through_real_json():
    job = full_job()
    assert DeferredJob.from_json(job.to_json()) == job
    # A queue stores JSON text: the job survives being written and read back.
    assert DeferredJob.from_json(orjson.loads(orjson.dumps(job.to_json()))) == job
    assert DeferredJob.from_task_args((job.to_json(),)) == job


def test_but_returns_a_changed_copy_and_leaves_the_job_alone():
    job = full_job()
    later = job.but(attempt=4, waiting_since=None)
    assert later is not job
    assert (later.attempt, later.waiting_since) == (4, None)
    assert (job.attempt, job.waiting_since) == (3, 1767225601.75)
    assert dataclasses.replace(later, attempt=3, waiting_since=1767225601.75) == job
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.attempt = 5
    with pytest.raises(TypeError):
        job.but(no_such_field=1)


@pytest.mark.parametrize(
    "data",
    [None, "test.who_asked", ["test.who_asked"], {}, {"type_name": None}, {"type_name": 3}, {"payload": {}}],
    ids=repr,
)
def test_from_json_refuses_what_is_not_a_job(data):
    with pytest.raises(ValueError, match="Not a channelbus deferred job"):
        DeferredJob.from_json(data)


@pytest.mark.parametrize(
    "args",
    [(), tuple(range(11)), (3,), ({"payload": 1},), ({"type_name": "x"}, "extra")],
    ids=repr,
)
def test_from_task_args_refuses_what_is_not_a_job(args):
    with pytest.raises(ValueError, match="Not a channelbus deferred job"):
        DeferredJob.from_task_args(args)


def test_run_deferred_refuses_malformed_arguments():
    with pytest.raises(ValueError):
        run_deferred.call()
    with pytest.raises(ValueError):
        run_deferred.call({"payload": {"text": "no type"}})


def test_format_0_positional_arguments_map_to_the_fields():
    args = ("test.who_asked", {"a": 1}, "t0", "5", "local|x", 2, 1700000000.0, "incoming", 4, 1700000001.0)
    assert DeferredJob.from_task_args(args) == DeferredJob(
        type_name="test.who_asked",
        payload={"a": 1},
        trace_id="t0",
        user_pk="5",
        address="local|x",
        attempt=2,
        received_at=1700000000.0,
        registry="incoming",
        seq=4,
        waiting_since=1700000001.0,
    )
    # 0.1 left its trailing arguments out when they had their defaults.
    short = DeferredJob.from_task_args(args[:7])
    assert (short.registry, short.seq, short.waiting_since) == ("incoming", None, None)


async def connected(bus_client, user):
    """A connected client and its address (what a job names in ``address``)."""
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    [connection] = get_hub().connections.values()
    return client, connection.channel_name


async def run_and_read(client, *args, trace_id):
    """Run ``run_deferred`` as a worker does (in a thread), and return the frames its client got."""
    await database_sync_to_async(run_deferred.call)(*args)
    frames = [await client.receive("test.who_asked", timeout=3) for _ in range(2)]
    assert [(f["i"], f["s"]) for f in frames] == [(trace_id, "r"), (trace_id, "s")]
    await client.assert_nothing_received(0.05)
    return frames[1]["p"]


@pytest.mark.django_db(transaction=True)
async def test_a_job_queued_by_this_release_is_run_by_the_current_worker(bus_client, user):
    client, address = await connected(bus_client, user)
    queued = {**QUEUED_BY_THIS_RELEASE, "user_pk": str(user.pk), "address": address}
    reply = await run_and_read(client, queued, trace_id="j1")
    assert reply == {"user": "alice", "address": address, "attempt": 1}


@pytest.mark.django_db(transaction=True)
async def test_a_job_from_a_newer_release_with_unknown_keys_still_runs(bus_client, user):
    client, address = await connected(bus_client, user)
    queued = {
        **QUEUED_BY_THIS_RELEASE,
        "v": 2,
        "trace_id": "j2",
        "user_pk": str(user.pk),
        "address": address,
        "tenant": "acme",
        "deadline": 1767229200.0,
    }
    reply = await run_and_read(client, queued, trace_id="j2")
    assert reply == {"user": "alice", "address": address, "attempt": 1}


@pytest.mark.django_db(transaction=True)
async def test_a_job_without_its_optional_keys_still_runs(bus_client, user):
    client, address = await connected(bus_client, user)
    reply = await run_and_read(
        client, {"type_name": "test.who_asked", "trace_id": "j3", "address": address}, trace_id="j3"
    )
    assert reply == {"user": "", "address": address, "attempt": 1}  # no user_pk: signed out


@pytest.mark.django_db(transaction=True)
async def test_a_job_queued_by_channelbus_0_1_with_positional_arguments_still_runs(bus_client, user):
    from django.utils.module_loading import import_string

    # 0.1 queued it under its task path then: a worker of this release finds the same task there.
    assert import_string("channelbus.tasks.run_deferred") is run_deferred
    client, address = await connected(bus_client, user)
    # type_name, payload, trace_id, user_pk, address, attempt, received_at, registry_name, seq, waiting_since
    args = ("test.who_asked", None, "j4", str(user.pk), address, 2, 1700000000.0, "incoming", None, None)
    reply = await run_and_read(client, *args, trace_id="j4")
    assert reply == {"user": "alice", "address": address, "attempt": 2}
    # and as 0.1 queued it when registry_name, seq and waiting_since had their defaults
    reply = await run_and_read(
        client, "test.who_asked", None, "j5", str(user.pk), address, 1, 0.0, trace_id="j5"
    )
    assert reply == {"user": "alice", "address": address, "attempt": 1}

"""Job caps (channelbus/jobs/caps.py): deferred jobs queued or running at once, per connection and per user.
Over a cap the consumer answers error.rate_limited with retry_after before q and before anything is queued;
a job frees its places whichever way it ends, and keeps them while it is retried."""

import asyncio
import threading
import time
import uuid

import pytest
from django.core.cache import cache

import tests.lostapp.messages  # noqa: F401 - registers the lost.* types
from channelbus.jobs import caps, deferred, liveness
from channelbus.jobs.deferred import new_job_id, run_deferred
from channelbus.jobs.job import DeferredJob
from channelbus.messages import incoming
from channelbus.protocol import RateLimited
from channelbus.testing import RequestFailed
from tests.jobs.test_deferred import DB_TASKS, db_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # slots of a user pk that an earlier test's flushed database used too
    yield
    cache.clear()


def held(prefix):
    """The slot keys of the cache starting with ``prefix`` that hold a job."""
    keys = [caps.slot_key(*prefix, k) for k in range(50)]
    return sorted(cache.get_many(keys))


async def test_a_connection_over_its_cap_is_refused_before_anything_is_queued(bus_client, user, settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS  # jobs stay queued until a worker takes them
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": 2, "MAX_JOBS_PER_USER": None}
    client = await bus_client(user=user)
    for i in ("a", "b"):
        await client.send("lost.plain", i=i)
        assert await client.receive() == {"t": "lost.plain", "i": i, "s": "q"}
    await client.send("lost.plain", i="c")
    assert await client.receive() == {
        "t": "error.rate_limited",
        "i": "c",
        "p": {
            "msg": "Too many jobs of this connection are queued or running (at most 2); try again later.",
            "retry_after": 1.0,
            "type_name": "lost.plain",
            "limit": 2,
        },
        "s": "f",
    }
    assert await DBTaskResult.objects.acount() == 2  # the refused one was never queued
    await asyncio.to_thread(db_worker("default").run)
    assert [(f["i"], f["s"]) for f in [await client.receive() for _ in range(4)]] == [
        ("a", "r"),
        ("a", "s"),
        ("b", "r"),
        ("b", "s"),
    ]
    await client.send("lost.plain", i="d")  # both places are free again
    assert await client.receive() == {"t": "lost.plain", "i": "d", "s": "q"}


async def test_the_user_cap_counts_the_jobs_of_every_tab(bus_client, user, settings):
    settings.TASKS = DB_TASKS
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": None, "MAX_JOBS_PER_USER": 2}
    first = await bus_client(user=user)
    second = await bus_client(user=user)
    await first.send("lost.plain", i="1")
    await second.send("lost.plain", i="2")
    assert (await first.receive())["s"] == "q"
    assert (await second.receive())["s"] == "q"
    await first.send("lost.plain", i="3")
    refused = await first.receive()
    assert (refused["t"], refused["i"], refused["s"]) == ("error.rate_limited", "3", "f")
    assert refused["p"]["msg"].startswith("Too many jobs of your account")
    assert len(held(("u", str(user.pk)))) == 2


async def test_a_signed_out_connection_has_only_the_connection_cap(bus_client, settings):
    settings.TASKS = DB_TASKS
    settings.CHANNELBUS = {"ALLOW_ANONYMOUS": True, "MAX_JOBS_PER_CONNECTION": 1, "MAX_JOBS_PER_USER": 1}
    client = await bus_client()
    other = await bus_client()
    await client.send("lost.plain", i="1")
    assert (await client.receive())["s"] == "q"
    await other.send("lost.plain", i="2")  # another anonymous socket: not the same "user"
    assert (await other.receive())["s"] == "q"
    with pytest.raises(RequestFailed) as exc:
        await client.request("lost.plain")
    assert exc.value.type == "error.rate_limited"
    assert exc.value.payload["limit"] == 1


def test_no_caps_hold_nothing(settings):
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": None, "MAX_JOBS_PER_USER": None}
    assert not caps.applies("h|c", "1")
    assert caps.take(incoming.get("lost.plain"), "j", "h|c", "1") == ()


def test_concurrent_takes_never_exceed_the_cap(settings):
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": 5, "MAX_JOBS_PER_USER": None}
    cls = incoming.get("lost.plain")
    results = []
    start = threading.Barrier(20)

    def one(n):
        start.wait()
        try:
            results.append(caps.take(cls, f"job{n}", "h|c", None))
        except RateLimited:
            results.append(None)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [r for r in results if r is not None]
    assert len(taken) == 5
    assert len({slot for r in taken for slot in r}) == 5


def test_a_refusal_by_the_user_cap_gives_back_the_connection_place(settings):
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": 3, "MAX_JOBS_PER_USER": 1}
    cls = incoming.get("lost.plain")
    caps.take(cls, "first", "h|other", "7")
    with pytest.raises(RateLimited):
        caps.take(cls, "second", "h|c", "7")
    assert held(("c", "h|c")) == []


def test_release_frees_only_the_slots_the_job_still_holds(settings):
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": 2, "MAX_JOBS_PER_USER": None}
    cls = incoming.get("lost.plain")
    [slot] = caps.take(cls, "old", "h|c", None)
    cache.set(slot, "new")  # it expired, and another job took it meanwhile
    caps.release([slot], "old")
    assert cache.get(slot) == "new"
    caps.release([slot], "new")
    assert cache.get(slot) is None
    caps.release([], "x")  # nothing held: nothing to do
    caps.release([slot], None)


def test_hold_seconds_covers_every_attempt_and_wait(settings):
    settings.CHANNELBUS = {"JOB_REAP_GRACE": 10, "JOB_REAP_AFTER": 100}
    nap = incoming.get("lost.nap")  # timeout 1, one retry without delay
    assert caps.hold_seconds(nap) == 2 * (1 + 10) + 0 + caps.QUEUE_WAIT_SECONDS
    plain = incoming.get("lost.plain")  # no timeout: JOB_REAP_AFTER
    assert caps.hold_seconds(plain) == 100 + 10 + caps.QUEUE_WAIT_SECONDS
    fail = incoming.get("demo.fail")  # retries 2, retry_delays (0.2, 0.5), no timeout
    assert caps.hold_seconds(fail) == pytest.approx(3 * 110 + 0.7 + caps.QUEUE_WAIT_SECONDS)


def queued(type_name, payload=None, **fields):
    """A job of ``type_name`` for a new connection, holding its place like one the consumer queued."""
    cls = incoming.get(type_name)
    address = f"test.hub|{uuid.uuid4().hex}"
    job_id = new_job_id()
    slots = caps.take(cls, job_id, address, None)
    assert slots
    job = DeferredJob(type_name=type_name, payload=payload, address=address, job_id=job_id, slots=slots)
    return job.but(**fields) if fields else job


@pytest.mark.parametrize(
    ("type_name", "payload", "how"),
    [
        ("lost.plain", None, "result"),
        ("test.refuse_with_retries", None, "refusal"),
        ("lost.final", {"seconds": 3}, "time-out"),
        ("test.missing_type", None, "unregistered type"),
        ("lost.cancellable", None, "cancelled"),
    ],
)
def test_a_job_frees_its_places_whichever_way_it_ends(settings, type_name, payload, how):
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": 1, "MAX_JOBS_PER_USER": None}
    if type_name == "test.missing_type":
        address = f"test.hub|{uuid.uuid4().hex}"
        [slot] = caps.take(incoming.get("lost.plain"), "j1", address, None)
        job = DeferredJob(type_name=type_name, address=address, job_id="j1", slots=(slot,))
    else:
        job = queued(type_name, payload)
    if how == "cancelled":
        cache.set(liveness.gone_key(job.address), True)
    started = time.monotonic()
    run_deferred.call(job.to_json())  # in the main thread: SIGALRM cuts lost.final's nap at 1 s
    assert time.monotonic() - started < 2.5
    assert cache.get_many(list(job.slots)) == {}, how


def test_a_failure_that_is_retried_keeps_its_place_until_the_last_attempt(settings, monkeypatch):
    from demoapp.messages import Fail

    monkeypatch.setattr(Fail, "retry_delays", (0,))
    settings.CHANNELBUS = {"MAX_JOBS_PER_CONNECTION": 1, "MAX_JOBS_PER_USER": None}
    job = queued("demo.fail", {})
    seen = []
    real_put = deferred.put

    def put(retry, *args):
        seen.append((retry.attempt, cache.get_many(list(retry.slots)) != {}))
        real_put(retry, *args)

    monkeypatch.setattr("channelbus.jobs.deferred.put", put)
    run_deferred.call(job.to_json())  # the immediate backend runs the retries inside the put
    assert seen == [(2, True), (3, True)]  # each retry still holds the place
    assert cache.get_many(list(job.slots)) == {}  # freed after the third, last attempt

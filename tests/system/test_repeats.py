"""Repeated requests through the consumer and the job queue (issue 12 §5): a request sent again with the same
``i``, on the same or on a new connection of the same user (or guest session), runs its handler once and gets
the first run's terminal frame, or the states that follow. The store itself is tested in
tests/messages/test_repeats.py."""

import asyncio
import json
import logging

import pytest
from channels.sessions import SessionMiddlewareStack
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache

from channelbus.jobs.job import DeferredJob
from channelbus.messages import repeats
from channelbus.server import BusConsumer
from tests.jobs.test_deferred import DB_TASKS, db_worker
from tests.messages.test_repeats import UNREACHABLE, redis_cache
from tests.testapp import messages as testapp
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TERMINAL = ("s", "f")


@pytest.fixture(autouse=True)
def _fresh():
    cache.clear()
    testapp.RUNS.clear()
    testapp.NOTE_RELEASE.clear()
    yield
    testapp.NOTE_RELEASE.set()  # a handler still waiting ends now
    cache.clear()


async def answer(client, i, timeout=5.0):
    """The frames answering request ``i`` up to its terminal one (frames of other requests are dropped)."""
    frames = []
    async with asyncio.timeout(timeout):
        while not frames or frames[-1].get("s") not in TERMINAL:
            frame = await client.receive(timeout=timeout)
            if frame.get("i") == i:
                frames.append(frame)
    return frames


async def ask(client, type_name, payload, i):
    """Send request ``i`` and return its frames up to the terminal one."""
    await client.send(type_name, payload, i=i)
    return await answer(client, i)


async def notes():
    from tests.testapp.models import Note

    return await Note.objects.acount()


def entry_of(user, type_name, i):
    """The store's entry of a request of ``user`` (what the first run has recorded so far)."""
    return repeats.look(repeats.request_key(f"u{user.pk}", type_name, i))


def latest_frame(user, type_name, i):
    """The latest frame the first run of a request has recorded ("" before any)."""
    entry = entry_of(user, type_name, i)
    return entry.frame or "" if isinstance(entry, repeats.Entry) else ""


async def running(user, type_name, i):
    """Wait until the first run of the request has begun (its entry exists)."""
    await wait_for(lambda: isinstance(entry_of(user, type_name, i), repeats.Entry), what=f"{i} begun")


async def queued_by_a_first_connection(bus_client, user, settings, payload, i):
    """On the database queue (run by db_worker when a test says so): a first connection sends request
    ``i`` of test.note_deferred and gets its q; returns that connection."""
    settings.TASKS = DB_TASKS
    first = await bus_client(user=user)
    await first.send("test.note_deferred", payload, i=i)
    assert await first.receive() == {"t": "test.note_deferred", "i": i, "s": "q"}
    return first


@pytest.fixture
async def bob(db):
    from django.contrib.auth import get_user_model

    return await get_user_model().objects.acreate(username="bob")


# ---------------------------------------------------------------- a repeat runs nothing again


@pytest.mark.parametrize("type_name", ["test.note_async", "test.note_sync"])
async def test_a_repeated_i_runs_the_handler_once_and_gets_the_same_frame(bus_client, user, type_name):
    """A plain async handler and a sync ORM handler: on the same connection and on a new one."""
    first = await bus_client(user=user)
    reply = await ask(first, type_name, {"text": "once"}, "tab1-1")
    assert reply == [{"t": type_name, "i": "tab1-1", "p": {"id": reply[0]["p"]["id"], "notes": 1}, "s": "s"}]
    assert await ask(first, type_name, {"text": "once"}, "tab1-1") == reply
    second = await bus_client(user=user)
    assert await ask(second, type_name, {"text": "once"}, "tab1-1") == reply
    assert await notes() == 1
    # Another i is another request.
    assert (await ask(second, type_name, {"text": "twice"}, "tab1-2"))[-1]["p"]["notes"] == 2


async def test_a_repeated_deferred_request_never_runs_a_second_job(bus_client, user):
    """The immediate backend: the job ran in the enqueue; its repeat gets its stored s, and no q."""
    first = await bus_client(user=user)
    frames = await ask(first, "test.note_deferred", {"text": "job", "steps": 2}, "d-1")
    assert [f["s"] for f in frames] == ["q", "r", "r", "r", "s"]
    second = await bus_client(user=user)
    assert await ask(second, "test.note_deferred", {"text": "job", "steps": 2}, "d-1") == [frames[-1]]
    assert await notes() == 1


async def test_on_the_database_queue_a_repeat_adds_no_job_and_gets_the_states_that_follow(
    bus_client, user, settings
):
    from django_tasks_db.models import DBTaskResult

    first = await queued_by_a_first_connection(
        bus_client, user, settings, {"text": "queued", "steps": 2}, "d-2"
    )
    second = await bus_client(user=user)
    await second.send("test.note_deferred", {"text": "queued", "steps": 2}, i="d-2")
    assert await second.receive() == {"t": "test.note_deferred", "i": "d-2", "s": "q"}  # the latest state
    await second.send("test.guest_tally", {"tag": "behind"}, i="after")  # not held up by the repeat
    assert (await answer(second, "after"))[-1]["p"] == {"runs": 1}
    assert await DBTaskResult.objects.acount() == 1
    await asyncio.to_thread(db_worker("default").run)
    followed = await answer(second, "d-2")
    assert followed[-1] == (await answer(first, "d-2"))[-1]
    assert followed[-1]["p"]["notes"] == 1
    assert {f["s"] for f in followed[:-1]} <= {"r"}
    assert await DBTaskResult.objects.acount() == 1
    assert await notes() == 1


async def test_a_job_that_finished_while_its_client_was_away_gives_its_stored_reply(
    bus_client, user, settings
):
    from django_tasks_db.models import DBTaskResult

    first = await queued_by_a_first_connection(
        bus_client, user, settings, {"text": "away", "steps": 1}, "d-3"
    )
    await first.close()  # the socket dropped: its job runs, its reply has no receiver ...
    await asyncio.to_thread(db_worker("default").run)
    stored = entry_of(user, "test.note_deferred", "d-3")
    assert stored.done
    again = await bus_client(user=user)  # ... and the client's next connection gets it
    frames = await ask(again, "test.note_deferred", {"text": "away", "steps": 1}, "d-3")
    assert frames == [{"t": "test.note_deferred", "i": "d-3", "p": frames[0]["p"], "s": "s"}]
    assert frames[0]["p"]["notes"] == 1
    assert json.loads(stored.frame) == frames[0]  # the frame the worker sent to the closed connection
    assert await DBTaskResult.objects.acount() == 1


async def test_a_job_dropped_unstarted_for_its_closed_connection_runs_for_the_repeat(
    bus_client, user, settings
):
    """cancel_on_disconnect drops the job of the closed connection and its entry: the repeat, waiting on
    the next connection, queues it again, bound to itself."""
    from django_tasks_db.models import DBTaskResult

    from channelbus.jobs import liveness
    from channelbus.transport import get_hub

    settings.TASKS = DB_TASKS
    first = await bus_client(user=user)
    [address] = [c.channel_name for c in get_hub().connections.values()]
    await first.send("test.note_deferred_connected", {"text": "again"}, i="d-4")
    assert (await first.receive())["s"] == "q"
    await first.close()
    await wait_for(lambda: cache.get(liveness.gone_key(address)), what="the close record")
    second = await bus_client(user=user)
    await second.send("test.note_deferred_connected", {"text": "again"}, i="d-4")
    assert (await second.receive())["s"] == "q"  # the first run's state
    await asyncio.to_thread(db_worker("default").run)  # the first job: not started, entry dropped
    assert await notes() == 0
    assert (await second.receive())["s"] == "q"  # queued again, for this connection
    assert await DBTaskResult.objects.acount() == 2
    await asyncio.to_thread(db_worker("default").run)
    frames = await answer(second, "d-4")
    assert frames[-1]["p"]["notes"] == 1


# ---------------------------------------------------------------- a repeat while the first run goes on


async def test_a_repeat_while_the_first_run_goes_on_gets_its_terminal_frame(bus_client, user):
    first = await bus_client(user=user)
    second = await bus_client(user=user)
    await first.send("test.note_when_released", {"text": "slow"}, i="w-1")
    await running(user, "test.note_when_released", "w-1")
    await second.send("test.note_when_released", {"text": "slow"}, i="w-1")
    await second.assert_nothing_received(0.3)
    testapp.NOTE_RELEASE.set()
    reply = await answer(first, "w-1")
    assert await answer(second, "w-1") == reply
    assert reply[0]["p"]["notes"] == 1
    assert await notes() == 1


async def test_a_repeat_while_a_job_runs_gets_the_states_that_follow(bus_client, user):
    """The immediate backend runs the job in the first connection's enqueue, in a thread: the repeat,
    on another connection, gets the latest state and then each new one, and the same s."""
    first = await bus_client(user=user)
    second = await bus_client(user=user)
    payload = {"text": "steps", "steps": 6, "seconds": 0.3}  # the repeat comes after step 1 of 6
    await first.send("test.note_deferred", payload, i="d-5")
    await wait_for(lambda: '"done":1' in latest_frame(user, "test.note_deferred", "d-5"), what="step 1")
    await second.send("test.note_deferred", payload, i="d-5")
    seen = await answer(first, "d-5")
    followed = await answer(second, "d-5")
    assert followed[-1] == seen[-1]
    assert followed[0]["s"] == "r"
    states = [f for f in seen if f["s"] == "r"]
    assert [f for f in followed[:-1] if f in states] == followed[:-1]  # only states the first run sent ...
    assert [states.index(f) for f in followed[:-1]] == sorted({states.index(f) for f in followed[:-1]})
    assert await notes() == 1  # ... in their order, and it ran once


async def test_the_handler_of_a_closed_connection_ends_and_its_reply_waits_for_the_repeat(bus_client, user):
    """At the close a running idempotent handler is not cancelled (a sync handler's thread cannot be
    stopped: its effect would happen with its reply lost); messages queued behind it never began."""
    first = await bus_client(user=user)
    await first.send("test.note_when_released", {"text": "kept"}, i="c-1")
    await first.send("test.note_sync", {"text": "behind"}, i="c-2")
    await running(user, "test.note_when_released", "c-1")
    await first.close()
    testapp.NOTE_RELEASE.set()
    await wait_for(lambda: getattr(entry_of(user, "test.note_when_released", "c-1"), "done", False))
    assert await notes() == 1  # the queued one was dropped
    again = await bus_client(user=user)
    kept = await ask(again, "test.note_when_released", {"text": "kept"}, "c-1")
    assert kept[0]["p"]["notes"] == 1
    assert (await ask(again, "test.note_sync", {"text": "behind"}, "c-2"))[0]["p"]["notes"] == 2
    assert await notes() == 2


async def test_a_handler_of_a_closed_connection_is_cancelled_when_its_window_ends(
    bus_client, user, settings, caplog
):
    settings.CHANNELBUS = {"IDEMPOTENCY_WINDOW": 0.5}
    first = await bus_client(user=user)
    with caplog.at_level(logging.WARNING, "channelbus"):
        await first.send("test.slow", {"seconds": 30, "tag": "long"}, i="x-1")
        await running(user, "test.slow", "x-1")
        await first.close()
        await wait_for(lambda: any("ran past IDEMPOTENCY_WINDOW" in r.getMessage() for r in caplog.records))
    await wait_for(lambda: entry_of(user, "test.slow", "x-1") is repeats.Gone.MISSING)
    again = await bus_client(user=user)
    assert await ask(again, "test.slow", {"seconds": 0, "tag": "now"}, "x-1") == [
        {"t": "test.slow", "i": "x-1", "p": {"tag": "now"}, "s": "s"}
    ]


# ---------------------------------------------------------------- whose requests


async def test_two_users_with_the_same_i_do_not_collide(bus_client, user, bob):
    alice_client = await bus_client(user=user)
    bob_client = await bus_client(user=bob)
    mine = await ask(alice_client, "test.note_sync", {"text": "alice"}, "same")
    theirs = await ask(bob_client, "test.note_sync", {"text": "bob"}, "same")
    assert mine[0]["p"]["id"] != theirs[0]["p"]["id"]
    assert await notes() == 2


def with_session():
    """The consumer behind Channels' session middleware, and a stored session of a guest."""
    session = SessionStore()
    session.create()
    headers = [(b"cookie", f"sessionid={session.session_key}".encode())]
    return SessionMiddlewareStack(BusConsumer.as_asgi()), headers


async def test_a_guest_with_a_session_is_deduplicated_across_connections(bus_client):
    application, headers = await asyncio.to_thread(with_session)
    first = await bus_client(application, user=AnonymousUser(), headers=headers)
    reply = await ask(first, "test.guest_tally", {"tag": "guest"}, "g-1")
    second = await bus_client(application, user=AnonymousUser(), headers=headers)
    assert await ask(second, "test.guest_tally", {"tag": "guest"}, "g-1") == reply
    assert testapp.RUNS == {"guest": 1}
    # Another guest (another session) has requests of its own.
    other_app, other_headers = await asyncio.to_thread(with_session)
    other = await bus_client(other_app, user=AnonymousUser(), headers=other_headers)
    assert (await ask(other, "test.guest_tally", {"tag": "guest"}, "g-1"))[0]["p"] == {"runs": 2}


async def test_a_guest_without_a_session_is_not_deduplicated(bus_client):
    """Nothing of it survives a reconnect, so nothing tells its requests apart from another guest's."""
    client = await bus_client()
    assert (await ask(client, "test.guest_tally", {"tag": "nobody"}, "g-2"))[0]["p"] == {"runs": 1}
    assert (await ask(client, "test.guest_tally", {"tag": "nobody"}, "g-2"))[0]["p"] == {"runs": 2}


# ---------------------------------------------------------------- what is kept, and when it is off


@pytest.mark.parametrize("window", [0, None])
async def test_window_off_runs_every_repeat(bus_client, user, settings, window):
    settings.CHANNELBUS = {"IDEMPOTENCY_WINDOW": window}
    client = await bus_client(user=user)
    await ask(client, "test.note_async", {"text": "a"}, "o-1")
    assert (await ask(client, "test.note_async", {"text": "a"}, "o-1"))[0]["p"]["notes"] == 2


async def test_an_error_reply_is_kept_like_any_terminal_frame(bus_client, user):
    client = await bus_client(user=user)
    refused = await ask(client, "test.note_then_refuse", {"text": "no"}, "e-1")
    assert refused == [
        {"t": "error.not_found", "i": "e-1", "p": {"msg": "Written, then refused.", "notes": 1}, "s": "f"}
    ]
    again = await bus_client(user=user)
    assert await ask(again, "test.note_then_refuse", {"text": "no"}, "e-1") == refused
    # A payload refused by the schema: the same i is the same request, whatever it carries the next time.
    invalid = await ask(client, "test.note_sync", {"text": 5}, "e-2")
    assert invalid[0]["t"] == "error.validation"
    assert await ask(again, "test.note_sync", {"text": "now valid"}, "e-2") == invalid
    assert await notes() == 1


async def test_try_again_later_errors_are_not_kept(bus_client, user):
    client = await bus_client(user=user)
    busy = await ask(client, "test.busy_once", {"tag": "busy"}, "r-1")
    assert busy[0]["t"] == "error.rate_limited"
    assert await ask(client, "test.busy_once", {"tag": "busy"}, "r-1") == [
        {"t": "test.busy_once", "i": "r-1", "p": {"runs": 2}, "s": "s"}
    ]


async def test_a_cache_that_fails_handles_requests_without_deduplication(bus_client, user, settings, caplog):
    settings.CACHES = UNREACHABLE
    client = await bus_client(user=user)
    with caplog.at_level(logging.WARNING, "channelbus"):
        await ask(client, "test.note_async", {"text": "a"}, "u-1")
        assert (await ask(client, "test.note_async", {"text": "a"}, "u-1"))[0]["p"]["notes"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings.count("channelbus: the cache failed: a request is handled without deduplication") == 2


async def test_on_redis_as_in_the_distributed_setup(bus_client, user, settings):
    settings.CACHES = redis_cache()
    first = await bus_client(user=user)
    reply = await ask(first, "test.note_sync", {"text": "redis"}, "rd-1")
    second = await bus_client(user=user)
    assert await ask(second, "test.note_sync", {"text": "redis"}, "rd-1") == reply
    assert await notes() == 1
    await asyncio.to_thread(repeats.forget, repeats.request_key(f"u{user.pk}", "test.note_sync", "rd-1"))


async def test_types_that_are_not_idempotent_run_again(bus_client, user):
    client = await bus_client(user=user)
    await ask(client, "test.note_again", {"text": "a"}, "n-1")
    assert (await ask(client, "test.note_again", {"text": "a"}, "n-1"))[0]["p"]["notes"] == 2
    # The control messages and topic.* answer anew each time.
    assert await ask(client, "s.ping", None, "p-1") == await ask(client, "s.ping", None, "p-1")
    subscribe = {"topic": "broadcast"}
    first = await ask(client, "topic.subscribe", subscribe, "sub-1")
    second = await ask(client, "topic.subscribe", subscribe, "sub-1")
    assert [f["t"] for f in first + second] == ["topic.subscribed", "topic.subscribed"]
    assert entry_of(user, "topic.subscribe", "sub-1") is repeats.Gone.MISSING
    assert entry_of(user, "s.ping", "p-1") is repeats.Gone.MISSING


def test_a_job_carries_its_entry_and_older_jobs_read_without_one():
    job = DeferredJob(type_name="test.note_deferred", trace_id="i", repeat_key="channelbus:repeat:ab")
    assert DeferredJob.from_json(job.to_json()).repeat_key == "channelbus:repeat:ab"
    older = {k: v for k, v in job.to_json().items() if k != "repeat_key"}
    assert DeferredJob.from_json(older).repeat_key is None


async def test_retries_of_one_job_are_one_request(bus_client, user):
    """test.retry_timing fails its first attempt: the repeat gets the second attempt's s, and runs nothing."""
    first = await bus_client(user=user)
    frames = await ask(first, "test.retry_timing", {"fail_times": 1}, "rt-1")
    assert [f["s"] for f in frames] == ["q", "r", "r", "s"]
    assert frames[-1]["p"]["attempts"] == [1, 2]
    second = await bus_client(user=user)
    assert await ask(second, "test.retry_timing", {"fail_times": 1}, "rt-1") == [frames[-1]]


def test_the_reapers_error_job_for_a_lost_worker_is_kept(settings):
    """A worker killed in the middle of the job: the reaper's error.job is the request's terminal frame."""
    import tests.lostapp.messages  # noqa: F401 - registers the lost.* types
    from channelbus.jobs import reaping
    from tests.jobs.test_reaping import started_and_lost

    settings.TASKS = DB_TASKS
    settings.CHANNELBUS = {"JOB_REAP_GRACE": 0}
    key = repeats.request_key("u7", "lost.final", "k1")
    assert repeats.begin(key, 60) is repeats.Begun.FIRST
    started_and_lost("lost.final", {"seconds": 30}, repeat_key=key)
    assert reaping.reap() == 1
    kept = repeats.look(key)
    assert kept.done
    assert json.loads(kept.frame)["t"] == "error.job"
    assert json.loads(kept.frame)["p"]["reason"] == "worker_lost"

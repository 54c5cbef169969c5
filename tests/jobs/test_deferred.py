"""Deferred handlers through Django's Tasks API: the immediate backend and django_tasks_db in-process, and a
real worker."""

import asyncio
import logging
import os
import subprocess
import sys
import threading

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from channelbus.testing import RequestFailed as BusRequestFailed
from channelbus.testing import capture_published
from tests.servers import ROOT, demo_server

pytestmark = pytest.mark.django_db(transaction=True)


async def test_count_sends_queued_progress_and_result(bus_client, user):
    client = await bus_client(user=user)
    frame = await client.request_frame("demo.count", {"to": 5})
    assert frame["t"] == "demo.count"
    assert frame["p"] == {"total": 5}
    assert frame["s"] == "s"
    states = [(f["s"], f.get("p")) for f in client.states]
    assert states[0] == ("q", None)
    assert states[1] == ("r", None)
    assert states[2:] == [("r", {"done": n, "total": 5, "text": f"step {n}"}) for n in range(1, 6)]
    assert all(f["i"] == frame["i"] for f in client.states)


async def test_fail_retries_then_error_job(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(BusRequestFailed) as exc:
        await client.request("demo.fail", {}, timeout=10)
    assert exc.value.type == "error.job"
    assert exc.value.payload == {"msg": "demo.fail failed.", "type_name": "demo.fail", "attempts": 3}


async def test_deferred_validation_and_permission_errors_come_from_the_consumer(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(BusRequestFailed) as exc:
        await client.request("demo.count", {"to": 500})
    assert exc.value.type == "error.validation"
    assert client.states == []  # refused before anything was queued


async def test_deferred_chat_send_writes_and_publishes_after_commit(bus_client, user):
    from channelbus.testing import capture_published

    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "chat.room:deferred"})
    with capture_published() as sent:
        reply = await client.request("chat.send", {"room": "deferred", "text": "via a job"})
    assert [(p.message.name, p.topics) for p in sent] == [("chat.message", ["chat.room:deferred"])]
    assert sent[0].message.data.text == "via a job"
    assert isinstance(reply["id"], int)
    message = await client.receive("chat.message")
    assert message["p"]["text"] == "via a job"
    assert message["c"] == "chat.room:deferred"


#: The demo with the e2e test types, its embedded worker looking for jobs every 0.05 s.
E2E = {"DEMO_EXTRA_APPS": "tests.slowapp", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("deferred"), E2E, args=("--worker-interval", "0.05")) as address:
        yield address


async def test_a_real_worker_beside_the_server(server):
    """`manage.py runbus` runs a django_tasks_db worker on the demo's SQLite queue."""
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
        seen = []
        reply = await bus.request_frame("demo.count", {"to": 5}, timeout=20, on_state=seen.append)
        assert reply["p"] == {"total": 5}
        assert reply["s"] == "s"
        assert [f["s"] for f in seen] == ["q", "r", "r", "r", "r", "r", "r"]
        assert [f["p"]["done"] for f in seen[2:]] == [1, 2, 3, 4, 5]
        assert all(f["i"] == reply["i"] for f in seen)
        with pytest.raises(RequestFailed) as exc:
            await bus.request("demo.fail", {}, timeout=30)
        assert exc.value.payload["attempts"] == 3
        assert exc.value.type == "error.job"
        # The worker is a thread of runbus: its watchdog interrupts the handler between two sleeps.
        with pytest.raises(RequestFailed) as exc:
            await bus.request("e2e.overrun", {"seconds": 5, "slices": 100}, timeout=20)
        assert exc.value.type == "error.job"
        assert exc.value.payload == timed_out("e2e.overrun", 2)


async def test_a_failing_deferred_handler_rolls_back_and_publishes_nothing(bus_client, user):
    from channelbus.testing import capture_published
    from tests.testapp.models import Note

    client = await bus_client(user=user)
    with capture_published() as sent, pytest.raises(BusRequestFailed) as exc:
        await client.request("test.write_then_refuse", {"text": "rolled back"})
    assert exc.value.type == "error.not_found"
    assert exc.value.payload == {"msg": "Changed my mind."}
    assert sent == []
    assert await Note.objects.acount() == 0
    await client.assert_nothing_received(0.2)


async def test_the_worker_knows_who_asked(bus_client, user):
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    assert await client.request("test.who_asked") == {"user": "alice", "address": address, "attempt": 1}


async def test_trigger_from_python_code(bus_client, user):
    from channels.db import database_sync_to_async

    from channelbus.jobs import trigger
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    await database_sync_to_async(trigger)(
        "demo.count", {"to": 2}, user=user, reply_to=address, trace_id="srv1"
    )
    frames = [await client.receive() for _ in range(4)]
    assert [f["s"] for f in frames] == ["r", "r", "r", "s"]
    assert all(f["i"] == "srv1" for f in frames)
    assert frames[-1]["p"] == {"total": 2}


def timed_out(type_name, attempts, timeout=0.5):
    """The payload of the error.job that ends a job whose last attempt ran over its timeout."""
    msg = f"{type_name} timed out after {timeout:g} s."
    return {"msg": msg, "type_name": type_name, "attempts": attempts, "timeout": timeout}


async def test_an_attempt_over_its_timeout_is_interrupted_rolled_back_and_retried(bus_client, user):
    """The immediate backend runs the job in the consumer's worker thread: the watchdog path."""
    from tests.testapp.models import Note

    client = await bus_client(user=user)
    with capture_published() as sent, pytest.raises(BusRequestFailed) as exc:
        await client.request("test.write_then_overrun", {"text": "too slow"}, timeout=20)
    assert exc.value.type == "error.job"
    assert exc.value.payload == timed_out("test.write_then_overrun", 2)
    assert [f["s"] for f in client.states] == ["q", "r", "r"]  # two attempts
    assert sent == []
    assert await Note.objects.acount() == 0
    await client.assert_nothing_received(0.2)


def test_a_timeout_in_the_main_thread_interrupts_a_sleep(user, caplog):
    """trigger() with the immediate backend runs the job here, in the main thread: SIGALRM cuts the
    handler's time.sleep(5) short (otherwise it would return normally and nothing would fail)."""
    from channelbus.jobs import trigger
    from tests.testapp.models import Note

    assert threading.current_thread() is threading.main_thread()
    with caplog.at_level(logging.WARNING, "channelbus"), capture_published() as sent:
        trigger("test.write_then_overrun", {"text": "main", "seconds": 5}, user=user)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "test.write_then_overrun timed out after 0.5 s (i=None, attempt 1); retrying" in m for m in messages
    )
    assert any("test.write_then_overrun timed out after 0.5 s after 2 attempts" in m for m in messages)
    assert sent == []
    assert Note.objects.count() == 0


async def test_an_async_handler_over_its_timeout_is_cancelled_and_publishes_nothing(bus_client, user):
    from tests.testapp.models import Note

    client = await bus_client(user=user)
    with capture_published() as sent, pytest.raises(BusRequestFailed) as exc:
        await client.request("test.async_write_and_publish", {"text": "late", "nap": 5}, timeout=20)
    assert exc.value.payload == timed_out("test.async_write_and_publish", 1)
    assert sent == []
    assert await Note.objects.acount() == 0


async def test_an_async_deferred_handler_publishes_after_it_returned(bus_client, user):
    client = await bus_client(user=user)
    with capture_published() as sent:
        reply = await client.request("test.async_write_and_publish", {"text": "kept"})
    assert isinstance(reply["id"], int)
    greetings = [p.message.data.text for p in sent if p.message.name == "test.greeting"]
    assert greetings == ["publish kept", "apublish kept"]
    frames = [await client.receive("test.greeting") for _ in range(2)]
    assert [f["p"]["text"] for f in frames] == ["publish kept", "apublish kept"]


async def test_an_async_deferred_handler_that_fails_publishes_nothing(bus_client, user):
    from tests.testapp.models import Note

    client = await bus_client(user=user)
    with capture_published() as sent, pytest.raises(BusRequestFailed) as exc:
        await client.request("test.async_write_and_publish", {"text": "dropped", "fail": True})
    assert exc.value.type == "error.job"
    assert exc.value.payload["attempts"] == 1
    assert sent == []
    assert await Note.objects.acount() == 0
    await client.assert_nothing_received(0.2)


async def test_frames_of_one_job_arrive_in_order_from_a_thread_and_from_its_running_loop(bus_client, user):
    """A worker thread sends through the process's sender loop; from a running loop in that thread (an
    async handler) sends cannot wait, and are queued behind the earlier ones."""
    from channelbus.protocol import encode
    from channelbus.publishing.sender import FrameSender
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name

    def job():
        sender = FrameSender(address)
        for n in range(3):
            sender.send(encode("test.greeting", {"text": f"thread {n}"}))

        async def handler():
            for n in range(3):
                sender.send(encode("test.greeting", {"text": f"loop {n}"}))

        asyncio.run(handler())
        sender.send(encode("test.greeting", {"text": "last"}))

    await asyncio.to_thread(job)
    frames = [await client.receive("test.greeting") for _ in range(7)]
    assert [f["p"]["text"] for f in frames] == [
        *(f"thread {n}" for n in range(3)),
        *(f"loop {n}" for n in range(3)),
        "last",
    ]


# The fork is the point (RQ forks a work horse per job); Python 3.12 warns about forking with threads.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_one_sender_loop_per_process_made_again_after_fork():
    from channelbus.publishing.sender import run_on_sender_loop, sender_loop

    async def where():
        return os.getpid(), id(asyncio.get_running_loop()), threading.current_thread().name

    first = run_on_sender_loop(where())
    assert first == (os.getpid(), id(sender_loop()), "channelbus-sender")
    assert run_on_sender_loop(where()) == first  # the same loop, frame after frame
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (as RQ's work horse): the parent's loop thread is not here
        try:
            child = run_on_sender_loop(where(), timeout=10)
            os.write(write, repr((child[0] == os.getpid(), child[1] != first[1], child[2])).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == "(True, True, 'channelbus-sender')"
    assert run_on_sender_loop(where()) == first


def test_a_time_limit_in_the_main_thread_keeps_an_outer_alarm():
    """RQ's work horse has its own SIGALRM timer: it survives a shorter limit, and fires if it ends first."""
    import signal
    import time

    from channelbus.jobs.timeouts import JobTimeout, time_limit

    class OuterTimeout(Exception):
        pass

    def outer(signum, frame):
        raise OuterTimeout

    previous = signal.signal(signal.SIGALRM, outer)
    try:
        signal.setitimer(signal.ITIMER_REAL, 60)
        with pytest.raises(JobTimeout), time_limit(0.2):
            time.sleep(5)
        assert signal.getsignal(signal.SIGALRM) is outer
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 60
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(OuterTimeout), time_limit(30):
            time.sleep(5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_waiting_strict_job_is_parked_woken_by_its_predecessor_and_run_once(user, settings):
    """On the database queue: a job whose turn has not come leaves one later look in the queue, not
    one every 0.2 s; the predecessor's end queues it at once; of its copies, one runs it."""
    import time
    import uuid

    from django_tasks_db.models import DBTaskResult

    from channelbus.jobs.deferred import enqueue, finish_place, run_deferred
    from channelbus.messages import Metadata, incoming
    from tests.testapp.models import Note

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    address = f"test.hub|{uuid.uuid4().hex}"
    meta = Metadata(user=user, channel_name=address, received_at=time.time(), registry=incoming)
    enqueue(incoming.get("test.strict_note"), {"text": "second"}, meta, seq=2)

    def run(rows):  # what a db_worker does with rows it took
        for row in rows:
            row.delete()
            run_deferred.call(*row.args_kwargs["args"], **row.args_kwargs["kwargs"])

    run(list(DBTaskResult.objects.ready()))  # place 1 has not finished: the job parks
    assert Note.objects.count() == 0
    assert DBTaskResult.objects.ready().count() == 0  # nothing to do before its next look ...
    look = DBTaskResult.objects.get()  # ... which is queued for later
    finish_place(address, 1)  # place 1 ends: the job is queued again, to run now
    woken = list(DBTaskResult.objects.ready())
    assert len(woken) == 1
    assert DBTaskResult.objects.count() == 2
    run(woken)
    assert list(Note.objects.values_list("text", flat=True)) == ["second"]
    run([DBTaskResult.objects.get(pk=look.pk)])  # the late look finds the turn taken
    assert Note.objects.count() == 1


_PRELOAD_PROBE = """
import sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "channelbus"],
    CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}},
)
assert "channels_redis.pubsub" not in sys.modules
django.setup()
print("channels_redis.pubsub" in sys.modules, "channelbus.jobs.deferred" in sys.modules)
"""


def test_setup_imports_the_job_code_and_the_layer_backend_so_a_forking_worker_does_not():
    """RQ forks a work horse per job: what the job needs is imported once, in the parent, at setup."""
    done = subprocess.run(
        [sys.executable, "-c", _PRELOAD_PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


#: django_tasks_db as the task backend, with the queue of test.queued_options.
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "slow"]}}


def db_worker(*queues):
    """django_tasks_db's own worker (what `manage.py db_worker --batch` runs), in this process."""
    from django_tasks_db.management.commands.db_worker import Worker

    return Worker(
        queue_names=list(queues),
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="inline",
        excluded_queue_names=[],
    )


async def test_queue_priority_and_delay_of_a_class_reach_the_job(bus_client, user, settings):
    """test.queued_options has queue "slow", priority 7 and delay 0.3 s: its django_tasks_db row says so,
    and a worker of the default queue leaves it alone."""
    from datetime import timedelta

    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from channelbus.transport import get_hub

    settings.TASKS = DB_TASKS
    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    before = timezone.now()
    await client.send("test.queued_options", i="o1")
    await client.request("test.public")  # handled after the enqueue of the message before it
    after = timezone.now()
    assert await client.receive() == {"t": "test.queued_options", "i": "o1", "s": "q"}
    row = await DBTaskResult.objects.aget()
    assert (row.task_path, row.queue_name, row.priority, row.status) == (
        "channelbus.jobs.deferred.run_deferred",
        "slow",
        7,
        "READY",
    )
    [job] = row.args_kwargs["args"]
    assert (job["v"], job["type_name"], job["payload"], job["trace_id"]) == (
        1,
        "test.queued_options",
        None,
        "o1",
    )
    assert (job["user_pk"], job["address"], job["attempt"]) == (str(user.pk), address, 1)
    delay = timedelta(seconds=0.3)
    assert before + delay <= row.run_after <= after + delay
    await asyncio.sleep(max(0.0, (row.run_after - timezone.now()).total_seconds()) + 0.05)
    assert await DBTaskResult.objects.ready().acount() == 1  # due now ...
    await asyncio.to_thread(db_worker("default").run)
    await row.arefresh_from_db()
    assert row.status == "READY"  # ... but not on the queue that worker takes
    await asyncio.to_thread(db_worker("slow").run)
    await row.arefresh_from_db()
    assert row.status == "SUCCESSFUL"
    assert row.started_at >= row.run_after
    assert [await client.receive() for _ in range(2)] == [
        {"t": "test.queued_options", "i": "o1", "s": "r"},
        {"t": "test.queued_options", "i": "o1", "p": {"ran": True}, "s": "s"},
    ]


async def test_retries_wait_their_delays_and_the_handler_sees_its_attempt(bus_client, user):
    """retry_delays (0.2, 0.4): the immediate backend sleeps them between attempts; each attempt notes its
    start and self.attempt in the connection's session, which the consumer then reads."""
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    reply = await client.request("test.retry_timing", {"fail_times": 2}, timeout=10)
    assert reply["attempt"] == 3
    assert reply["attempts"] == [1, 2, 3]
    starts = reply["starts"]
    assert starts[1] - starts[0] >= 0.2
    assert starts[2] - starts[1] >= 0.4
    assert [f["s"] for f in client.states] == ["q", "r", "r", "r"]
    session = next(iter(get_hub().connections.values())).session
    assert await session.aget("starts") == starts
    assert await session.aget("attempts") == [1, 2, 3]


async def test_a_retry_that_succeeds_answers_with_its_result(bus_client, user):
    client = await bus_client(user=user)
    reply = await client.request("test.retry_timing", {"fail_times": 1}, timeout=10)
    assert reply["attempt"] == 2
    assert reply["attempts"] == [1, 2]
    assert reply["starts"][1] - reply["starts"][0] >= 0.2
    await client.assert_nothing_received(0.1)


async def test_a_refusal_runs_once_whatever_retries_says_and_is_sent_as_is(bus_client, user):
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    with pytest.raises(BusRequestFailed) as exc:
        await client.request("test.refuse_with_retries", timeout=5)
    assert exc.value.frame == {
        "t": "error.not_found",
        "i": f"{client.id_prefix}1",
        "p": {"msg": "Not today.", "runs": 1},
        "s": "f",
    }
    assert [f["s"] for f in client.states] == ["q", "r"]  # one attempt
    session = next(iter(get_hub().connections.values())).session
    assert await session.aget("refusals") == 1
    await client.assert_nothing_received(0.2)


async def test_a_job_in_its_enqueue_holds_up_neither_the_loop_nor_other_clients(bus_client, user):
    """The immediate backend runs the job inside the enqueue: that happens off the event loop, so while
    the job is blocked, another client's requests and this client's ping are answered."""
    from tests.testapp.messages import RELEASE

    RELEASE.clear()
    busy = await bus_client(user=user)
    other = await bus_client(user=user)
    await busy.send("test.wait_for_release", i="w1")
    try:
        assert [await busy.receive() for _ in range(2)] == [
            {"t": "test.wait_for_release", "i": "w1", "s": "q"},
            {"t": "test.wait_for_release", "i": "w1", "s": "r"},  # running, and waiting for RELEASE
        ]
        assert await other.request("demo.echo", {"text": "still here"}) == {"text": "still here"}
        assert (await other.request_frame("s.ping"))["t"] == "s.pong"
        assert (await busy.request_frame("s.ping"))["t"] == "s.pong"
    finally:
        RELEASE.set()
    assert await busy.receive() == {
        "t": "test.wait_for_release",
        "i": "w1",
        "p": {"released": True},
        "s": "s",
    }


async def test_a_strict_message_sent_on_connect_runs_after_the_set_up_job_taken_later(
    bus_client, user, settings
):
    """With TRACK_CONNECTIONS, a strict message sent at once, on django_tasks_db: even when the worker takes
    its job before the connection's set-up job, the handler runs only after the set-up wrote the row."""
    from django.test import override_settings
    from django_tasks_db.models import DBTaskResult

    from channelbus.models import Connection
    from channelbus.transport import get_hub

    settings.TASKS = DB_TASKS
    with override_settings(CHANNELBUS={"TRACK_CONNECTIONS": True}):
        client = await bus_client(user=user)
        await client.send("test.strict_sees_connection", i="st")
        assert await client.receive() == {"t": "test.strict_sees_connection", "i": "st", "s": "q"}
    address = next(iter(get_hub().connections.values())).channel_name
    for _ in range(100):  # the set-up job is queued in the background
        if await DBTaskResult.objects.acount() == 2:
            break
        await asyncio.sleep(0.02)

    def worker_takes_the_strict_job_first():
        jobs = {row.task_path.rsplit(".", 1)[1]: row for row in DBTaskResult.objects.all()}
        worker = db_worker("default")
        jobs["run_deferred"].claim(worker.worker_id)
        worker.run_task(jobs["run_deferred"])  # not its turn: it parks
        row_before = Connection.objects.filter(address=address).exists()
        jobs["record_opened"].claim(worker.worker_id)
        worker.run_task(jobs["record_opened"])  # writes the row, ends place 1, wakes the strict job
        worker.run()  # what is ready now
        return row_before

    assert await asyncio.to_thread(worker_takes_the_strict_job_first) is False
    assert [await client.receive() for _ in range(2)] == [
        {"t": "test.strict_sees_connection", "i": "st", "s": "r"},
        {"t": "test.strict_sees_connection", "i": "st", "p": {"row": True}, "s": "s"},
    ]
    assert await Connection.objects.filter(address=address).aexists()
    await client.assert_nothing_received(0.1)


def _origin(text, *, address=None, thread=None, attempt=1):
    """What test.origin publishes when it ran with no user."""
    return {
        "text": text,
        "user": "",
        "anonymous": True,
        "address": address,
        "thread": thread if thread is not None else threading.get_ident(),
        "atomic": True,
        "attempt": attempt,
    }


def test_trigger_with_no_origin_runs_a_plain_type_here_as_a_job(caplog):
    from channelbus.jobs import trigger

    with capture_published() as sent:
        assert trigger("test.origin", {"text": "plain"}) is None
    assert [p.message.payload() for p in sent] == [_origin("plain")]  # in this thread, in a transaction
    with caplog.at_level(logging.ERROR, "channelbus"), capture_published() as sent:
        assert trigger("test.origin", {"text": "undone", "fail": True}) is None  # not raised here
    assert sent == []  # rolled back: its publish did not go out
    assert "channelbus: deferred test.origin failed after 1 attempts (i=None)" in caplog.text
    with capture_published() as sent:
        assert trigger("test.origin", {"fail": "maybe"}) is None  # invalid: nobody to tell
    assert sent == []
    with pytest.raises(LookupError):
        trigger("test.no_such_type")


def test_trigger_with_no_origin_queues_a_deferred_type(settings):
    from django_tasks_db.models import DBTaskResult

    from channelbus.jobs import trigger
    from channelbus.protocol import ValidationFailed
    from tests.testapp.messages import DeferredOriginReport

    settings.TASKS = DB_TASKS
    with capture_published() as sent:
        assert trigger(DeferredOriginReport, {"text": "queued"}) is None
        row = DBTaskResult.objects.get()
        [job] = row.args_kwargs["args"]
        assert (job["type_name"], job["payload"], job["trace_id"]) == (
            "test.deferred_origin",
            {"text": "queued"},
            None,
        )
        assert (job["user_pk"], job["address"], job["attempt"]) == (None, None, 1)
        assert sent == []  # on the queue, not run
        db_worker("default").run()
    assert [p.message.payload() for p in sent] == [_origin("queued")]
    with pytest.raises(ValidationFailed):
        trigger("test.deferred_origin", {"fail": "maybe"})  # a deferred type's payload is checked here
    assert DBTaskResult.objects.count() == 1


async def test_trigger_of_a_plain_type_answers_the_given_address(bus_client, user):
    from channels.db import database_sync_to_async

    from channelbus.jobs import trigger
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    await database_sync_to_async(trigger)("test.origin", {"text": "tab"}, reply_to=address, trace_id="p1")
    frames = [await client.receive("test.origin") for _ in range(2)]
    assert frames[0] == {"t": "test.origin", "i": "p1", "s": "r"}  # no q: nothing was queued
    seen = frames[1]["p"]
    assert frames[1]["s"] == "s"
    assert seen == _origin("tab", address=address, thread=seen["thread"])
    await database_sync_to_async(trigger)("test.origin", {"fail": "maybe"}, reply_to=address, trace_id="p2")
    error = await client.receive("error.validation")
    assert error["i"] == "p2"
    assert error["s"] == "f"
    assert error["p"]["type_name"] == "test.origin"


def test_outside_a_job_attempt_is_1_there_is_no_session_and_progress_goes_nowhere():
    from demoapp.messages import Count

    message = Count(to=2)
    assert message.attempt == 1
    assert message.session is None
    assert message.handle().total == 2  # its progress() calls had nobody to tell


async def test_trigger_with_a_request_runs_as_the_request_user(bus_client, user):
    from channels.db import database_sync_to_async
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from channelbus.jobs import trigger
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    request = RequestFactory().post("/rebuild/")
    request.user = user
    await database_sync_to_async(trigger)("test.who_asked", request=request, reply_to=address, trace_id="rq1")
    frames = [await client.receive("test.who_asked") for _ in range(2)]
    assert [f["s"] for f in frames] == ["r", "s"]
    assert frames[1]["p"]["user"] == "alice"
    request.user = AnonymousUser()  # an explicit user wins over the request's
    await database_sync_to_async(trigger)(
        "test.who_asked", request=request, user=user, reply_to=address, trace_id="rq2"
    )
    frames = [await client.receive("test.who_asked") for _ in range(2)]
    assert frames[1]["i"] == "rq2"
    assert frames[1]["p"]["user"] == "alice"

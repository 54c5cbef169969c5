"""Replier (channelbus/jobs/replies.py): the frames a deferred job sends to the connection that asked (its
states, progress, result and errors), with the sender captured, and once through a real connection."""

import asyncio

import orjson
import pytest
from pydantic import BaseModel

from channelbus.jobs import replies
from channelbus.jobs.replies import Replier
from channelbus.protocol import JobFailed, NotFound
from tests.testapp.messages import Greet, WhoAsked


class Sent:
    """Replaces Replier's FrameSender: records the senders made and the frames they sent, decoded."""

    def __init__(self):
        self.addresses = []
        self.frames = []

    def __call__(self, address):
        self.addresses.append(address)
        sent = self

        class Sender:
            def send(self, text):
                sent.frames.append((address, orjson.loads(text)))

        return Sender()


@pytest.fixture
def sent(monkeypatch):
    recorder = Sent()
    monkeypatch.setattr(replies, "FrameSender", recorder)
    return recorder


def frames(sent):
    assert {address for address, _ in sent.frames} <= {"local|a"}
    return [frame for _, frame in sent.frames]


def test_state_frames(sent):
    reply = Replier("local|a", "t1", "test.who_asked")
    reply.state("r")
    reply.state("r", {"note": "warming up"})
    assert sent.addresses == ["local|a"]  # one sender per job: its frames stay in order
    assert frames(sent) == [
        {"t": "test.who_asked", "i": "t1", "s": "r"},
        {"t": "test.who_asked", "i": "t1", "p": {"note": "warming up"}, "s": "r"},
    ]


def test_progress_payload_with_and_without_total_and_text(sent):
    reply = Replier("local|a", "t1", "demo.count")
    reply.progress(1, 5, "step 1")
    reply.progress(2.5, None, None)
    reply.progress(3, 10, None)
    reply.progress(0, None, "starting")
    assert [(f["t"], f["i"], f["s"]) for f in frames(sent)] == [("demo.count", "t1", "r")] * 4
    assert [f["p"] for f in frames(sent)] == [
        {"done": 1, "total": 5, "text": "step 1"},
        {"done": 2.5},
        {"done": 3, "total": 10},
        {"done": 0, "text": "starting"},
    ]


class Point(BaseModel):
    x: int


def test_result_frames(sent):
    reply = Replier("local|a", "t1", "test.who_asked")
    reply.result(WhoAsked, {"user": "alice"})
    reply.result(WhoAsked, None)
    reply.result(WhoAsked, Greet(text="hi"))
    reply.result(WhoAsked, Point(x=3))
    assert frames(sent) == [
        {"t": "test.who_asked", "i": "t1", "p": {"user": "alice"}, "s": "s"},
        {"t": "test.who_asked", "i": "t1", "s": "s"},
        {"t": "test.greeting", "i": "t1", "p": {"text": "hi"}, "s": "s"},  # a message answers as itself
        {"t": "test.who_asked", "i": "t1", "p": {"x": 3}, "s": "s"},
    ]


def test_an_error_gets_the_jobs_trace_id_or_keeps_its_own(sent):
    reply = Replier("local|a", "t1", "test.who_asked")
    error = NotFound("Gone.", thing=7)
    reply.error(error)
    assert error.trace_id == "t1"
    reply.error(JobFailed("Failed.", trace_id="other", attempts=3))
    assert frames(sent) == [
        {"t": "error.not_found", "i": "t1", "p": {"msg": "Gone.", "thing": 7}, "s": "f"},
        {"t": "error.job", "i": "other", "p": {"msg": "Failed.", "attempts": 3}, "s": "f"},
    ]


def test_without_a_trace_id_only_errors_are_sent(sent):
    reply = Replier("local|a", None, "test.who_asked")
    reply.state("r")
    reply.progress(1, 2, "half")
    reply.result(WhoAsked, {"user": "alice"})
    assert frames(sent) == []
    reply.error(NotFound("Gone."))
    assert frames(sent) == [{"t": "error.not_found", "p": {"msg": "Gone."}, "s": "f"}]


def test_without_an_address_nothing_is_sent(sent):
    reply = Replier(None, "t1", "test.who_asked")
    reply.state("r")
    reply.progress(1, 2, "half")
    reply.result(WhoAsked, {"user": "alice"})
    reply.error(NotFound("Gone."))
    assert sent.addresses == []
    assert sent.frames == []


@pytest.mark.django_db(transaction=True)
async def test_frames_reach_the_connection_in_order(bus_client, user):
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    [connection] = get_hub().connections.values()

    def job():  # as a worker thread does it
        reply = Replier(connection.channel_name, "w1", "test.who_asked")
        reply.state("r")
        for n in (1, 2):
            reply.progress(n, 2, f"step {n}")
        reply.result(WhoAsked, {"user": "alice"})

    await asyncio.to_thread(job)
    received = [await client.receive(timeout=3) for _ in range(4)]
    assert received == [
        {"t": "test.who_asked", "i": "w1", "s": "r"},
        {"t": "test.who_asked", "i": "w1", "p": {"done": 1, "total": 2, "text": "step 1"}, "s": "r"},
        {"t": "test.who_asked", "i": "w1", "p": {"done": 2, "total": 2, "text": "step 2"}, "s": "r"},
        {"t": "test.who_asked", "i": "w1", "p": {"user": "alice"}, "s": "s"},
    ]

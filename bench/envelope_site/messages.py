"""``bench.job {"n": int}``: a channels-envelope ``DeferredJob`` run by RQ that replies ``{"n": n}``.

channels-envelope sends no ``q`` by itself. Its own deferred message (``channel.subscribe``) sends
one from ``post_queue``, after the enqueue, and so does this one, so that the time to ``q`` can be
measured. The worker sends ``s`` with ``websocket_send`` (after the job's transaction commits,
envelope's default) and returns the payload, which RQ stores. There is no ``r`` frame: envelope
sends none unless the handler does.
"""

import os

from envelope import WS_INCOMING, WS_OUTGOING
from envelope.core.message import Message
from envelope.decorators import add_message
from envelope.deferred_jobs.message import DeferredJob
from envelope.utils import websocket_send
from pydantic import BaseModel

QUEUE = os.environ.get("ENVELOPE_BENCH_QUEUE", "envelope_bench")


class JobSchema(BaseModel):
    """Payload of ``bench.job``, both ways."""

    n: int


@add_message(WS_OUTGOING)
class BenchJobReply(Message):
    """The reply: state ``q`` from the consumer, ``s`` from the worker."""

    name = "bench.job"
    schema = JobSchema


@add_message(WS_INCOMING)
class BenchJob(DeferredJob):
    """A deferred job that does nothing: the round trip is all queue, worker and channel layer."""

    name = "bench.job"
    schema = JobSchema
    queue = QUEUE

    async def post_queue(self, *, job, consumer, **kwargs):
        """In the consumer, after ``enqueue()`` returned: send ``q``."""
        reply = BenchJobReply.from_message(self, state=self.QUEUED, **self.data.dict())
        await consumer.send_ws_message(reply)

    def run_job(self):
        """In the RQ work horse: send ``s`` (on commit) and return the payload."""
        websocket_send(BenchJobReply.from_message(self, state=self.SUCCESS, **self.data.dict()))
        return self.data.dict()

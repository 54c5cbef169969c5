"""``bench.job {"n": int}``: deferred, replies ``{"n": n}`` as soon as a worker runs it."""

from pydantic import BaseModel

from channelbus import Message, incoming


class JobSchema(BaseModel):
    """Payload of ``bench.job``."""

    n: int


@incoming.register
class BenchJob(Message):
    """A deferred job that does nothing: the round trip is all queue, worker and channel layer."""

    name = "bench.job"
    schema = JobSchema
    deferred = True

    def handle(self):
        """Runs in the worker."""
        return {"n": self.data.n}

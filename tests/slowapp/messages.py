"""One slow message type added to the demo server in end-to-end tests."""

import asyncio

from pydantic import BaseModel

from channelbus import Message, incoming


class Sleep(BaseModel):
    seconds: float


@incoming.register
class SleepMessage(Message):
    """Sleeps, then replies."""

    name = "e2e.sleep"
    schema = Sleep

    async def handle(self):
        await asyncio.sleep(self.data.seconds)
        return {"slept": self.data.seconds}


class Step(BaseModel):
    n: int
    ms: int


@incoming.register
class OrderedStep(Message):
    """Deferred and strictly ordered: sleeps ``ms`` in whichever worker takes it, replies its ``n``."""

    name = "e2e.ordered"
    schema = Step
    deferred = True
    ordering = "strict"

    def handle(self):
        import os
        import time

        time.sleep(self.data.ms / 1000)
        return {"n": self.data.n, "worker": os.getpid()}


class Nap(BaseModel):
    seconds: float
    slices: int = 1


@incoming.register
class Overrun(Message):
    """Deferred, 0.5 s limit, one retry: naps ``seconds`` in ``slices`` calls of ``time.sleep``.

    With one slice only a worker's main thread (SIGALRM) cuts the nap short; with many, the watchdog
    of a worker thread does too (between two slices).
    """

    name = "e2e.overrun"
    schema = Nap
    deferred = True
    timeout = 0.5
    retries = 1
    retry_delays = ()

    def handle(self):
        import time

        for _ in range(self.data.slices):
            time.sleep(self.data.seconds / self.data.slices)
        return {"overran": False}

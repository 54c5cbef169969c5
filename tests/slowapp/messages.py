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

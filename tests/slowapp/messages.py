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

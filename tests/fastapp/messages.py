"""Messages that publish bursts, mix them with direct sends, close, and report the hub's counters."""

from pydantic import BaseModel, Field

from channelbus import Message, apublish, incoming, outgoing
from channelbus.transport import get_hub


class TickSchema(BaseModel):
    """A published frame: its number, who published it, and padding to make it large."""

    k: int
    by: str = ""
    pad: str = ""


@outgoing.register
class Tick(Message):
    """``fp.tick``: what ``fp.burst`` publishes."""

    name = "fp.tick"
    schema = TickSchema


class TockSchema(BaseModel):
    """A direct frame to the sender: the number of the tick it follows."""

    k: int


@outgoing.register
class Tock(Message):
    """``fp.tock``: sent to the sender of ``fp.burst`` after each tick, the normal way."""

    name = "fp.tock"
    schema = TockSchema


class BurstSchema(BaseModel):
    """``count`` ticks of ``size`` padding characters to ``topic``; ``tocks``: a tock after each."""

    topic: str
    count: int = Field(ge=0, le=10_000)
    size: int = Field(default=0, ge=0, le=1_000_000)
    tocks: bool = False
    by: str = ""


@incoming.register
class Burst(Message):
    """``fp.burst``: publish ticks one after the other (and a tock to the sender after each)."""

    name = "fp.burst"
    schema = BurstSchema
    concurrent = True

    async def handle(self):
        """Publish, interleaved with direct sends on the sender's own socket."""
        data, connection = self.data, self.meta.connection
        pad = "x" * data.size
        for k in range(data.count):
            await apublish(Tick(k=k, by=data.by, pad=pad), to=data.topic)
            if data.tocks:
                await connection.send_message(Tock(k=k))
        return {"count": data.count}


class CloseSchema(BaseModel):
    """Publish ``before`` ticks to ``topic``, close the sender with 4000, publish ``after`` more."""

    topic: str
    before: int = Field(ge=0, le=1000)
    after: int = Field(ge=0, le=1000)


@incoming.register
class CloseMidway(Message):
    """``fp.close``: the sender's socket is closed by the server between two bursts to its topic."""

    name = "fp.close"
    schema = CloseSchema

    async def handle(self):
        """Ticks, close, ticks."""
        data, connection = self.data, self.meta.connection
        for k in range(data.before):
            await apublish(Tick(k=k, by="close"), to=data.topic)
        await connection.close(4000, "closed midway")
        for k in range(data.before, data.before + data.after):
            await apublish(Tick(k=k, by="close"), to=data.topic)


@incoming.register
class Stats(Message):
    """``fp.stats``: whether this socket takes raw frames, and the hub's delivery counters."""

    name = "fp.stats"

    async def handle(self):
        """The counters of this process's hub."""
        hub = get_hub()
        return {
            "raw": self.meta.connection.raw is not None,
            "raw_frames": hub.raw_frames,
            "asgi_frames": hub.asgi_frames,
        }

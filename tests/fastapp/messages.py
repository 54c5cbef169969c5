"""Messages that publish bursts, mix them with direct sends, close, and report the hub's counters."""

import asyncio
import os
import time

from pydantic import BaseModel, Field

from channelbus import Message, apublish, incoming, outgoing
from channelbus.transport import get_hub


class TickSchema(BaseModel):
    """A published frame: its number, who published it, and padding to make it large."""

    k: int
    by: str = ""
    pad: str = ""
    at: float = 0.0  # time.time() when it was published


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
    every: float = Field(default=0.0, ge=0, le=10)  # seconds between two ticks
    until_slow: str = ""  # stop once this connection's outbox is over its limit (or it is gone)


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
        hub = get_hub()
        for k in range(data.count):
            if data.every and k:
                await asyncio.sleep(data.every)
            if data.until_slow and _slow_or_gone(hub, data.until_slow):
                return {"count": k}
            await apublish(Tick(k=k, by=data.by, pad=pad, at=time.time()), to=data.topic)
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


class StatsSchema(BaseModel):
    """``of``: a connection id to report on (its outbox), besides the hub's counters."""

    of: str = ""


@incoming.register
class Stats(Message):
    """``fp.stats``: whether this socket takes raw frames, the hub's counters and the process's RSS."""

    name = "fp.stats"
    schema = StatsSchema

    async def handle(self):
        """The counters of this process's hub."""
        hub = get_hub()
        of = hub.connections.get(self.data.of)
        box = getattr(of, "_outbox", None)
        return {
            "id": self.meta.connection.connection_id,
            "now": asyncio.get_running_loop().time(),
            "of": None
            if of is None
            else {"slow_since": getattr(box, "slow_since", None), "closed": of.closed},
            "raw": self.meta.connection.raw is not None,
            "raw_frames": hub.raw_frames,
            "asgi_frames": hub.asgi_frames,
            "connections": len(hub.connections),
            "rss": _rss(),
        }


def _slow_or_gone(hub, connection_id: str) -> bool:
    connection = hub.connections.get(connection_id)
    box = getattr(connection, "_outbox", None)
    return connection is None or connection.closed or getattr(box, "slow_since", None) is not None


def _rss() -> int:
    """This process's resident memory in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

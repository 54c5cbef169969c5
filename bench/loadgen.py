"""The load client: closed-loop echo load and idle sockets, on asyncio + ``websockets``.

Each simulated client holds one WebSocket and sends
``{"t":"demo.echo","i":"<n>","p":{"text":"hello world"}}``, awaits the reply,
checks it and sends the next. Messages are counted, and their round-trip
latencies kept, only between two marks after the warm-up, where the server's
CPU time is read too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from websockets.asyncio.client import ClientConnection, connect

ORIGIN = "http://127.0.0.1"
TEXT = "hello world"


def open_socket(url: str) -> connect:
    """A connection as a browser on 127.0.0.1 would open it, minus compression and pings.

    permessage-deflate is off so that all servers are compared on the same, uncompressed frames.
    """
    # The page's own origin: the port too (channelbus's origin check compares scheme, host and port).
    origin = ORIGIN + ":" + url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    return connect(url, origin=origin, compression=None, ping_interval=None, open_timeout=30)


@dataclass
class EchoResult:
    """What one load run measured."""

    messages: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float
    #: Share of one core that other processes of the machine used meanwhile (set by the caller).
    others_load: float = 0.0
    #: Share of one core the hypervisor stole meanwhile (set by the caller).
    steal: float = 0.0

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0..100), in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000

    @property
    def noise(self) -> float:
        """CPU taken by other processes and the hypervisor meanwhile, as a share of one core."""
        return self.others_load + self.steal

    @property
    def server_us_per_msg(self) -> float:
        """Server CPU time per message, in microseconds."""
        return self.server_cpu / self.messages * 1e6

    @property
    def server_load(self) -> float:
        """Fraction of one core the server used."""
        return self.server_cpu / self.seconds

    @property
    def client_load(self) -> float:
        """Fraction of one core the load client used."""
        return self.client_cpu / self.seconds


class _Window:
    """The measuring window: replies count only while it is open."""

    def __init__(self) -> None:
        self.open = False
        self.messages = 0
        self.latencies: list[float] = []
        self.stop = False


async def _client(ws: ClientConnection, window: _Window, reply_state: str | None, n: int) -> None:
    perf = time.perf_counter
    send, recv, loads = ws.send, ws.recv, orjson.loads
    latencies = window.latencies
    while not window.stop:
        n += 1
        i = str(n)
        started = perf()
        await send('{"t":"demo.echo","i":"' + i + '","p":{"text":"' + TEXT + '"}}')
        reply = loads(await recv())
        elapsed = perf() - started
        if reply["i"] != i or reply["p"]["text"] != TEXT or reply.get("s") != reply_state:
            raise AssertionError(f"unexpected reply to i={i}: {reply!r}")
        if window.open:
            window.messages += 1
            latencies.append(elapsed)


async def echo_load(
    url: str,
    clients: int,
    warmup: float,
    duration: float,
    server_cpu: Callable[[], float],
    reply_state: str | None = None,
) -> EchoResult:
    """Run ``clients`` closed-loop echo clients for ``warmup`` + ``duration`` seconds."""
    sockets = await asyncio.gather(*(open_socket(url) for _ in range(clients)))
    window = _Window()
    tasks = [asyncio.ensure_future(_client(ws, window, reply_state, k << 32)) for k, ws in enumerate(sockets)]
    try:
        await asyncio.sleep(warmup)
        _raise_failed(tasks)
        cpu0, own0, t0 = server_cpu(), time.process_time(), time.perf_counter()
        window.open = True
        await asyncio.sleep(duration)
        window.open = False
        cpu1, own1, t1 = server_cpu(), time.process_time(), time.perf_counter()
        _raise_failed(tasks)
        result = EchoResult(window.messages, t1 - t0, window.latencies, cpu1 - cpu0, own1 - own0)
        window.stop = True
        await asyncio.wait(tasks, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return result


def _raise_failed(tasks: list[asyncio.Future[None]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def one_echo(ws: ClientConnection, reply_state: str | None) -> None:
    """Send one echo on ``ws`` and check its reply."""
    await ws.send('{"t":"demo.echo","i":"1","p":{"text":"' + TEXT + '"}}')
    reply = orjson.loads(await ws.recv())
    if reply["i"] != "1" or reply.get("s") != reply_state:
        raise AssertionError(f"unexpected reply: {reply!r}")


async def open_many(url: str, count: int, batch: int = 100) -> list[ClientConnection]:
    """Open ``count`` sockets, ``batch`` handshakes at a time."""
    sockets: list[ClientConnection] = []
    try:
        while len(sockets) < count:
            n = min(batch, count - len(sockets))
            sockets.extend(await asyncio.gather(*(open_socket(url) for _ in range(n))))
    except BaseException:
        await close_all(sockets)
        raise
    return sockets


async def close_all(sockets: list[ClientConnection]) -> None:
    """Close every socket, ignoring errors."""
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

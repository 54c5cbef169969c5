"""Fan-out benchmark: one publisher, M subscribers, K broadcasts sent one at a time.

Servers (all in ``bench/fanout_site/``), each case on a fresh process:

* ``bare:none``: a bare ASGI app that hands the publisher's frame to every socket's ``send``
  (no Django, no Channels): the floor of any ASGI fan-out under uvicorn;
* ``channels:<layer>``: plain Django Channels, an ``AsyncJsonWebsocketConsumer`` group broadcast
  (one channel-layer message and one ``send_json`` per subscriber);
* ``channelbus:<layer>``: ``bench.shout`` → ``apublish(Shouted(...), to="bench.all")``, encoded once;
  under uvicorn's default WebSocket implementation (and without compression) framed once too and
  the same bytes written to every socket's transport (``channelbus.transport.raw_frames``, the ``RAW_FRAMES``
  setting), otherwise the same ASGI event handed to every socket's ``send``;
* ``busasgi:<layer>`` (not run by default): the same channelbus server with
  ``CHANNELBUS["RAW_FRAMES"] = False``, so every delivery is an ASGI ``send``
  (``asgi_bus_asgisend.py``): what the raw frames save, measured in the same run;
* ``bushist:<layer>`` (not run by default): the same channelbus server with a history of the last
  1,000 frames on ``bench.all`` (``asgi_bus_history.py``): what numbering and keeping each publish
  costs (in process memory, or one more Redis round trip per publish), beside ``channelbus:<layer>``.

Layers: ``memory`` (Channels' ``InMemoryChannelLayer``), ``pubsub`` (channels_redis
``RedisPubSubChannelLayer``), ``redis`` (channels_redis ``RedisChannelLayer``); every server gets
its own Redis prefix, and its keys are deleted afterwards.

The server is uvicorn (uvloop, httptools, one worker, ``--lifespan off``) pinned with ``taskset``
to CPU 0; this process, the load client, pins itself to CPU 1. The client opens M subscriber
sockets (channelbus ones send ``topic.subscribe`` for ``bench.all`` and wait for the reply) and
one publisher socket, all with ``Origin: http://127.0.0.1:<port>`` and, unless ``--deflate``, no
extension. Then, for each broadcast: send it, wait until every subscriber has received it, note
the time from the send to the last receipt, send the next one. A few warm-up broadcasts are not
counted. The client is a minimal WebSocket client on raw asyncio protocols (uvloop) that finds
the broadcast number ``n`` in each frame with a substring search instead of parsing JSON: one
client core takes about 100,000 deliveries/s.

Reported per server, layer and M: deliveries/s (M*K / measuring time), p50/p99 of the time until
the last subscriber had the broadcast, server CPU per delivery (utime+stime of the server process
from /proc/<pid>/stat, and the kernel's share of it), Redis CPU per delivery (``INFO cpu``), the
ratios to plain Channels on the same layer and M and to the bare floor at the same M, and how busy
the server core, the client core and the rest of the machine (other processes, hypervisor steal)
were. When the client core is (nearly) full, deliveries/s is bound by the client, not the server;
server CPU per delivery still compares fairly.

Usage: ``.venv/bin/python bench/fanout.py [--subscribers 100,1000,5000] [--broadcasts K]
[--seconds S] [--min-broadcasts N] [--max-seconds S] [--warmup N] [--warmup-seconds S]
[--timeout S] [--cases bare:none,channels:memory,...] [--repeat N] [--retries N] [--ws auto]
[--deflate] [--redis-url URL] [--profile DIR] [--baseline REF]``; the same knobs are read from
``FANOUT_SUBSCRIBERS``, ``FANOUT_BROADCASTS``, ``FANOUT_SECONDS``, ``FANOUT_MIN_BROADCASTS``,
``FANOUT_MAX_SECONDS``, ``FANOUT_WARMUP``, ``FANOUT_WARMUP_SECONDS``, ``FANOUT_TIMEOUT``,
``FANOUT_CASES``, ``FANOUT_REPEAT``, ``FANOUT_RETRIES``, ``FANOUT_WS``, ``FANOUT_DEFLATE``,
``FANOUT_REDIS_URL`` and ``FANOUT_BASELINE``. ``--baseline HEAD~1`` runs the channelbus of that
commit (extracted with ``git archive``) as the case ``baseline:<layer>`` after each
``channelbus:<layer>`` case, so the two are compared in the same run.

A case sends up to K broadcasts (default 1,000), stops after S seconds of measuring (default 3)
once it has sent at least N (default 3), and sends fewer than N only when N would take more than
``--max-seconds`` (default 30; plain Channels on the in-memory layer needs about 15 s for one
broadcast to 5,000 sockets). The default run takes about three minutes. ``--repeat N`` measures
every case N times, interleaved, and keeps the round with the median server CPU per delivery;
``--retries N`` measures a case again when other processes and steal took 10 % of a core or more.
``--profile DIR`` attaches py-spy (``--gil``) to every server while it is measured, writes the
collapsed stacks to DIR and prints where the time goes; profiled rows are marked. ``--deflate``
makes every socket offer permessage-deflate as browsers do (uvicorn accepts it by default and then
compresses every delivery per socket); compressed frames are counted without being read.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import functools
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import baseline
import uvloop

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SERVER_CPU = 0
CLIENT_CPU = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ORIGIN = "http://127.0.0.1"
#: A client core busier than this share of a core is probably the limit, not the server.
CLIENT_BOUND = 0.9
#: A case during which other processes took this share of a core or more is marked (and retried).
NOISY = 0.1
SUBSCRIBE = b'{"t":"topic.subscribe","i":"1","p":{"topic":"bench.all"}}'
LAYER_LABELS = {
    "none": "no layer",
    "memory": "InMemoryChannelLayer",
    "pubsub": "RedisPubSubChannelLayer",
    "redis": "RedisChannelLayer",
}
SERVER_LABELS = {
    "bare": "bare ASGI (floor)",
    "channels": "plain Channels",
    "channelbus": "channelbus",
    "busasgi": "channelbus, RAW_FRAMES off",
    "bushist": "channelbus, history on",
    "baseline": "channelbus @ --baseline",
}
APPS = {
    "bare": "fanout_site.asgi_bare:application",
    "channels": "fanout_site.asgi_channels:application",
    "channelbus": "fanout_site.asgi_bus:application",
    "busasgi": "fanout_site.asgi_bus_asgisend:application",
    "bushist": "fanout_site.asgi_bus_history:application",
    "baseline": "fanout_site.asgi_bus:application",  # run from the tree of --baseline REF
}
#: The tree of ``--baseline REF`` (:func:`baseline.checkout`), for ``baseline:<layer>`` cases.
BASELINE_TREE: Path | None = None
DEFAULT_CASES = (
    "bare:none,channels:memory,channelbus:memory,channels:pubsub,channelbus:pubsub,channelbus:redis"
)


# ---------------------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Case:
    """A server under test on one channel layer."""

    server: str  # "bare", "channels", "channelbus" or "busasgi"
    layer: str  # "none" (bare only), "memory", "pubsub" or "redis"

    @property
    def app(self) -> str:
        return APPS[self.server]

    @property
    def bus(self) -> bool:
        """True for channelbus servers (subscribe with ``topic.subscribe``, publish ``bench.shout``)."""
        return self.server in ("channelbus", "busasgi", "bushist", "baseline")

    @property
    def label(self) -> str:
        return f"{SERVER_LABELS[self.server]} / {LAYER_LABELS[self.layer]}"


@functools.cache
def can_pin() -> bool:
    """True if the server and the load client can run on different CPUs (decided before pinning)."""
    return shutil.which("taskset") is not None and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid`` so far (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 (utime) and 15 (stime) of proc_pid_stat(5); fields[0] here is field 3.
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


_running: list[Server] = []


class Server:
    """One uvicorn server process, pinned to CPU 0; stopped by :func:`stop_all` at the latest."""

    def __init__(self, case: Case, workdir: Path, prefix: str, redis_url: str, ws: str = "auto") -> None:
        self.case = case
        self.port = free_port()
        argv = [
            sys.executable, "-m", "uvicorn", case.app, "--host", "127.0.0.1", "--port", str(self.port),
            "--loop", "uvloop", "--http", "httptools", "--workers", "1", "--lifespan", "off",
            "--ws", ws, "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        if can_pin():
            argv = ["taskset", "-c", str(SERVER_CPU), *argv]
        env = dict(os.environ)
        tree = BASELINE_TREE if case.server == "baseline" else None
        paths = baseline.pythonpath(tree) if tree is not None else [str(BENCH_DIR)]
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
        env.update(
            DJANGO_SETTINGS_MODULE="fanout_site.settings",
            FANOUT_LAYER=case.layer,
            FANOUT_REDIS_PREFIX=prefix,
            FANOUT_REDIS_URL=redis_url,
            FANOUT_DB_DIR=str(workdir),
            PYTHONUNBUFFERED="1",
        )
        self.log = Path(tempfile.mkstemp(prefix="fanout-server-", suffix=".log", dir=workdir)[1])
        with self.log.open("wb") as out:
            # taskset execs the server, so proc.pid is the server's own pid.
            cwd = tree or ROOT
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _running.append(self)

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.case.label} did not listen within {timeout} s:\n{self.log.read_text()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_times(self) -> tuple[float, float]:
        return process_cpu_times(self.proc.pid)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.case.label} exited:\n{self.log.read_text()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self in _running:
            _running.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_running):
        server.stop()


class Redis:
    """Redis' own CPU time (``INFO cpu``), and removal of the keys a run left behind."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.client.ping()

    def cpu_seconds(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])
        return len(keys)


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat.

    Busy is user + nice + system + irq + softirq time of every process; steal is time the
    hypervisor ran something else while one of our virtual CPUs wanted to run.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split(maxsplit=9)[1:9]]
    user, nice, system, irq, softirq, steal = fields[0], fields[1], fields[2], fields[5], fields[6], fields[7]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


# ---------------------------------------------------------------------------------- load client


def _client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (FIN set) carrying ``payload``."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class Tally:
    """Counts the deliveries of the current broadcast; resolves ``done`` at the M-th."""

    __slots__ = ("count", "current", "done", "expected", "last", "loop", "strays")

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.loop = loop
        self.expected = expected
        self.current = -1
        self.count = 0
        self.strays = 0
        self.last = 0.0
        self.done: asyncio.Future[None] = loop.create_future()

    def reset(self, n: int) -> None:
        self.current = n
        self.count = 0
        self.done = self.loop.create_future()

    def compressed(self) -> None:
        """One compressed text frame (``--deflate``): counted without reading it (a socket gets one
        frame per broadcast, and the broadcasts do not overlap)."""
        self.count += 1
        if self.count == self.expected:
            self.last = time.perf_counter()
            self.done.set_result(None)

    def frame(self, data: bytes, start: int, end: int) -> None:
        """One text frame ``data[start:end]``: count it if it carries the current ``n``."""
        k = data.find(b'"n":', start, end)
        if k < 0:
            self.strays += 1
            return
        comma = data.find(b",", k, end)
        try:
            n = int(data[k + 4 : comma if comma > 0 else end])
        except ValueError:
            n = -1
        if n != self.current:
            self.strays += 1
            return
        self.count += 1
        if self.count == self.expected:
            self.last = time.perf_counter()
            self.done.set_result(None)


class WsClient(asyncio.Protocol):
    """A minimal WebSocket client connection: handshake, text frames in, pings answered.

    Before :attr:`tally` is set, text frames are kept in :attr:`inbox` (the subscribe reply);
    afterwards each one goes straight to the tally.
    """

    __slots__ = ("buffer", "closed", "compressed", "inbox", "open", "request", "tally", "transport", "waiter")

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.closed: str | None = None
        self.inbox: list[bytes] = []
        #: True once a compressed frame (RSV1) came in.
        self.compressed = False
        self.tally: Tally | None = None
        self.waiter: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.closed or f"connection lost ({exc})"
        self._wake(ConnectionError(self.closed))

    def _wake(self, exc: BaseException | None = None) -> None:
        if not self.waiter.done():
            if exc is None:
                self.waiter.set_result(None)
            else:
                self.waiter.set_exception(exc)

    def send_text(self, payload: bytes) -> None:
        self.transport.write(_client_frame(payload))  # type: ignore[union-attr]

    async def next_frame(self, timeout: float) -> bytes:
        """The next text frame (before the tally is set)."""
        while not self.inbox:
            if self.closed:
                raise ConnectionError(self.closed)
            self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.waiter, timeout)
        return self.inbox.pop(0)

    def data_received(self, data: bytes) -> None:  # noqa: C901 - the load client's per-read frame parser, kept inline
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self.closed = "handshake refused: " + data[:end].decode("latin1")
                self.transport.close()  # type: ignore[union-attr]
                self._wake(ConnectionError(self.closed))
                return
            self.open = True
            self._wake()
            data = data[end + 4 :]
        size = len(data)
        pos = 0
        tally = self.tally
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            opcode = data[pos] & 0x0F
            if opcode == 1:
                if data[pos] & 0x40:  # RSV1: compressed (permessage-deflate)
                    self.compressed = True
                    if tally is not None:
                        tally.compressed()
                        pos = end
                        continue
                if tally is not None:
                    tally.frame(data, pos + head, end)
                else:
                    self.inbox.append(data[pos + head : end])
                    self._wake()
            elif opcode == 9:  # ping: pong with the same payload
                self.transport.write(_client_frame(data[pos + head : end], 10))  # type: ignore[union-attr]
            elif opcode == 8:
                self.closed = f"closed by the server: {data[pos + head : end]!r}"
                self._wake(ConnectionError(self.closed))
            pos = end
        if pos < size:
            self.buffer = data[pos:]


#: What a browser offers (``--deflate``): permessage-deflate with context takeover.
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def _handshake(port: int, path: str, deflate: bool = False) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {ORIGIN}:{port}\r\n"
        f"{DEFLATE_OFFER if deflate else ''}\r\n"
    ).encode()


async def connect(port: int, path: str = "/ws/", timeout: float = 30.0, deflate: bool = False) -> WsClient:
    """Open one WebSocket to the server and finish the handshake.

    No extension is offered unless ``deflate``: then permessage-deflate is, as browsers do.
    """
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: WsClient(_handshake(port, path, deflate), loop), "127.0.0.1", port
    )
    await asyncio.wait_for(client.waiter, timeout)
    return client


async def open_subscribers(
    case: Case, port: int, count: int, timeout: float, deflate: bool = False, batch: int = 200
) -> list:
    """``count`` subscriber sockets; channelbus ones have followed ``bench.all`` when this returns."""

    async def one() -> WsClient:
        client = await connect(port, "/ws/", timeout, deflate)
        if case.bus:
            client.send_text(SUBSCRIBE)
            reply = await client.next_frame(timeout)
            if client.compressed:  # the first message of the connection: a fresh inflater reads it
                reply = zlib.decompressobj(-15).decompress(reply + b"\x00\x00\xff\xff")
            if b'"i":"1"' not in reply or b'"s":"s"' not in reply:
                raise RuntimeError(f"topic.subscribe was refused: {reply!r}")
        return client

    clients: list[WsClient] = []
    try:
        while len(clients) < count:
            clients.extend(await asyncio.gather(*(one() for _ in range(min(batch, count - len(clients))))))
    except BaseException:
        close_all(clients)
        raise
    return clients


def close_all(clients: list[WsClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


# ------------------------------------------------------------------------------------ measuring


@dataclass
class Result:
    """One case at one M."""

    case: Case
    subscribers: int
    broadcasts: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    #: The part of ``server_cpu`` spent in the kernel (stime): mostly the socket writes.
    server_sys: float = 0.0
    client_cpu: float = 0.0
    steal: float = 0.0
    redis_cpu: float | None = None
    others_cpu: float = 0.0
    strays: int = 0
    error: str | None = None
    profiled: bool = False
    setup_seconds: float = 0.0
    #: Server CPU µs/delivery of every successful round (``--repeat``), sorted.
    rounds: list[float] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return self.broadcasts * self.subscribers

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Time until the last subscriber had it, percentile ``q`` (nearest rank), in ms."""
        ordered = sorted(self.latencies)
        rank = max(1, -(-len(ordered) * q // 100))
        return ordered[int(rank) - 1] * 1000

    @property
    def server_us(self) -> float:
        return self.server_cpu / self.deliveries * 1e6

    @property
    def redis_us(self) -> float | None:
        return None if self.redis_cpu is None else self.redis_cpu / self.deliveries * 1e6

    @property
    def server_load(self) -> float:
        return self.server_cpu / self.seconds

    @property
    def client_load(self) -> float:
        return self.client_cpu / self.seconds

    @property
    def others_load(self) -> float:
        return self.others_cpu / self.seconds

    @property
    def steal_load(self) -> float:
        return self.steal / self.seconds

    @property
    def noise(self) -> float:
        """Other processes and steal, as a share of one core."""
        return self.others_load + self.steal_load

    @property
    def client_bound(self) -> bool:
        return self.client_load >= CLIENT_BOUND


class Profiler:
    """py-spy attached to a server while it is measured (``--gil``: busy time only)."""

    def __init__(self, pid: int, out: Path) -> None:
        found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if not found:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.out = out
        argv = [found, "record", "--pid", str(pid), "--gil", "--rate", "250", "--format", "raw"]
        self.proc = subprocess.Popen(
            [*argv, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def broadcast_run(server: Server, case: Case, m: int, opts: argparse.Namespace, redis) -> Result:
    """Connect M subscribers and a publisher, then send broadcasts one at a time and time them."""
    result = Result(case, m)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    subscribers = await open_subscribers(case, server.port, m, opts.timeout, opts.deflate)
    publisher = None
    profiler = None
    try:
        publisher = await connect(server.port, "/ws/?pub=1", opts.timeout, opts.deflate)
        tally = Tally(loop, m)
        for client in subscribers:
            if client.inbox:
                raise RuntimeError(f"unexpected frame before the run: {client.inbox[0]!r}")
            client.tally = tally
        publisher.tally = Tally(loop, 1 << 62)  # counts anything it gets back as strays
        if case.bus:

            def shout(n: int, t0: float) -> bytes:
                return b'{"t":"bench.shout","p":{"n":%d,"t0":%r}}' % (n, t0)
        else:

            def shout(n: int, t0: float) -> bytes:
                return b'{"n":%d,"t0":%r}' % (n, t0)

        # Give the server a moment to finish its connection work (auth, group joins) before timing.
        await asyncio.sleep(0.2)
        result.setup_seconds = time.perf_counter() - started

        perf = time.perf_counter
        n = 0
        warm_until = perf() + opts.warmup_seconds
        while n < opts.warmup and (n == 0 or perf() < warm_until):
            await _one(publisher, tally, n, shout, opts.timeout, subscribers)
            n += 1
        if opts.profile:
            name = f"{case.server}-{case.layer}-{m}-{len(list(opts.profile.glob('*.txt')))}.txt"
            profiler = Profiler(server.pid, opts.profile / name)
            result.profiled = True
            await asyncio.sleep(0.5)  # py-spy attaches
        tally.strays = 0
        (user0, sys0), redis0 = server.cpu_times(), redis.cpu_seconds() if redis else None
        own0, (all0, steal0), t0 = time.process_time(), machine_cpu(), perf()
        deadline, cap = t0 + opts.seconds, t0 + opts.max_seconds
        latencies = result.latencies
        k = 0
        while k < opts.broadcasts and (
            k == 0 or (k < opts.min_broadcasts and perf() < cap) or perf() < deadline
        ):
            latencies.append(await _one(publisher, tally, n, shout, opts.timeout, subscribers))
            n += 1
            k += 1
        t1 = perf()
        (user1, sys1), redis1 = server.cpu_times(), redis.cpu_seconds() if redis else None
        own1, (all1, steal1) = time.process_time(), machine_cpu()
        result.broadcasts = k
        result.seconds = t1 - t0
        result.server_cpu = (user1 - user0) + (sys1 - sys0)
        result.server_sys = sys1 - sys0
        result.steal = steal1 - steal0
        result.client_cpu = own1 - own0
        if redis0 is not None and redis1 is not None:
            result.redis_cpu = redis1 - redis0
        result.others_cpu = max(
            0.0, (all1 - all0) - result.server_cpu - result.client_cpu - (result.redis_cpu or 0)
        )
        result.strays = tally.strays + publisher.tally.strays
        server.check_alive()
    finally:
        if profiler is not None:
            profiler.stop()
        close_all(subscribers)
        if publisher is not None:
            close_all([publisher])
    return result


async def _one(publisher: WsClient, tally: Tally, n: int, shout, timeout: float, subscribers) -> float:
    """Send broadcast ``n`` and wait until every subscriber has it: seconds from send to last receipt."""
    tally.reset(n)
    t0 = time.perf_counter()
    publisher.send_text(shout(n, t0))
    try:
        await asyncio.wait_for(tally.done, timeout)
    except TimeoutError:
        lost = [c.closed for c in subscribers if c.closed]
        raise RuntimeError(
            f"broadcast {n}: {tally.count} of {tally.expected} deliveries within {timeout} s"
            + (f"; {len(lost)} sockets closed, e.g. {lost[0]}" if lost else "")
        ) from None
    return tally.last - t0


async def run_case(
    case: Case, m: int, opts: argparse.Namespace, workdir: Path, redis, round_: int = 0
) -> Result:
    """One case at one M on a fresh server (the least disturbed of 1 + ``--retries`` attempts)."""
    best: Result | None = None
    for attempt in range(1 + opts.retries):
        prefix = f"{opts.prefix}:{case.server}:{case.layer}:{m}:{round_}:{attempt}:"
        server = Server(case, workdir, prefix, opts.redis_url, opts.ws)
        try:
            server.wait_listening()
            result = await broadcast_run(
                server, case, m, opts, redis if case.layer in ("pubsub", "redis") else None
            )
        except Exception as exc:  # report it in the table and go on with the next case
            result = Result(case, m, error=f"{type(exc).__name__}: {exc}")
            print(f"  {case.label}, M={m}: FAILED: {result.error}\n{server.log_tail()}", file=sys.stderr)
        finally:
            server.stop()
            if redis is not None and case.layer in ("pubsub", "redis"):
                with contextlib.suppress(Exception):
                    redis.delete_prefix(prefix)
        if result.error is None:
            print(
                f"  {case.label}, M={m:,}: {result.broadcasts} broadcasts, {result.rate:,.0f} deliveries/s, "
                f"{result.server_us:.1f} µs server CPU/delivery, p99 {result.percentile(99):.1f} ms, "
                f"client core {result.client_load:.0%}, others {result.others_load:.0%}, "
                f"steal {result.steal_load:.0%} "
                f"(setup {result.setup_seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        if best is None or best.error is not None or (result.error is None and result.noise < best.noise):
            best = result
        if best.error is None and best.noise < NOISY:
            break
    assert best is not None
    return best


# ------------------------------------------------------------------------------------ reporting


def render(results: list[Result]) -> str:
    """The result table, with ratios to plain Channels on the same layer and M and to the bare floor."""
    ok = [r for r in results if r.error is None]
    channels = {(r.case.layer, r.subscribers): r for r in ok if r.case.server == "channels"}
    floor = {r.subscribers: r for r in ok if r.case.server == "bare"}
    lines = [
        "| server | layer | M | K | deliveries/s | last socket p50 ms | p99 ms | server CPU µs/delivery "
        "| of it kernel | Redis CPU µs/delivery | deliveries/s vs Channels | CPU/delivery vs Channels "
        "| CPU/delivery vs bare floor | server core | client core | other procs / steal |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes: list[str] = []
    for r in results:
        head = f"| {SERVER_LABELS[r.case.server]} | {LAYER_LABELS[r.case.layer]} | {r.subscribers:,} "
        if r.error is not None:
            lines.append(head + f"| failed: {r.error[:120]} |" + " |" * 14)
            continue
        b = channels.get((r.case.layer, r.subscribers))
        f = floor.get(r.subscribers)
        rate_ratio = f"{r.rate / b.rate:.1f}x" if b is not None and b is not r else "—"
        cpu_ratio = f"{r.server_us / b.server_us:.3f}x" if b is not None and b is not r else "—"
        floor_ratio = f"{r.server_us / f.server_us:.2f}x" if f is not None and f is not r else "—"
        redis_us = "—" if r.redis_us is None else f"{r.redis_us:.2f}"
        cpu = f"{r.server_us:.1f}"
        if len(r.rounds) > 1:
            cpu += f" ({r.rounds[0]:.1f} to {r.rounds[-1]:.1f})"
        mark = "*" if r.client_bound else ""
        mark += "†" if r.profiled else ""
        lines.append(
            head
            + f"| {r.broadcasts} | {r.rate:,.0f}{mark} | {r.percentile(50):.1f} | {r.percentile(99):.1f} "
            f"| {cpu} | {r.server_sys / r.server_cpu:.0%} | {redis_us} | {rate_ratio} "
            f"| {cpu_ratio} | {floor_ratio} | {r.server_load:.0%} | {r.client_load:.0%} "
            f"| {r.others_load:.0%} / {r.steal_load:.0%} |"
        )
        if r.noise >= NOISY:
            notes.append(
                f"{r.case.label}, M={r.subscribers:,}: other processes and steal took {r.noise:.0%} of a core"
            )
        if r.strays:
            notes.append(f"{r.case.label}, M={r.subscribers:,}: {r.strays} unexpected frames")
    lines += [
        "",
        f"\\* the load client's core was at least {CLIENT_BOUND:.0%} busy: deliveries/s is bound by the "
        "client there (a floor for the server); server CPU per delivery still compares fairly.",
        "p50/p99: time from sending a broadcast to its receipt at the last of the M sockets "
        "(nearest rank over the K broadcasts; with K < 100, p99 is the slowest broadcast).",
        "Server CPU: utime + stime of the server process over the measured broadcasts / (M*K); "
        '"of it kernel" is the stime share (socket writes). Redis CPU: INFO cpu of the Redis server '
        "(shared with anything else using it). Other procs: CPU of the rest of the machine (Redis "
        "excluded); steal: time the hypervisor took; both as shares of one core.",
    ]
    if any(len(r.rounds) > 1 for r in results):
        lines.append(
            "With --repeat: each row is the round with the median server CPU per delivery among the "
            "undisturbed rounds (among all when none was); the range over all rounds is in brackets."
        )
    if any(r.profiled for r in results):
        lines.append("† measured with py-spy attached (sampling costs the server some CPU).")
    if notes:
        lines += ["", "Disturbed runs (numbers may be worse than the machine allows):"] + [
            f"- {n}" for n in notes
        ]
    return "\n".join(lines)


_LOCATION = re.compile(r" \((?:.*/site-packages/|.*/lib/python3\.\d+/|.*/work/main/)?([^:]*)(?::\d+)?\)$")


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Self and total shares per function from py-spy's collapsed stacks (GIL-holding samples)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = [_LOCATION.sub(r" (\1)", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return f"{raw.name}: no samples"
    lines = [f"{raw.name}: {samples} samples with the GIL held", "", "self %  function (own code)"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "total % function (with what it calls)"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in total.most_common(top * 2) if n < samples]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- main


def _options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default=env("FANOUT_SUBSCRIBERS", "100,1000,5000"), help="M list")
    parser.add_argument("--broadcasts", type=int, default=int(env("FANOUT_BROADCASTS", "1000")), help="max K")
    parser.add_argument("--seconds", type=float, default=float(env("FANOUT_SECONDS", "3")))
    parser.add_argument("--min-broadcasts", type=int, default=int(env("FANOUT_MIN_BROADCASTS", "3")))
    parser.add_argument("--max-seconds", type=float, default=float(env("FANOUT_MAX_SECONDS", "30")))
    parser.add_argument("--warmup", type=int, default=int(env("FANOUT_WARMUP", "5")), help="broadcasts")
    parser.add_argument("--warmup-seconds", type=float, default=float(env("FANOUT_WARMUP_SECONDS", "1")))
    parser.add_argument("--timeout", type=float, default=float(env("FANOUT_TIMEOUT", "60")))
    parser.add_argument("--cases", default=env("FANOUT_CASES", DEFAULT_CASES), help="server:layer list")
    parser.add_argument("--retries", type=int, default=int(env("FANOUT_RETRIES", "0")))
    parser.add_argument("--repeat", type=int, default=int(env("FANOUT_REPEAT", "1")), help="rounds per case")
    parser.add_argument("--redis-url", default=env("FANOUT_REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument(
        "--ws",
        default=env("FANOUT_WS", "auto"),
        help="uvicorn --ws: auto (websockets-sansio), websockets, wsproto",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        default=env("FANOUT_DEFLATE", "") not in ("", "0"),
        help="offer permessage-deflate like a browser (frames are then counted, not read)",
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the channelbus servers into DIR")
    parser.add_argument(
        "--baseline",
        default=env("FANOUT_BASELINE"),
        metavar="REF",
        help="run the channelbus of git commit REF too: adds baseline:<layer> after each channelbus case",
    )
    opts = parser.parse_args(argv)
    opts.subscribers = [int(m) for m in opts.subscribers.split(",") if m.strip()]
    specs, opts.cases = opts.cases, []
    for spec in (s.strip() for s in specs.split(",") if s.strip()):
        server, _, layer = spec.partition(":")
        if server not in SERVER_LABELS or layer not in LAYER_LABELS:
            parser.error(
                f"unknown case {spec!r}: use bare:none or "
                "channels|channelbus|busasgi|bushist : memory|pubsub|redis"
            )
        if (server == "bare") != (layer == "none"):
            parser.error(f"unknown case {spec!r}: the bare ASGI app runs without a layer (bare:none)")
        opts.cases.append(Case(server, layer))
        if opts.baseline and server == "channelbus":
            opts.cases.append(Case("baseline", layer))
    if opts.baseline:
        global BASELINE_TREE
        BASELINE_TREE = baseline.checkout(opts.baseline)
        SERVER_LABELS["baseline"] = f"channelbus @ {opts.baseline}"
    opts.prefix = f"fanout{os.getpid()}x{int(time.time())}"
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
    return opts


def _raise_fd_limit(sockets: int) -> None:
    """Room for the client's sockets here and the server's in the children (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = sockets * 2 + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def _header(opts: argparse.Namespace, pinned: bool) -> str:
    import channels
    import django

    where = "server on CPU 0, load client on CPU 1" if pinned else "NOT pinned (no taskset or one CPU)"
    return (
        f"channelbus fan-out benchmark: {os.cpu_count()} CPUs, {where}; Python {sys.version.split()[0]}, "
        f"Django {django.__version__}, channels {channels.__version__}; uvicorn + uvloop + httptools, "
        f"one server process per case; K = up to {opts.broadcasts} broadcasts or {opts.seconds:g} s "
        f"(at least {opts.min_broadcasts} unless that takes over {opts.max_seconds:g} s), after up to "
        f"{opts.warmup} warm-up broadcasts ({opts.warmup_seconds:g} s); {opts.repeat} round(s) per case; "
        f"uvicorn --ws {opts.ws}; {'permessage-deflate offered' if opts.deflate else 'no compression'}; "
        "one load-client "
        "process (raw asyncio protocols on uvloop)."
    )


async def _main(opts: argparse.Namespace, workdir: Path) -> list[Result]:
    # SIGTERM and Ctrl-C cancel the run (raising from a signal handler could land inside a protocol
    # callback, where uvloop would swallow it): the ``finally`` blocks close the sockets, stop the
    # server and delete its Redis keys.
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _interrupt, task, signum)
    redis = None
    if any(c.layer in ("pubsub", "redis") for c in opts.cases):
        redis = Redis(opts.redis_url)
    results = []
    for m in opts.subscribers:
        rounds: dict[Case, list[Result]] = {case: [] for case in opts.cases}
        for round_ in range(opts.repeat):  # interleaved, so that drift hits every case alike
            for case in opts.cases:
                rounds[case].append(await run_case(case, m, opts, workdir, redis, round_))
        results += [median_round(rs) for rs in rounds.values()]
    return results


def median_round(rounds: list[Result]) -> Result:
    """The round with the median server CPU per delivery (the lower one of an even count).

    Only undisturbed rounds (other processes and steal below :data:`NOISY`) are candidates,
    unless every round was disturbed.
    """
    ok = sorted((r for r in rounds if r.error is None), key=lambda r: r.server_us)
    if not ok:
        return rounds[-1]
    quiet = [r for r in ok if r.noise < NOISY] or ok
    chosen = quiet[(len(quiet) - 1) // 2]
    chosen.rounds = [r.server_us for r in ok]
    return chosen


_interrupted: list[int] = []


def _interrupt(task: asyncio.Task, signum: int) -> None:
    _interrupted.append(signum)
    task.cancel()


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Run every case at every M and print the table; every server is stopped on the way out."""
    opts = _options(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _raise_fd_limit(max(opts.subscribers) + 16)
    pinned = can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CPU})
    started = time.monotonic()
    print(_header(opts, pinned), flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="channelbus-fanout-") as workdir:
            results = uvloop.run(_main(opts, Path(workdir)))
    except asyncio.CancelledError:
        if not _interrupted:
            raise
        raise SystemExit(128 + _interrupted[0]) from None
    finally:
        stop_all()
    print("\n## Fan-out: one publisher, M subscribers, broadcasts one at a time\n")
    print(render(results), flush=True)
    if opts.profile:
        for raw in sorted(opts.profile.glob("*.txt")):
            print("\n```\n" + summarize_profile(raw) + "\n```")
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)

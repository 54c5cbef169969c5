"""Deferred-handler benchmark: the round trip of a ``deferred = True`` message through a real job queue.

Each case starts exactly one server process (``demo/manage.py runbus``) and one worker, with the
demo's settings plus the app ``bench/deferred_site`` (``DEMO_EXTRA_APPS=deferred_site``,
``PYTHONPATH`` with ``bench/``; ``RATE_LIMIT`` off, see its ``settings.py``). The message is
``bench.job {"n": int}``: deferred, its sync handler returns ``{"n": n}`` at once.

Cases (``--cases``, comma-separated):

* ``embedded``: the default: SQLite, in-memory channel layer, the django_tasks_db worker thread that
  ``runbus`` starts in the server process (at its default ``--worker-interval`` of 0.1 s);
* ``pg``: django_tasks_db on PostgreSQL (a fresh database) with one ``db_worker --no-reload
  --no-startup-delay --interval I`` process (``--intervals``, default 0.01; several values give one
  row each), the Redis channel layer, ``runbus --no-worker``;
* ``rq``: django-tasks-rq with one ``rqworker --job-class django_tasks_rq.Job --with-scheduler
  default`` process (rq's default ``Worker``: it forks a work horse per job), the Redis layer;
* ``rq-simple`` (extra): the same with ``--worker-class rq.worker.SimpleWorker`` (no fork per job);
* ``envelope-rq``: channels-envelope 1.1's RQ path, for comparison with ``rq``: the project
  ``bench/envelope_site`` (envelope's own ``WebsocketConsumer`` at ``/ws/``, ``bench.job`` as a
  ``DeferredJob`` that sends ``q`` from ``post_queue`` and ``s`` from the worker) served by uvicorn,
  with one ``rqworker <queue>`` process (rq's default forking ``Worker``), the Redis layer, SQLite.
  It runs in the throwaway virtualenv ``bench/.envelope-venv`` (channels-envelope requires
  pydantic < 2), which the first run creates from ``bench/envelope_site/requirements.txt``; the
  client speaks envelope's wire format (``{"t", "i", "p"}`` in, the same keys plus ``s`` out).

A case may carry modifiers: ``+persistent`` sets ``CONN_MAX_AGE=600`` (the demo has 0: Django opens
a new database connection per consumer database call and per worker loop), ``+wal`` opens SQLite
in WAL mode; e.g. ``embedded+wal+persistent``, ``pg+persistent``.

Per case, first the CPU the server and the worker use while idle (``--idle`` seconds: the
worker's polling), then one client (``channelbus.client.BusClient``, signed in through the demo's
``/``):

1. sequential: ``--warmup`` requests not counted, then ``--requests`` one at a time, each after a
   random pause of ``--think-min`` to ``--think-max`` seconds (so that requests do not arrive in
   step with the worker's polling); for each, the time from the send to the ``q`` frame and to the
   terminal ``s`` frame (whose ``p`` is checked);
2. throughput: ``--inflight`` requests kept in flight from the same connection for ``--seconds``
   (after ``--ramp`` seconds not counted): jobs/s, the ``s`` latency under that load, and the
   CPU time per job of the server, the worker and this client (utime+stime of the process and its
   waited-for children, from /proc/<pid>/stat) and of Redis (``INFO cpu``), and the share of a
   core the rest of the machine used meanwhile (PostgreSQL, and any other benchmark running at the
   same time: the machine's busy and steal time from /proc/stat minus the above).

A second table splits each phase with the backend's own timestamps: queue wait (enqueued →
started) and run (started → finished: the handler, the ``r`` and ``s`` frames and the backend's
bookkeeping). For PostgreSQL cases a third gives the sessions opened to its database
(``pg_stat_database.sessions``) per idle second and per job. Before each case it waits up to
``--quiet`` seconds for an idle machine.

Everything it starts is stopped in a ``finally``: processes (each in its own process group, so
rq's work horses go too), the PostgreSQL database (DROP ... WITH (FORCE)), and the Redis keys it
wrote (its own channel-layer prefix and ``rq:*`` in a Redis database that was empty when chosen).

Usage: ``.venv/bin/python bench/deferred.py [--cases embedded,pg,rq] [--intervals 0.01]
[--requests 200] [--warmup 20] [--think-min 0.05] [--think-max 0.25] [--inflight 20]
[--seconds 10] [--ramp 2] [--idle 5] [--quiet 120] [--keep-logs] [--send-cost N]``.
``--send-cost N`` only times N calls of ``channelbus.publishing.send_text`` from a sync thread with
the Redis layer (what a worker does per frame) against the same sends from one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEMO = ROOT / "demo"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from channelbus.client import BusClient, RequestFailed, fetch_cookies  # noqa: E402

REDIS_HOST = "127.0.0.1:6379"
PG_DSN = "host=127.0.0.1 user=postgres dbname=test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RQ_WORKER = ("rqworker", "--job-class", "django_tasks_rq.Job", "--with-scheduler", "default")


@dataclass
class Case:
    """One deployment: environment switches, the worker's command (None: embedded) and a label."""

    key: str
    label: str
    env: dict[str, str]
    worker: tuple[str, ...] | None
    postgres: bool = False
    redis: bool = False
    #: "channelbus" (the demo under runbus) or "envelope" (bench/envelope_site in its own virtualenv).
    kind: str = "channelbus"


@dataclass
class Result:
    """What one case measured (latencies in seconds)."""

    case: Case
    q: list[float] = field(default_factory=list)
    s: list[float] = field(default_factory=list)
    jobs: int = 0
    seconds: float = 0.0
    loaded: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    worker_cpu: float = 0.0
    client_cpu: float = 0.0
    idle_cpu: float = 0.0
    #: PostgreSQL sessions opened: per second while idle, and in the throughput window.
    pg_sessions_idle: float = 0.0
    pg_sessions_load: int = 0
    redis_cpu: float = 0.0
    others: float = 0.0
    errors: int = 0
    #: Wall-clock (time.time()) start of the sequential and the throughput phases.
    marks: dict[str, float] = field(default_factory=dict)
    #: Per phase, from the queue's own timestamps: (wait p50, wait p99, run p50, run p99) in ms.
    breakdown: dict[str, tuple[float, ...]] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """Percentile ``q`` (0..100) in milliseconds (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid: int | None) -> float:
    """utime + stime of ``pid`` and its waited-for children, in seconds (0 when gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def wait_for_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait up to ``limit`` seconds for 3 s in a row with the machine under ``threshold`` of a core busy.

    Returns the busy share (cores) of the last second looked at.
    """
    deadline = time.monotonic() + limit
    quiet = 0
    share = 0.0
    while True:
        busy0, steal0 = machine_cpu()
        time.sleep(1.0)
        busy1, steal1 = machine_cpu()
        share = (busy1 - busy0) + (steal1 - steal0)
        quiet = quiet + 1 if share < threshold else 0
        if quiet >= 3 or time.monotonic() > deadline:
            return share


def pg_sessions(database: str | None) -> int:
    """Sessions ever opened to ``database`` (``pg_stat_database.sessions``), 0 without one."""
    if database is None:
        return 0
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


def redis_cpu() -> float:
    """CPU seconds the Redis server has used (``INFO cpu``), 0 when it cannot be asked."""
    import redis

    try:
        client = redis.Redis.from_url(f"redis://{REDIS_HOST}/0", socket_timeout=2)
        try:
            info = client.info("cpu")
        finally:
            client.close()
    except Exception:
        return 0.0
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# ---------------------------------------------------------------------------------------- resources


class Resources:
    """What a run created, for the cleanup: processes, a PostgreSQL database, Redis keys."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.databases: list[str] = []
        self.redis_db: int | None = None
        self.prefixes: list[str] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path = DEMO) -> subprocess.Popen:
        out = open(log, "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc.log_file = out  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the process group this run started, SIGKILL it after 10 s."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):  # a work horse left behind in the group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.log_file.close()  # type: ignore[attr-defined]
        if proc in self.procs:
            self.procs.remove(proc)

    def create_database(self) -> str:
        import psycopg

        name = f"cbbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.remove(name)

    def redis(self) -> tuple[str, int]:
        """A Redis URL on a database that holds no key now (the highest such of 1..15)."""
        import redis

        if self.redis_db is None:
            for db in range(15, 0, -1):
                client = redis.Redis.from_url(f"redis://{REDIS_HOST}/{db}")
                try:
                    if client.dbsize() == 0:
                        self.redis_db = db
                        break
                finally:
                    client.close()
            else:
                raise RuntimeError("no empty Redis database among 1..15")
        return f"redis://{REDIS_HOST}/{self.redis_db}", self.redis_db

    def clean_redis(self) -> int:
        """Delete this run's keys (its layer prefixes and rq:*); returns how many."""
        import redis

        if self.redis_db is None:
            return 0
        client = redis.Redis.from_url(f"redis://{REDIS_HOST}/{self.redis_db}")
        deleted = 0
        try:
            for pattern in [*(f"{p}*" for p in self.prefixes), "rq:*"]:
                keys = list(client.scan_iter(match=pattern, count=1000))
                for start in range(0, len(keys), 500):
                    deleted += client.delete(*keys[start : start + 500])
        finally:
            client.close()
        return deleted

    def close(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)
        for name in list(self.databases):
            self.drop_database(name)
        self.clean_redis()


# ---------------------------------------------------------------------------------------- cases


def make_case(key: str, interval: str, res: Resources) -> Case:
    """The case ``key`` with fresh database and Redis names (``interval``: db_worker's --interval).

    ``key`` is a base (embedded, pg, rq, rq-simple) with optional ``+wal`` (SQLite in WAL mode, the
    embedded case) and ``+persistent`` (``CONN_MAX_AGE=600``) modifiers, e.g. ``pg+persistent``.
    """
    if key == ENVELOPE_CASE:
        url, _ = res.redis()
        prefix = f"envbench{uuid.uuid4().hex[:8]}"
        res.prefixes.append(prefix)
        queue = f"envbench_{uuid.uuid4().hex[:8]}"
        env = {"REDIS_URL": url, "ENVELOPE_BENCH_PREFIX": prefix, "ENVELOPE_BENCH_QUEUE": queue}
        label = "channels-envelope 1.1.0: RQ + rqworker (forks per job), Redis layer"
        return Case(key, label, env, ("rqworker", queue), redis=True, kind="envelope")
    base, *mods = key.split("+")
    unknown = set(mods) - {"wal", "persistent"}
    if unknown or base not in ("embedded", "pg", "rq", "rq-simple"):
        raise ValueError(
            f"unknown case {key!r}: embedded, pg, rq or rq-simple, then +wal, +persistent; or {ENVELOPE_CASE}"
        )
    env: dict[str, str] = {}
    notes = []
    if "wal" in mods:
        env["BENCH_SQLITE_WAL"] = "1"
        notes.append("SQLite WAL")
    if "persistent" in mods:
        env["BENCH_CONN_MAX_AGE"] = "600"
        notes.append("CONN_MAX_AGE=600")
    suffix = "".join(f", {note}" for note in notes)
    if base == "embedded":
        label = f"embedded: SQLite + runbus worker thread (interval 0.1 s), memory layer{suffix}"
        return Case(key, label, env, None)
    url, _ = res.redis()
    prefix = f"cbbench{uuid.uuid4().hex[:8]}"
    res.prefixes.append(prefix)
    env.update({"DEMO_CHANNEL_LAYER": "redis", "DEMO_REDIS_PREFIX": prefix, "REDIS_URL": url})
    if base == "pg":
        worker = ("db_worker", "--no-reload", "--no-startup-delay", "--interval", interval)
        worker += ("--worker-id", "bench")
        label = f"PostgreSQL + db_worker --interval {interval}, Redis layer{suffix}"
        return Case(f"{key}:{interval}", label, env, worker, postgres=True, redis=True)
    env["DEMO_TASKS"] = "rq"
    if base == "rq":
        return Case(key, f"RQ + rqworker (forks per job), Redis layer{suffix}", env, RQ_WORKER, redis=True)
    worker = (*RQ_WORKER[:-1], "--worker-class", "rq.worker.SimpleWorker", "default")
    return Case(
        key, f"RQ + rqworker --worker-class SimpleWorker, Redis layer{suffix}", env, worker, redis=True
    )


def demo_env(case: Case, tmp: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(BENCH_DIR), str(ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deferred_site.settings",
        "DEMO_EXTRA_APPS": "deferred_site",
        "DEMO_DB": str(tmp / "demo.sqlite3"),
        "PYTHONPATH": pythonpath,
        "PYTHONUNBUFFERED": "1",
        **case.env,
    }


# ---------------------------------------------------------------------------------------- channels-envelope


ENVELOPE_CASE = "envelope-rq"
ENVELOPE_VENV = BENCH_DIR / ".envelope-venv"
ENVELOPE_REQUIREMENTS = BENCH_DIR / "envelope_site" / "requirements.txt"


def envelope_python() -> Path:
    """The interpreter of ``bench/.envelope-venv``, created (once) from ``envelope_site/requirements.txt``.

    The virtualenv is reused while the requirements file is unchanged (its text is kept beside it).
    """
    python = ENVELOPE_VENV / "bin" / "python"
    stamp = ENVELOPE_VENV / "bench-requirements.txt"
    wanted = ENVELOPE_REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating {ENVELOPE_VENV} (channels-envelope and its server stack) ...", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ENVELOPE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(ENVELOPE_REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return python


def envelope_env(case: Case, tmp: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "envelope_site.settings",
        "ENVELOPE_BENCH_DB": str(tmp / "envelope.sqlite3"),
        "PYTHONPATH": pythonpath,
        "PYTHONUNBUFFERED": "1",
        **case.env,
    }


class EnvelopeClient:
    """One WebSocket connection speaking channels-envelope's wire format, shaped like ``BusClient``.

    A request is ``{"t": name, "i": id, "p": payload}`` (envelope limits ``i`` to 20 characters);
    replies carry the same ``i`` and a state ``s``. ``request_frame`` returns the first reply in
    state ``s`` (success) or ``f`` (failed: an error type such as ``error.job``) and calls ``on_state``
    with the others (``q``).
    """

    def __init__(self, url: str, *, cookies: dict[str, str]) -> None:
        self.url = url
        self.headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        self.websocket = None
        self._ids = iter(range(10**12))
        self._pending: dict[str, tuple[asyncio.Future, object]] = {}
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> EnvelopeClient:
        from websockets.asyncio.client import connect

        origin = "http://" + self.url.split("//", 1)[1].split("/", 1)[0]
        self.websocket = await connect(
            self.url, origin=origin, additional_headers=self.headers, compression=None
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.websocket.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader

    async def _read(self) -> None:
        try:
            async for raw in self.websocket:
                frame = json.loads(raw)
                entry = self._pending.get(str(frame.get("i")))
                if entry is None:
                    continue
                future, on_state = entry
                if frame.get("s") in ("s", "f"):
                    del self._pending[str(frame["i"])]
                    if not future.done():
                        future.set_result(frame)
                elif on_state is not None:
                    on_state(frame)
        finally:
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    async def request_frame(self, name: str, payload: dict, *, timeout: float, on_state=None) -> dict:
        i = str(next(self._ids))
        future = asyncio.get_running_loop().create_future()
        self._pending[i] = (future, on_state)
        await self.websocket.send(json.dumps({"t": name, "i": i, "p": payload}))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(i, None)


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


# ---------------------------------------------------------------------------------------- load


async def one_request(bus: BusClient, n: int) -> tuple[float, float]:
    """Send ``bench.job {"n": n}``; returns (seconds to ``q``, seconds to ``s``)."""
    seen: list[float] = []
    started = time.perf_counter()

    def on_state(frame: dict) -> None:
        if frame.get("s") == "q" and not seen:
            seen.append(time.perf_counter())

    frame = await bus.request_frame("bench.job", {"n": n}, timeout=60, on_state=on_state)
    done = time.perf_counter()
    if frame.get("p") != {"n": n} or not seen:
        raise AssertionError(f"bad reply to {n}: {frame} (q seen: {bool(seen)})")
    return seen[0] - started, done - started


async def measure(
    url: str,
    cookies: dict[str, str],
    result: Result,
    args: argparse.Namespace,
    pids: tuple,
    database: str | None,
    client: type = BusClient,
) -> None:
    async with client(url, cookies=cookies) as bus:
        counter = iter(range(10**9))
        for _ in range(args.warmup):
            await one_request(bus, next(counter))
        result.marks["sequential"] = time.time()
        rng = random.Random(1)
        for _ in range(args.requests):
            # A random pause, so that requests do not arrive in step with the worker's polling.
            await asyncio.sleep(rng.uniform(args.think_min, args.think_max))
            q, s = await one_request(bus, next(counter))
            result.q.append(q)
            result.s.append(s)

        # Throughput: args.inflight requests in flight; count those that end inside the window.
        result.marks["throughput"] = time.time()
        started = time.perf_counter()
        window = (started + args.ramp, started + args.ramp + args.seconds)
        ends: list[float] = []
        marks: dict[str, tuple] = {}

        async def sender() -> None:
            while time.perf_counter() < window[1]:
                try:
                    _, s = await one_request(bus, next(counter))
                except (AssertionError, TimeoutError, RequestFailed):
                    result.errors += 1
                    continue
                end = time.perf_counter()
                if window[0] <= end <= window[1]:
                    ends.append(end)
                    result.loaded.append(s)

        def snapshot() -> tuple:
            return (
                time.perf_counter(),
                proc_cpu(pids[0]),
                proc_cpu(pids[1]),
                *machine_cpu(),
                proc_cpu(os.getpid()),
                redis_cpu(),
                pg_sessions(database),
            )

        async def marker() -> None:
            await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
            marks["start"] = snapshot()
            await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
            marks["end"] = snapshot()

        await asyncio.gather(marker(), *(sender() for _ in range(args.inflight)))
        (t0, srv0, wrk0, busy0, steal0, cli0, red0, pg0) = marks["start"]
        (t1, srv1, wrk1, busy1, steal1, cli1, red1, pg1) = marks["end"]
        result.pg_sessions_load = pg1 - pg0
        result.jobs, result.seconds = len(ends), t1 - t0
        result.server_cpu, result.worker_cpu = srv1 - srv0, wrk1 - wrk0
        result.client_cpu, result.redis_cpu = cli1 - cli0, red1 - red0
        own = (srv1 - srv0) + (wrk1 - wrk0) + (cli1 - cli0) + (red1 - red0)
        result.others = max(0.0, (busy1 - busy0) + (steal1 - steal0) - own) / (t1 - t0)


def run_case(case: Case, args: argparse.Namespace, res: Resources) -> Result:  # noqa: C901 - one case start to end, in order
    tmp = Path(tempfile.mkdtemp(prefix=f"cbbench-{case.key.replace(':', '-')}-", dir=res.tmp))
    envelope = case.kind == "envelope"
    if envelope:  # bench/envelope_site in its own virtualenv, served by uvicorn
        python, cwd, env = str(envelope_python()), BENCH_DIR, envelope_env(case, tmp)
        django = [python, "-m", "django"]
    else:
        python, cwd, env = sys.executable, DEMO, demo_env(case, tmp)
        django = [python, "manage.py"]
    database = None
    if case.postgres:
        database = res.create_database()
        env["DEMO_POSTGRES_DB"] = database
    worker = server = None
    try:
        subprocess.run([*django, "migrate", "--noinput", "-v0"], cwd=cwd, env=env, check=True)
        if case.worker is not None:
            worker = res.start([*django, *case.worker], env, tmp / "worker.log", cwd)
        port = free_port()
        if envelope:  # uvicorn's defaults as runbus uses them: uvloop, httptools, websockets
            server_argv = [python, "-m", "uvicorn", "envelope_site.asgi:application", "--port", str(port)]
            server_argv += ["--log-level", "warning", "--lifespan", "off"]
            server_argv += ["--ws-per-message-deflate", "false"]
        else:
            server_argv = [*django, "runbus", "--port", str(port), "--log-level", "warning"]
        if case.worker is not None and not envelope:
            server_argv.append("--no-worker")
        server = res.start(server_argv, env, tmp / "server.log", cwd)
        wait_for_port(port, server, tmp / "server.log")
        if worker is not None:
            time.sleep(1.0)  # let the worker finish starting (imports, Redis/DB connections)
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited:\n{(tmp / 'worker.log').read_text()[-3000:]}")
        result = Result(case)
        pids = (server.pid, worker.pid if worker is not None else None)
        # Idle: what the server and the worker burn with nothing to do (the worker's polling).
        time.sleep(1.0)
        idle0, sessions0 = proc_cpu(pids[0]) + proc_cpu(pids[1]), pg_sessions(database)
        started = time.perf_counter()
        time.sleep(args.idle)
        took = time.perf_counter() - started
        result.idle_cpu = (proc_cpu(pids[0]) + proc_cpu(pids[1]) - idle0) / took
        result.pg_sessions_idle = (pg_sessions(database) - sessions0) / took
        cookies = fetch_cookies(f"http://127.0.0.1:{port}/")
        client = EnvelopeClient if envelope else BusClient
        asyncio.run(measure(f"ws://127.0.0.1:{port}/ws/", cookies, result, args, pids, database, client))
        for proc in (server, worker):
            if proc is not None:
                res.stop(proc)
        breakdown(env, result, django, cwd)
        return result
    except BaseException:
        for name in ("server.log", "worker.log"):
            path = tmp / name
            if path.exists():
                print(f"--- {case.key} {name} (tail)\n{path.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for proc in (server, worker):
            if proc is not None:
                res.stop(proc)
        if database is not None:
            res.drop_database(database)
        if args.keep_logs:
            print(f"  logs of {case.key}: {tmp}", file=sys.stderr)


# ---------------------------------------------------------------------------------------- breakdown


#: Printed by ``manage.py shell``: [enqueued, started, finished] (epoch seconds) of every finished job.
TIMESTAMPS = """
import json
import os
from datetime import timezone
from django.conf import settings

def epoch(value):
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()

rows = []
if os.environ.get("ENVELOPE_BENCH_QUEUE"):  # channels-envelope: its own RQ queue
    import django_rq
    from rq.job import Job
    queue = django_rq.get_queue(os.environ["ENVELOPE_BENCH_QUEUE"])
    ids = queue.finished_job_registry.get_job_ids()
    for job in Job.fetch_many(ids, connection=queue.connection):
        if job is not None:
            rows.append([epoch(job.enqueued_at), epoch(job.started_at), epoch(job.ended_at)])
elif "django_tasks_rq" in settings.TASKS["default"]["BACKEND"]:
    import django_rq
    from rq.job import Job
    queue = django_rq.get_queue("default")
    ids = queue.finished_job_registry.get_job_ids()
    for job in Job.fetch_many(ids, connection=queue.connection):
        if job is not None:
            rows.append([epoch(job.enqueued_at), epoch(job.started_at), epoch(job.ended_at)])
else:
    from django_tasks_db.models import DBTaskResult
    for row in DBTaskResult.objects.filter(status="SUCCESSFUL").values_list(
        "enqueued_at", "started_at", "finished_at"
    ):
        rows.append([epoch(value) for value in row])
print(json.dumps(rows))
"""


def breakdown(env: dict[str, str], result: Result, django: list[str], cwd: Path) -> None:
    """Queue wait (enqueued → started) and run (started → finished) per phase, as the backend saw them."""
    out = subprocess.run(
        [*django, "shell", "-c", TIMESTAMPS],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [r for r in json.loads(out.strip().splitlines()[-1]) if None not in r]
    phases = {
        "sequential": (result.marks["sequential"], result.marks["throughput"]),
        "throughput": (result.marks["throughput"], float("inf")),
    }
    for phase, (start, end) in phases.items():
        picked = [r for r in rows if start <= r[0] < end]
        if picked:
            wait = [r[1] - r[0] for r in picked]
            run = [r[2] - r[1] for r in picked]
            result.breakdown[phase] = (
                percentile(wait, 50),
                percentile(wait, 99),
                percentile(run, 50),
                percentile(run, 99),
                len(picked),
            )


# ---------------------------------------------------------------------------------------- send cost


SEND_COST = """
import asyncio, os, sys, time
import django
django.setup()
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channelbus.publishing.sender import send_text

n = int(sys.argv[1])
info = redis.Redis.from_url(os.environ["REDIS_URL"])
def connections():
    return info.info("stats")["total_connections_received"]

layer = get_channel_layer()
layer.capacity = 3 * n + 10  # nobody reads this channel
channel = async_to_sync(layer.new_channel)("channelbus.hub")
address = channel + "|nobody"
text = '{"t":"bench.job","i":"1","p":{"n":1},"s":"s"}'
send_text(address, text)
before = connections()
started = time.perf_counter()
for _ in range(n):
    send_text(address, text)
per_call = (time.perf_counter() - started) / n
opened_sync = connections() - before

async def from_one_loop():
    from channelbus.transport import get_hub
    hub = get_hub()
    await hub.send_to_address(address, text)
    before = connections()
    started = time.perf_counter()
    for _ in range(n):
        await hub.send_to_address(address, text)
    return (time.perf_counter() - started) / n, connections() - before

per_loop, opened_loop = asyncio.run(from_one_loop())
print(f"{per_call * 1e3:.3f} {per_loop * 1e3:.3f} {opened_sync} {opened_loop}")
"""


def send_cost(n: int, res: Resources) -> None:
    """Time ``send_text`` from a sync thread (a worker's path) against one long-lived event loop."""
    case = make_case("rq", "", res)
    tmp = Path(tempfile.mkdtemp(prefix="cbbench-send-", dir=res.tmp))
    env = demo_env(case, tmp)
    done = subprocess.run(
        [sys.executable, "-c", SEND_COST, str(n)], cwd=DEMO, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    out = done.stdout.split()
    print(f"{n} frames to one connection address with the Redis layer (nobody reads them):")
    print(f"  send_text() from a sync thread, as a worker calls it: {out[0]} ms per frame, ", end="")
    print(f"{out[2]} new Redis connections (Redis INFO, approximate if others connect meanwhile)")
    print(f"  Hub.send_to() awaited on one long-lived event loop:   {out[1]} ms per frame, ", end="")
    print(f"{out[3]} new Redis connections")


# ---------------------------------------------------------------------------------------- report


def table(results: list[Result], args: argparse.Namespace) -> str:
    head = (
        f"| case | q p50 ms | q p99 ms | s p50 ms | s p99 ms | jobs/s ({args.inflight} in flight) "
        "| s p50 / p99 ms under load | server CPU ms/job | worker CPU ms/job | client / Redis CPU ms/job "
        "| rest of machine | idle CPU, server + worker |"
    )
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        rate = r.jobs / r.seconds if r.seconds else 0.0
        per = 1000 / r.jobs if r.jobs else 0.0
        loaded = f"{percentile(r.loaded, 50):.1f} / {percentile(r.loaded, 99):.1f}" if r.loaded else "-"
        worker = "(in server)" if r.case.worker is None else f"{r.worker_cpu * per:.2f}"
        errors = f" ({r.errors} errors)" if r.errors else ""
        lines.append(
            f"| {r.case.label} | {percentile(r.q, 50):.2f} | {percentile(r.q, 99):.2f} "
            f"| {percentile(r.s, 50):.1f} | {percentile(r.s, 99):.1f} | {rate:.0f}{errors} | {loaded} "
            f"| {r.server_cpu * per:.2f} | {worker} | {r.client_cpu * per:.2f} / {r.redis_cpu * per:.2f} "
            f"| {r.others * 100:.0f} % of a core | {r.idle_cpu * 100:.1f} % of a core |"
        )
    return "\n".join(lines)


def sessions_table(results: list[Result]) -> str:
    lines = [
        "| case | PostgreSQL sessions opened per idle second | per job under load |",
        "|---|--:|--:|",
    ]
    for r in results:
        if r.case.postgres and r.jobs:
            lines.append(f"| {r.case.label} | {r.pg_sessions_idle:.1f} | {r.pg_sessions_load / r.jobs:.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def breakdown_table(results: list[Result]) -> str:
    lines = [
        "| case | phase | jobs | queue wait p50 / p99 ms | run p50 / p99 ms |",
        "|---|---|--:|--:|--:|",
    ]
    for r in results:
        for phase, (w50, w99, r50, r99, n) in r.breakdown.items():
            lines.append(
                f"| {r.case.label} | {phase} | {n} | {w50:.1f} / {w99:.1f} | {r50:.1f} / {r99:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", default="embedded,pg,rq")
    parser.add_argument("--intervals", default="0.01", help="db_worker --interval values for the pg case")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--think-min", type=float, default=0.05, help="pause before a sequential request")
    parser.add_argument("--think-max", type=float, default=0.25)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measurement")
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument(
        "--quiet", type=float, default=120.0, help="seconds to wait at most for an idle machine before a case"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and say where")
    parser.add_argument("--send-cost", type=int, default=0, metavar="N")
    args = parser.parse_args()

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    tmp = Path(tempfile.mkdtemp(prefix="cbbench-"))
    res = Resources(tmp)
    try:
        if args.send_cost:
            send_cost(args.send_cost, res)
            return
        results = []
        for key in args.cases.split(","):
            for interval in args.intervals.split(",") if key.startswith("pg") else [""]:
                case = make_case(key, interval, res)
                if args.quiet:
                    share = wait_for_quiet(args.quiet)
                    print(f"machine busy before {case.key}: {share:.2f} cores", file=sys.stderr)
                print(f"running {case.key} ...", file=sys.stderr, flush=True)
                before = os.getloadavg()[0]
                result = run_case(case, args, res)
                print(
                    f"  done; load average {before:.2f} before, {os.getloadavg()[0]:.2f} after",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(result)
        print(
            f"\n{args.requests} sequential requests after {args.warmup} of warm-up; throughput over "
            f"{args.seconds:g} s after {args.ramp:g} s of ramp; {os.cpu_count()} cores\n"
        )
        print(table(results, args))
        print()
        print(breakdown_table(results))
        if sessions := sessions_table(results):
            print()
            print(sessions)
    finally:
        res.close()
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

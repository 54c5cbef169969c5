"""Presence at scale (issue 13): members of one topic over 2 server processes on a real Redis, churning.

Two worker processes (this script with ``--worker``), each a hub on ``RedisChannelLayer`` (a prefix of
the run's own) with ``--members / 2`` followers of one presence topic, each a signed-in user of its own
(fake sockets that take pre-built frames, as uvicorn's do: only channelbus's work is timed, not the
kernel's), and one observer connection (signed out, so no member) that keeps the ``presence.diff``
frames it gets. Once both have joined and written their first batch, each makes ``--churn / 2``
changes per second for ``--seconds``, a leave (a member's only connection leaves the topic) and a join
(a new member) in turn, so the topic stays at ``--members``.

Printed, per process: diffs sent, batches written to Redis, CPU per diff (the process's CPU during the
churn minus the same time idle, over the diffs it sent: its batches, its diffs' fan-out to its local
followers and the other process's diffs' fan-out), the wall time of writing one batch to Redis (its one
script call), and the latency of a change: from the join or leave call to the diff that carries it
reaching the observer of each process (p50, p99, max). It includes the wait for the next batch
(``--interval``, ``PRESENCE_INTERVAL``). With ``BENCH_PROFILE=<path>`` each worker profiles its churn
(cProfile, written to ``<path>.<worker>``).

Usage: ``.venv/bin/python bench/presence.py [--members 5000] [--churn 100] [--seconds 20] [--interval 1.0]
[--redis-url redis://127.0.0.1:6379/0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPIC = "bench.room"
PLAIN = "bench.plain"
#: Member keys of worker i start at i * KEY_SPACE (the two processes never share a user).
KEY_SPACE = 10_000_000


class BenchUser:
    """A signed-in user as presence reads it (no database)."""

    is_authenticated = True
    USERNAME_FIELD = "username"

    def __init__(self, pk: int) -> None:
        self.pk = pk

    def get_full_name(self) -> str:
        return ""

    def get_username(self) -> str:
        return f"user{self.pk}"

    def get_email_field_name(self) -> str:
        return "email"


def _open_socket() -> Any:
    """What ``Hub.deliver`` reads of a uvicorn socket that takes pre-built frames: open, writable, and a
    transport that takes every frame at once (its bytes go nowhere: only channelbus's work is timed)."""
    writable = asyncio.Event()
    writable.set()
    state = object()
    transport = SimpleNamespace(write=lambda data: None, is_closing=lambda: False)
    conn = SimpleNamespace(state=state)
    return SimpleNamespace(conn=conn, open=state, writable=writable, transport=transport)


class Follower:
    """A hub Endpoint whose socket takes pre-built frames; ``user`` makes it a member (None: not one)."""

    def __init__(self, connection_id: str, user: Any) -> None:
        self.connection_id, self.user = connection_id, user
        self.topics, self.closed, self.sending = set(), False, 0
        self.raw: Any = _open_socket()
        #: (arrival wall time, frame text) of each frame offered (the observer's diffs).
        self.got: list[tuple[float, str]] = []

    def offer(self, text: str, volatile: bool = False) -> None:
        self.got.append((time.time(), text))

    def replay(self, texts: tuple[str, ...]) -> None:
        pass

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = True

    async def recheck_access(self, topic: str) -> None:
        return None


def setup_django(opts: argparse.Namespace) -> None:
    import django
    from django.conf import settings

    layer = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": opts.redis_url, "socket_timeout": None}], "prefix": opts.prefix},
    }
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "channelbus"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CHANNEL_LAYERS={"default": layer},
        CHANNELBUS={"PRESENCE_INTERVAL": opts.interval, "PRESENCE_EXPIRY": max(30.0, 3 * opts.interval)},
        USE_TZ=True,
    )
    django.setup()
    from channelbus.topics import Topic, topic_kinds

    @topic_kinds.register
    class BenchRoom(Topic):
        """``bench.room``: the topic of this benchmark, with presence."""

        kind = TOPIC
        key_type = None
        presence = True

        def allowed(self, user: Any) -> bool:
            return True

    @topic_kinds.register
    class BenchPlain(BenchRoom):
        """``bench.plain``: the same without presence (the baseline)."""

        kind = PLAIN
        presence = False


async def barrier(client: Any, name: str, parties: int) -> None:
    """Wait until ``parties`` processes reached the barrier ``name`` (a counter in Redis)."""
    await client.incr(name)
    while int(await client.get(name) or 0) < parties:  # noqa: ASYNC110 - the others are other processes
        await asyncio.sleep(0.05)


async def worker(opts: argparse.Namespace) -> dict[str, Any]:
    setup_django(opts)
    import redis.asyncio as aioredis

    from channelbus.transport.hub import Hub

    hub = Hub(asyncio.get_running_loop())
    await hub.start()
    tracker = hub.presence
    counts = {"diffs": 0, "batches": 0}
    writes: list[float] = []  # wall seconds of each batch written to Redis (its one script call)
    publish, flush, apply = tracker._publish, tracker.flush, tracker._apply

    async def counted_publish(diff: Any) -> None:
        counts["diffs"] += 1
        await publish(diff)

    async def counted_flush(retire: bool = False) -> None:
        counts["batches"] += 1
        await flush(retire)

    async def timed_apply(batch: Any, retire: bool) -> Any:
        started = time.perf_counter()
        applied = await apply(batch, retire)
        if batch:
            writes.append(time.perf_counter() - started)
        return applied

    tracker._publish = counted_publish  # type: ignore[method-assign]
    tracker._apply = timed_apply  # type: ignore[method-assign]
    tracker.flush = counted_flush  # type: ignore[method-assign]
    base = opts.index * KEY_SPACE
    members = [Follower(f"c{base + n}", BenchUser(base + n)) for n in range(opts.members // 2)]
    for follower in members:
        await hub.join(follower, TOPIC)
    observer = Follower("observer", None)
    observer.raw = None  # its frames go to offer(): kept with their arrival time
    await hub.join(observer, TOPIC)
    redis = aioredis.from_url(opts.redis_url)
    await asyncio.sleep(3 * opts.interval)  # the first batch (every member) written and its diffs sent
    await barrier(redis, f"{opts.prefix}:bench:ready", 2)
    idle_seconds = min(5.0, opts.seconds)
    cpu = time.process_time()
    await asyncio.sleep(idle_seconds)
    idle_cpu = time.process_time() - cpu
    await barrier(redis, f"{opts.prefix}:bench:go", 2)
    observer.got.clear()
    events: list[tuple[str, str, float]] = []  # (key, "j" or "l", wall time of the call)
    diffs_before, batches_before = counts["diffs"], counts["batches"]
    writes.clear()
    profile = _profiler()
    change, elapsed, churn_cpu, next_key = await churn(hub, TOPIC, members, base + len(members), opts, events)
    if profile is not None:
        profile.disable()
        profile.dump_stats(f"{os.environ['BENCH_PROFILE']}.{opts.index}")
    diffs, batches = counts["diffs"] - diffs_before, counts["batches"] - batches_before
    await asyncio.sleep(3 * opts.interval)  # the last changes' diffs
    # The same churn on a topic without presence: what the harness and the hub cost without it.
    plain = [Follower(f"p{base + n}", BenchUser(base + n)) for n in range(opts.members // 2)]
    for follower in plain:
        await hub.join(follower, PLAIN)
    await barrier(redis, f"{opts.prefix}:bench:plain", 2)
    _, plain_elapsed, plain_cpu, _ = await churn(hub, PLAIN, plain, next_key, opts, [])
    await barrier(redis, f"{opts.prefix}:bench:done", 2)
    await redis.aclose()
    result = {
        "index": opts.index,
        "seconds": elapsed,
        "changes": change,
        "diffs": diffs,
        "batches": batches,
        "writes": list(writes),
        "churn_cpu": churn_cpu,
        "plain_cpu_per_s": plain_cpu / plain_elapsed,
        "idle_cpu_per_s": idle_cpu / idle_seconds,
        "events": events,
        "got": observer.got,
    }
    await hub.stop()
    return result


async def churn(
    hub: Any, topic: str, members: list[Follower], next_key: int, opts: argparse.Namespace, events: list
) -> tuple[int, float, float, int]:
    """``--churn / 2`` changes per second of ``topic`` for ``--seconds``: a member leaves, a new one joins, in
    turn. Returns the changes made, the seconds and CPU seconds they took, and the next free key."""
    rate = opts.churn / 2
    started = time.monotonic()
    cpu = time.process_time()
    change = 0
    while (elapsed := time.monotonic() - started) < opts.seconds:
        due = started + change / rate
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        if change % 2 == 0:
            gone = members.pop(0)
            events.append((str(gone.user.pk), "l", time.time()))
            await hub.leave(gone, topic)
        else:
            fresh = Follower(f"c{next_key}", BenchUser(next_key))
            next_key += 1
            events.append((str(fresh.user.pk), "j", time.time()))
            await hub.join(fresh, topic)
            members.append(fresh)
        change += 1
    return change, elapsed, time.process_time() - cpu, next_key


def _profiler() -> Any:
    """With BENCH_PROFILE=<path>: a running cProfile of the churn, dumped to <path>.<worker index>."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    import cProfile

    profile = cProfile.Profile()
    profile.enable()
    return profile


def latencies(results: list[dict[str, Any]]) -> list[float]:
    """Seconds from each change to the first diff that carries it, at each observer."""
    import orjson

    out = []
    for observer in results:
        seen: dict[tuple[str, str], float] = {}
        for arrived, text in observer["got"]:
            p = orjson.loads(text)["p"]
            for key in p["joins"]:
                seen.setdefault((key, "j"), arrived)
            for key in p["leaves"]:
                seen.setdefault((key, "l"), arrived)
        for source in results:
            for key, kind, at in source["events"]:
                arrived = seen.get((key, kind))
                if arrived is not None:
                    out.append(arrived - at)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--churn", type=float, default=100.0, help="joins and leaves per second, in all")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0, help="PRESENCE_INTERVAL")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        Path(opts.out).write_text(json.dumps(asyncio.run(worker(opts))))
        return
    prefix = f"benchpres{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        outs = [os.path.join(tmp, f"worker{i}.json") for i in range(2)]
        args = [sys.executable, __file__, "--worker", "--prefix", prefix, "--members", str(opts.members)]
        args += ["--churn", str(opts.churn), "--seconds", str(opts.seconds), "--interval", str(opts.interval)]
        args += ["--redis-url", opts.redis_url]
        procs = [subprocess.Popen([*args, "--index", str(i), "--out", outs[i]]) for i in range(2)]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"a worker failed with {proc.returncode}")
        results = [json.loads(Path(out).read_text()) for out in outs]
    forget(opts.redis_url, prefix)
    report(opts, results)


def forget(url: str, prefix: str) -> None:
    """Delete the run's keys."""
    import redis

    client = redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def report(opts: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(
        f"Presence: {opts.members:,} members of one topic over 2 processes (RedisChannelLayer), "
        f"{opts.churn:g} joins and leaves per second for {opts.seconds:g} s, "
        f"PRESENCE_INTERVAL {opts.interval:g} s"
    )
    head = ("process", "changes", "batches", "diffs", "CPU/s idle", "CPU/s no presence", "CPU/s presence")
    print(
        f"{head[0]:<8} {head[1]:>8} {head[2]:>8} {head[3]:>6} {head[4]:>11} {head[5]:>18} {head[6]:>15}",
        end="",
    )
    print(f" {'CPU per diff':>13}")
    for result in results:
        seconds = result["seconds"]
        churn = result["churn_cpu"] / seconds
        plain = result["plain_cpu_per_s"]
        per_diff = (churn - plain) * seconds / result["diffs"] * 1e3 if result["diffs"] else float("nan")
        print(
            f"{result['index']:<8} {result['changes']:>8,} {result['batches']:>8,} {result['diffs']:>6,} "
            f"{result['idle_cpu_per_s'] * 1e3:>9.1f}ms {plain * 1e3:>16.1f}ms {churn * 1e3:>13.1f}ms "
            f"{per_diff:>11.2f}ms"
        )
    writes = [w for result in results for w in result["writes"]]
    if writes:
        print(
            f"a batch written to Redis (one script call, {len(writes)} batches of about "
            f"{opts.churn * opts.interval / 2:g} changes): p50 {percentile(writes, 0.5) * 1e3:.1f} ms, "
            f"max {max(writes) * 1e3:.1f} ms (wall)"
        )
    delays = latencies(results)
    changes = sum(len(r["events"]) for r in results)
    print(
        f"diff latency, change to both observers ({len(delays):,} of {2 * changes:,} seen): "
        f"p50 {percentile(delays, 0.5) * 1e3:.0f} ms, p99 {percentile(delays, 0.99) * 1e3:.0f} ms, "
        f"max {max(delays) * 1e3:.0f} ms, mean {statistics.fmean(delays) * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()

"""What topic numbering and history cost a publish (issue 12), without sockets and on a real Redis.

Two measurements, each printed as a table:

1. **In process** (the embedded default): one hub, M local followers of one topic whose sockets take
   pre-built frames (the ``RAW_FRAMES`` path of ``Hub.deliver``; each socket's transport is a sink that
   counts bytes, so the kernel's share is left out and only channelbus's own work is timed). K publishes
   of one encoded frame with ``Hub.send_to_topic``, for three cases in the same run, interleaved over
   ``--rounds`` rounds (the median is kept): *volatile* (not numbered: the publish path as it was before
   numbering), *numbered* (``n``, no history) and *history* (``n`` and a history of
   ``--history-size`` frames). Reported: deliveries/s and µs of CPU per publish.
2. **On Redis** (``RedisChannelLayer``, the distributed setup; needs the Redis at ``--redis-url``): K
   publishes to a topic with one follower in this process, history off (volatile) and on, counting the
   Redis commands each publish sends (every command is one round trip: redis-py does not pipeline
   them here) and the time per publish.

Usage: ``.venv/bin/python bench/history.py [--subscribers 1000] [--publishes 2000] [--rounds 5]
[--history-size 1000] [--redis-url redis://127.0.0.1:6379/0] [--no-redis]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "channelbus"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    CHANNELBUS={},
    USE_TZ=True,
)
django.setup()

import orjson  # noqa: E402
from django.test import override_settings  # noqa: E402

from channelbus.topics import Topic, topic_kinds  # noqa: E402
from channelbus.transport.hub import Hub  # noqa: E402

TOPIC = "bench.history"


@topic_kinds.register
class BenchHistory(Topic):
    """``bench.history``: the topic of this benchmark (its history size comes from the settings)."""

    kind = TOPIC
    key_type = None


class Sink:
    """A socket transport that takes every frame at once (and counts the bytes)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False


class Follower:
    """An Endpoint whose socket takes pre-built frames (what ``Hub.deliver`` writes to under uvicorn)."""

    def __init__(self, n: int) -> None:
        self.connection_id = f"f{n}"
        self.topics: set[str] = set()
        self.closed = False
        self.sending = 0
        opened = object()
        writable = asyncio.Event()
        writable.set()
        self.raw = SimpleNamespace(
            conn=SimpleNamespace(state=opened), open=opened, writable=writable, transport=Sink()
        )
        self.offered = 0

    def offer(self, text: str, volatile: bool = False) -> None:
        self.offered += 1

    def replay(self, texts: tuple[str, ...]) -> None:
        self.offered += len(texts)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = True

    async def recheck_access(self, topic: str) -> None:
        return None


FRAME = orjson.dumps({"t": "bench.shouted", "p": {"text": "x" * 64, "user": "bench"}, "c": TOPIC}).decode()


async def in_process_round(case: str, subscribers: int, publishes: int, size: int) -> float:
    """CPU seconds of ``publishes`` publishes to ``subscribers`` followers for one case."""
    with override_settings(CHANNELBUS={"TOPIC_HISTORY_SIZE": size if case == "history" else 0}):
        hub = Hub(asyncio.get_running_loop())
        followers = [Follower(n) for n in range(subscribers)]
        for follower in followers:
            await hub.join(follower, TOPIC)
        volatile = case == "volatile"
        for _ in range(20):  # warm-up
            await hub.send_to_topic(TOPIC, FRAME, None, volatile)
        started = time.process_time()
        for _ in range(publishes):
            await hub.send_to_topic(TOPIC, FRAME, None, volatile)
        spent = time.process_time() - started
        assert all(f.offered == 0 for f in followers), "a delivery left the raw-frame path"
        return spent


async def in_process(opts: argparse.Namespace) -> None:
    cases = ("volatile", "numbered", "history")
    spent: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(opts.rounds):
        for case in cases:
            spent[case].append(
                await in_process_round(case, opts.subscribers, opts.publishes, opts.history_size)
            )
    print(
        f"In process: {opts.subscribers:,} followers, {opts.publishes:,} publishes, median of {opts.rounds} "
        f"rounds (CPU time of this process; sockets are sinks)"
    )
    print(f"{'case':<44} {'deliveries/s':>14} {'µs/publish':>11} {'vs volatile':>12}")
    base = statistics.median(spent["volatile"])
    labels = {
        "volatile": "not numbered (volatile; as before issue 12)",
        "numbered": "numbered, no history",
        "history": f"numbered, history of {opts.history_size:,}",
    }
    for case in cases:
        seconds = statistics.median(spent[case])
        rate = opts.subscribers * opts.publishes / seconds
        print(
            f"{labels[case]:<44} {rate:>14,.0f} {seconds / opts.publishes * 1e6:>11.1f} "
            f"{seconds / base:>11.2f}x"
        )


async def on_redis(opts: argparse.Namespace) -> None:
    prefix = f"benchhist{uuid.uuid4().hex[:8]}"
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": opts.redis_url, "socket_timeout": None}], "prefix": prefix},
        }
    }
    rows = []
    for case in ("volatile", "history"):
        size = opts.history_size if case == "history" else 0
        with override_settings(CHANNEL_LAYERS=layers, CHANNELBUS={"TOPIC_HISTORY_SIZE": size}):
            from channels.layers import channel_layers

            channel_layers.backends.clear()
            hub = Hub(asyncio.get_running_loop())
            await hub.start()
            follower = Follower(0)
            follower.raw = None  # frames arrive through the layer; counted by offer()
            await hub.join(follower, TOPIC)
            volatile = case == "volatile"
            await hub.send_to_topic(TOPIC, FRAME, None, volatile)  # loads the scripts, opens connections
            commands: list[str] = []
            clients = [hub.layer.connection(0)]
            if not volatile:
                clients += hub.history.clients
            for client in clients:
                real = client.execute_command

                async def counting(*args, _real=real, _sent=commands, **options):
                    _sent.append(str(args[0]))
                    return await _real(*args, **options)

                client.execute_command = counting
            count = min(opts.publishes, 1000)
            started = time.perf_counter()
            for _ in range(count):
                await hub.send_to_topic(TOPIC, FRAME, None, volatile)
            elapsed = time.perf_counter() - started
            for client in clients:
                del client.execute_command
            publish_commands = [c for c in commands if c not in ("BZPOPMIN", "BLPOP", "EXPIRE")]
            names = sorted(set(publish_commands))
            rows.append((case, len(publish_commands) / count, elapsed / count * 1e3, names))
            await hub.stop()
            await hub.layer.flush()
    print()
    print(f"On Redis ({opts.redis_url}, RedisChannelLayer): publishes to a topic with one follower here")
    print(f"{'case':<30} {'round trips/publish':>20} {'ms/publish':>11}  commands")
    for case, trips, ms, names in rows:
        label = "not numbered (volatile)" if case == "volatile" else f"history of {opts.history_size:,}"
        print(f"{label:<30} {trips:>20.2f} {ms:>11.3f}  {', '.join(names)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--publishes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history-size", type=int, default=1000)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--no-redis", action="store_true")
    opts = parser.parse_args()

    async def run() -> None:
        await in_process(opts)
        if not opts.no_redis:
            await on_redis(opts)

    asyncio.run(run())


if __name__ == "__main__":
    main()

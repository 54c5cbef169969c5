"""Two per-frame hot paths of a channelbus tree, timed without sockets, to compare two commits in one run.

* ``deliver``: ``Hub.send_to_topic`` to 1,000 followers whose sockets take pre-built frames (a
  transport that discards the bytes): ns per delivery, best of 9 rounds of 300 publishes.
* ``echo``: ``BusConsumer._on_frame`` for ``demo.echo`` from an anonymous connection whose ``send``
  does nothing: µs per frame, best of 7 rounds of 20,000 frames.
* ``echo signed in``: the same from a signed-in user, each frame with an ``i`` of its own, so that from
  issue 12 on each request also goes through the store of repeated requests (``LocMemCache``).

Usage: ``.venv/bin/python bench/ab_micro.py [--baseline REF] [--rounds N]``: with ``--baseline`` the
tree of REF (``git archive``) and this one are run alternately, each in a fresh interpreter, N times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_one(tree: str) -> None:  # noqa: C901 - two timed scenarios, kept side by side
    """Time both paths with the channelbus of ``tree`` (in this interpreter) and print one line."""
    sys.path[:0] = [tree, str(Path(tree) / "demo"), str(Path(tree) / "bench")]  # that tree's demo and site
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_site.settings"
    import django

    django.setup()
    from django.contrib.auth.models import AnonymousUser

    from channelbus.server.consumer import BusConsumer
    from channelbus.transport.hub import Hub

    class Sink:
        def write(self, data: bytes) -> None:
            pass

        def is_closing(self) -> bool:
            return False

    class Follower:
        def __init__(self, n: int) -> None:
            self.connection_id, self.topics, self.closed, self.sending = f"f{n}", set(), False, 0
            opened, writable = object(), asyncio.Event()
            writable.set()
            self.raw = SimpleNamespace(
                conn=SimpleNamespace(state=opened), open=opened, writable=writable, transport=Sink()
            )

        def offer(self, text: str, volatile: bool = False) -> None:
            raise AssertionError("left the raw-frame path")

    async def deliver() -> float:
        hub = Hub(asyncio.get_running_loop())
        for follower in [Follower(n) for n in range(1000)]:
            await hub.join(follower, "demo.all")
        text = '{"t":"demo.shouted","p":{"text":"' + "x" * 40 + '","user":"bench"},"c":"demo.all"}'
        for _ in range(50):
            await hub.send_to_topic("demo.all", text)
        best = float("inf")
        for _ in range(9):
            started = time.perf_counter()
            for _ in range(300):
                await hub.send_to_topic("demo.all", text)
            best = min(best, (time.perf_counter() - started) / 300 / 1000 * 1e9)
        return best

    async def echo(user: Any) -> float:
        consumer = BusConsumer()

        async def send(event: dict) -> None:
            return None

        consumer._send = send
        consumer.user, consumer._anonymous_ok = user, True
        consumer.anonymous = not user.is_authenticated
        consumer.channel_name, consumer.scope = "local|x", {"type": "websocket"}
        consumer._max_concurrent, consumer._max_queued = 16, 100
        frames = (f'{{"t":"demo.echo","i":"{k}","p":{{"text":"hello world"}}}}' for k in range(10**9))
        for _ in range(2000):
            await consumer._on_frame(next(frames), 65536)
        best = float("inf")
        for _ in range(7):
            batch = [next(frames) for _ in range(20000)]  # built before the clock starts
            started = time.perf_counter()
            for text in batch:
                await consumer._on_frame(text, 65536)
            best = min(best, (time.perf_counter() - started) / 20000 * 1e6)
        return best

    ns = asyncio.run(deliver())
    anonymous = asyncio.run(echo(AnonymousUser()))
    signed_in = asyncio.run(echo(SimpleNamespace(pk=1, is_authenticated=True)))
    print(
        f"{tree}: deliver {ns:.0f} ns/delivery, echo _on_frame {anonymous:.2f} µs/frame anonymous, "
        f"{signed_in:.2f} µs/frame signed in",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=None, metavar="REF")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", default=None, help=argparse.SUPPRESS)  # one run, in a fresh interpreter
    opts = parser.parse_args()
    if opts.tree:
        run_one(opts.tree)
        return
    trees = [str(ROOT)]
    if opts.baseline:
        sys.path.insert(0, str(ROOT / "bench"))
        import baseline

        trees.insert(0, str(baseline.checkout(opts.baseline)))
    for _ in range(opts.rounds):
        for tree in trees:
            subprocess.run([sys.executable, __file__, "--tree", tree], check=True)


if __name__ == "__main__":
    main()

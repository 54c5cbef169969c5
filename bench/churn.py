"""Churn: many sockets that open, talk a little and drop abruptly, against one server, twice.

Is the server's memory after a churn a leak? ``--sockets`` (500) sockets each open, follow a topic, send
a few requests, and after 0.2 to 4 s drop: most without a close frame (the TCP connection aborted, some
while their reply is on its way), the rest with a normal close; then the socket opens again, until
``--seconds`` (30) are over. After all have closed and ``--settle`` (20) seconds, the server's RSS is read.
The load runs ``--rounds`` (2) times against the same server: a leak grows with every round, a pool or a
cache that levels off does not. With ``--tracemalloc`` the server records allocations and writes a
snapshot after each round; the largest growths between the first and the last are printed.

Usage: ``.venv/bin/python bench/churn.py [--sockets 500] [--seconds 30] [--rounds 2] [--settle 20]
[--tracemalloc]``. The server is the demo under ``runbus`` (``bench/fuzz_site/churn.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import fuzz
from servers import Server

SETTINGS = "fuzz_site.churn"


@dataclass
class Round:
    """What one round did, and the server's RSS after it (KB)."""

    opened: int = 0
    aborted: int = 0
    closed: int = 0
    requests: int = 0
    replies: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    rss_kb: int = 0

    def fail(self, what: str) -> None:
        """Count a failure (a refused connect, a socket closed by the server...)."""
        self.failures[what] = self.failures.get(what, 0) + 1


async def one_socket(
    url: str, origin: str, token: str, stop_at: float, rng: random.Random, tally: Round
) -> None:
    """Open, talk, drop; again until ``stop_at``."""
    from websockets.asyncio.client import connect

    n = 0
    while time.monotonic() < stop_at:
        try:
            websocket = await connect(
                url,
                origin=origin,  # type: ignore[arg-type]
                additional_headers={"Authorization": f"Bearer {token}"},
                subprotocols=["channelbus.v1"],  # type: ignore[list-item]
                compression=None,
                ping_interval=None,
                open_timeout=30,
            )
        except Exception as exc:
            tally.fail(f"connect: {type(exc).__name__}")
            await asyncio.sleep(0.5)
            continue
        tally.opened += 1
        try:
            await talk(websocket, rng, tally, f"{id(rng):x}.{n}")
        except Exception as exc:
            tally.fail(f"talk: {type(exc).__name__}")
        n += 1
        if rng.random() < 0.75:
            websocket.transport.abort()  # no close frame: as a browser tab that is killed, or a lost network
            tally.aborted += 1
        else:
            with contextlib.suppress(Exception):
                await websocket.close()
            tally.closed += 1


async def talk(websocket: object, rng: random.Random, tally: Round, prefix: str) -> None:
    """A few requests; the last one may be left without waiting for its reply."""
    ws: object = websocket
    room = f"chat.room:churn-{rng.randrange(20)}"
    frames = [f'{{"t":"topic.subscribe","i":"{prefix}.s","p":{{"topic":"{room}"}}}}']
    for k in range(rng.randrange(1, 6)):
        frames.append(
            rng.choice(
                [
                    f'{{"t":"demo.echo","i":"{prefix}.{k}","p":{{"text":"{"x" * rng.randrange(1, 500)}"}}}}',
                    f'{{"t":"s.ping","i":"{prefix}.{k}"}}',
                    f'{{"t":"demo.add","i":"{prefix}.{k}","p":{{"a":1,"b":{k}}}}}',
                    f'{{"t":"demo.shout","i":"{prefix}.{k}","p":{{"text":"churn"}}}}',
                    f'{{"t":"demo.nothing","i":"{prefix}.{k}"}}',
                ]
            )
        )
    deadline = time.monotonic() + rng.uniform(0.2, 4.0)
    for frame in frames:
        await ws.send(frame)  # type: ignore[attr-defined]
        tally.requests += 1
        if rng.random() < 0.1:
            return  # dropped while the reply is on its way
        await wait_reply(ws, frame.split('"i":"', 1)[1].split('"', 1)[0], tally)
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.wait_for(ws.recv(), left)  # type: ignore[attr-defined]  # published frames


async def wait_reply(ws: object, i: str, tally: Round) -> None:
    """Read frames until the one with ``i`` (published ones come in between)."""
    while True:
        text = await asyncio.wait_for(ws.recv(), 30)  # type: ignore[attr-defined]
        if f'"i":"{i}"' in text:
            tally.replies += 1
            return


async def churn_round(server: Server, tokens: list[str], sockets: int, seconds: float, seed: int) -> Round:
    """One round: ``sockets`` sockets churning for ``seconds``."""
    tally = Round()
    url, origin = server.url, f"http://127.0.0.1:{server.port}"
    stop_at = time.monotonic() + seconds
    rngs = [random.Random(f"{seed}:{n}") for n in range(sockets)]
    await asyncio.gather(
        *(one_socket(url, origin, tokens[n % len(tokens)], stop_at, rngs[n], tally) for n in range(sockets))
    )
    return tally


def print_growth(workdir: Path, first: int, last: int, top: int = 15) -> None:
    """The largest allocation growths between two of the server's tracemalloc snapshots."""
    old = tracemalloc.Snapshot.load(str(workdir / f"snapshot-{first}.pickle"))
    new = tracemalloc.Snapshot.load(str(workdir / f"snapshot-{last}.pickle"))
    total = sum(stat.size for stat in new.statistics("filename")) / 1e6
    print(f"tracemalloc: growth from snapshot {first} to {last} (traced in all: {total:.1f} MB)")
    for stat in new.compare_to(old, "traceback")[:top]:
        where = stat.traceback.format()
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where[-1].strip()}")
        for line in where[-8:-1]:
            print(f"      {line.strip()}")


async def main_async(args: argparse.Namespace) -> None:
    """Start the server, run the rounds, print the RSS after each."""
    with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
        workdir = Path(tmp)
        catalog = fuzz.Catalog.read(workdir, 20, SETTINGS)
        if args.tracemalloc:
            os.environ["CHURN_TRACEMALLOC"] = "10"
        with Server.start(fuzz.fuzz_server_kind(SETTINGS), workdir) as server:
            warm = await churn_round(server, catalog.tokens, 20, 3, args.seed)
            await asyncio.sleep(args.settle)
            baseline = server.rss_kb()
            print(f"server RSS after a warm-up ({warm.opened} sockets): {baseline / 1024:.1f} MB")
            if args.tracemalloc:
                os.kill(server.proc.pid, signal.SIGUSR1)
            for n in range(1, args.rounds + 1):
                started = time.monotonic()
                tally = await churn_round(server, catalog.tokens, args.sockets, args.seconds, args.seed + n)
                took = time.monotonic() - started
                await asyncio.sleep(args.settle)
                tally.rss_kb = server.rss_kb()
                server.check_alive()
                print(
                    f"round {n}: {tally.opened:,} sockets opened in {took:.0f} s ({tally.aborted:,} aborted, "
                    f"{tally.closed:,} closed), {tally.requests:,} requests, {tally.replies:,} replies, "
                    f"failures {tally.failures or 'none'}; RSS {args.settle:g} s after: "
                    f"{tally.rss_kb / 1024:.1f} MB ({(tally.rss_kb - baseline) / 1024:+.1f} MB)"
                )
                if args.tracemalloc:
                    os.kill(server.proc.pid, signal.SIGUSR1)
                    await asyncio.sleep(5)
            if args.tracemalloc:
                print_growth(workdir, 2, args.rounds + 1)
            log = server.log.read_text(errors="replace")
            print(f"server log: {len(log.encode()):,} bytes, tracebacks: {log.count('Traceback')}")


def main() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

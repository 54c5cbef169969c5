"""``make bench``: decoder micro-benchmark, echo throughput and latency, memory per idle socket.

Starts each server as its own subprocess (uvicorn with uvloop and httptools,
one worker, ``--lifespan off``), pinned with ``taskset`` to CPU 0, while this
process, the load client, pins itself to CPU 1:

* ``bare websockets``: the ``websockets`` library's own echo server (a ceiling);
* ``bare ASGI (uvicorn)``: a bare ASGI echo app (the ceiling under uvicorn);
* ``plain Channels``: an ``AsyncJsonWebsocketConsumer`` echo behind Channels' routing and middleware;
* ``channelbus``: ``demo.echo`` through ``bus_application``.

Usage: ``.venv/bin/python bench/run.py [--duration S] [--warmup S] [--clients 1,50] [--sockets N]
[--repeat N] [--retries N] [--only decode|echo|idle] [--baseline REF]``; the same knobs are read from
``BENCH_DURATION``, ``BENCH_WARMUP``, ``BENCH_CLIENTS``, ``BENCH_SOCKETS``, ``BENCH_REPEAT``,
``BENCH_RETRIES``, ``BENCH_SETTLE`` and ``BENCH_BASELINE``. ``--baseline HEAD~1`` also runs the
channelbus of that commit (extracted with ``git archive``) as one more server, to compare in the
same run. On a shared machine, an echo run during which other processes or the hypervisor took
10 % of a core or more (the ``other procs %`` and ``steal %`` columns) is measured again, up to
``--retries`` times (default 2), and the least disturbed round is kept; ``--repeat 3`` measures
every case three times.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import baseline
import decode
import uvloop
from idle import IdleResult, idle_memory
from loadgen import EchoResult, echo_load
from servers import (
    BARE_ASGI,
    CHANNELBUS,
    CHANNELS,
    CLIENT_CPU,
    WEBSOCKETS,
    NoiseMeter,
    Server,
    ServerKind,
    can_pin,
    running_pids,
    stop_all,
)

ECHO_SERVERS = [WEBSOCKETS, BARE_ASGI, CHANNELS, CHANNELBUS]
IDLE_SERVERS = [BARE_ASGI, CHANNELS, CHANNELBUS]
#: A client core busier than this is probably the limit, not the server.
CLIENT_BOUND = 0.9
#: A run in which other processes and steal took this share of a core or more is measured again.
NOISY = 0.1


def _options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", "5")))
    parser.add_argument("--warmup", type=float, default=float(env("BENCH_WARMUP", "1")))
    parser.add_argument("--clients", default=env("BENCH_CLIENTS", "1,50"), help="comma-separated")
    parser.add_argument("--sockets", type=int, default=int(env("BENCH_SOCKETS", "1000")))
    parser.add_argument("--repeat", type=int, default=int(env("BENCH_REPEAT", "1")))
    parser.add_argument("--retries", type=int, default=int(env("BENCH_RETRIES", "2")))
    parser.add_argument("--settle", type=float, default=float(env("BENCH_SETTLE", "1")))
    parser.add_argument("--only", choices=["decode", "echo", "idle"])
    parser.add_argument(
        "--baseline",
        default=env("BENCH_BASELINE"),
        metavar="REF",
        help="also run the channelbus of git commit REF (e.g. HEAD~1), in the same run",
    )
    opts = parser.parse_args(argv)
    opts.clients = [int(c) for c in opts.clients.split(",") if c.strip()]
    return opts


async def _measure(server: Server, clients: int, opts: argparse.Namespace) -> EchoResult:
    """One echo run against ``server``, noting how busy the rest of the machine was meanwhile."""
    noise = NoiseMeter({os.getpid(), *running_pids()})
    result = await echo_load(
        server.url, clients, opts.warmup, opts.duration, server.cpu_seconds, server.kind.reply_state
    )
    result.others_load, result.steal = noise.read()
    server.check_alive()
    return result


async def _echo(kinds, opts, workdir: Path) -> list[tuple[str, int, EchoResult]]:
    """Throughput and latency of each server at each client count: ``(label, clients, result)``.

    All servers run at once (the idle ones cost nothing) and are measured in
    turn, ``--repeat`` rounds, plus up to ``--retries`` more rounds for the cases
    whose best round so far was disturbed (other processes and steal together
    took :data:`NOISY` of a core or more). Of its rounds, a case keeps the least
    disturbed one.
    """
    best: dict[tuple[ServerKind, int], EchoResult] = {}
    with contextlib.ExitStack() as stack:
        servers = {kind: stack.enter_context(Server.start(kind, workdir)) for kind in kinds}
        cases = [(kind, clients) for kind in kinds for clients in opts.clients]
        for round_ in range(opts.repeat + opts.retries):
            todo = [c for c in cases if round_ < opts.repeat or best[c].noise >= NOISY]
            for kind, clients in todo:
                result = await _measure(servers[kind], clients, opts)
                if (kind, clients) not in best or result.noise < best[kind, clients].noise:
                    best[kind, clients] = result
                print(
                    f"  round {round_ + 1}: {kind.label}, {clients} clients: {result.rate:,.0f} msg/s, "
                    f"other processes {result.others_load:.0%}, steal {result.steal:.0%}",
                    file=sys.stderr,
                )
    return [(kind.label, clients, result) for (kind, clients), result in best.items()]


def render_echo(rows: list[tuple[str, int, EchoResult]]) -> str:
    """The echo table, with the ratio to plain Channels at the same client count."""
    base = {clients: r.rate for label, clients, r in rows if label == CHANNELS.label}
    head = (
        "| server | clients | msg/s | p50 ms | p99 ms | server CPU µs/msg | msg/s ratio vs plain Channels "
        "| server core % | client core % | other procs % | steal % |"
    )
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    notes: list[str] = []
    noisy: list[str] = []
    for label, clients, r in rows:
        ratio = f"{r.rate / base[clients]:.2f}x" if clients in base else "n/a"
        lines.append(
            f"| {label} | {clients} | {r.rate:,.0f} | {r.percentile(50):.3f} | {r.percentile(99):.3f} "
            f"| {r.server_us_per_msg:.1f} | {ratio} | {r.server_load:.0%} | {r.client_load:.0%} "
            f"| {r.others_load:.0%} | {r.steal:.0%} |"
        )
        if r.noise >= NOISY:
            noisy.append(f"{label} at {clients} clients: {r.noise:.0%} of a core was taken by others")
        if r.client_load >= CLIENT_BOUND and r.server_load < CLIENT_BOUND:
            notes.append(f"{label} at {clients} clients: the load client's core was full before the server's")
    if notes:
        lines += ["", "Client-bound (msg/s is a floor; server CPU µs/msg still compares fairly):"]
        lines += [f"- {n}" for n in notes]
    if noisy:
        lines += ["", "Disturbed by other processes or steal in every round (numbers are low):"]
        lines += [f"- {n}" for n in noisy]
    return "\n".join(lines)


async def _idle(kinds, opts, workdir: Path) -> list[tuple[str, IdleResult]]:
    """RSS per idle socket of each server, each on a fresh process."""
    rows = []
    for kind in kinds:
        with Server.start(kind, workdir) as server:
            rows.append((kind.label, await idle_memory(server, opts.sockets, opts.settle)))
    return rows


def render_idle(rows: list[tuple[str, IdleResult]]) -> str:
    """The memory table, with the ratio to plain Channels."""
    base = next((r.kb_per_idle_socket for label, r in rows if label == CHANNELS.label), None)
    lines = [
        "| server | sockets | RSS before | RSS with idle sockets | KB per idle socket | vs plain Channels "
        "| KB per socket after one message each |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for label, r in rows:
        ratio = f"{r.kb_per_idle_socket / base:.2f}x" if base else "n/a"
        lines.append(
            f"| {label} | {r.count:,} | {r.baseline_kb / 1024:.1f} MB | {r.idle_kb / 1024:.1f} MB "
            f"| {r.kb_per_idle_socket:.1f} | {ratio} | {r.kb_per_used_socket:.1f} |"
        )
    return "\n".join(lines)


def _raise_fd_limit(sockets: int) -> None:
    """Room for ``sockets`` client sockets here and server sockets in the children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = sockets * 2 + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def _pin_client() -> bool:
    """Pin this process, the load client, to its CPU (servers get the other); False if it cannot."""
    if not can_pin():
        return False
    os.sched_setaffinity(0, {CLIENT_CPU})
    return True


def _header(opts: argparse.Namespace, pinned: bool) -> str:
    where = "servers on CPU 0, load client on CPU 1" if pinned else "NOT pinned (no taskset or one CPU)"
    return (
        f"channelbus benchmarks: {os.cpu_count()} CPUs, {where}; Python {sys.version.split()[0]}; "
        f"echo {opts.warmup:g} s warm-up + {opts.duration:g} s per run, {opts.repeat} round(s) "
        f"+ up to {opts.retries} more when disturbed; one load-client process "
        f"(asyncio + websockets, uvloop, no compression); {opts.sockets:,} idle sockets."
    )


async def _main(opts: argparse.Namespace, workdir: Path) -> None:
    extra: list[ServerKind] = []
    if opts.baseline:
        tree = baseline.checkout(opts.baseline)
        extra.append(dataclasses.replace(CHANNELBUS, label=f"channelbus @ {opts.baseline}", tree=tree))
    if opts.only in (None, "echo"):
        print("\n## Echo: closed loop, each client awaits its reply before the next message\n", flush=True)
        print(render_echo(await _echo(ECHO_SERVERS + extra, opts, workdir)), flush=True)
    if opts.only in (None, "idle"):
        print(f"\n## Memory: {opts.sockets:,} idle sockets, server RSS (VmRSS)\n", flush=True)
        print(render_idle(await _idle(IDLE_SERVERS + extra, opts, workdir)), flush=True)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Run all parts and print their tables; every server is stopped on the way out."""
    opts = _options(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _raise_fd_limit(opts.sockets)
    started = time.monotonic()
    print(_header(opts, _pin_client()), flush=True)
    if opts.only in (None, "decode"):
        print("\n## Envelope decoding (no server)\n", flush=True)
        print(decode.render(decode.run()), flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="channelbus-bench-") as workdir:
            uvloop.run(_main(opts, Path(workdir)))
    finally:
        stop_all()
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)

"""Where a server's CPU goes under the 50-client echo load: py-spy samples, summed per function.

Usage: ``.venv/bin/python bench/profile_server.py [channelbus|channels|asgi] [--seconds S] [--clients N]``.
Needs py-spy (``.venv/bin/pip install py-spy``; not a dependency of the project).

py-spy runs with ``--gil``: only samples of a thread that holds the GIL count,
so idle time (the event loop waiting in epoll, idle thread-pool workers) is
left out and the percentages are shares of the server's busy CPU. "self" is
time in the function's own code, "total" includes what it calls; the time of
C code (uvloop, orjson, pydantic-core) is charged to the Python function that
called it.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop
from loadgen import echo_load
from servers import BARE_ASGI, CHANNELBUS, CHANNELS, CLIENT_CPU, Server, can_pin, stop_all

KINDS = {"channelbus": CHANNELBUS, "channels": CHANNELS, "asgi": BARE_ASGI}
_LOCATION = re.compile(r" \((?:.*/site-packages/|.*/lib/python3\.\d+/)?([^:]*)(?::\d+)?\)$")


def package_of(frame: str) -> str:
    """The top-level module of a py-spy frame ``"func (path:line)"``: ``uvicorn``, ``asyncio``..."""
    path = _LOCATION.search(frame)
    if path is None:
        return "?"
    return path.group(1).split("/", 1)[0].removesuffix(".py")


def _py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not found:
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def summarize(raw: Path, top: int) -> str:
    """Self and total shares per function from py-spy's collapsed-stack output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        raw_frames = stack.split(";")
        packages[package_of(raw_frames[-1])] += n
        frames = [_LOCATION.sub(r" (\1)", f) for f in raw_frames]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples (GIL held)", "", "self %  package (time in its own code)"]
    lines += [f"{n / samples:6.1%}  {p}" for p, n in packages.most_common()]
    lines += ["", "self %  function"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "total % function"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in total.most_common(top * 2) if n < samples]
    return "\n".join(lines)


def _start_py_spy(pid: int, seconds: float, rate: int, raw: Path) -> subprocess.Popen[bytes]:
    argv = [_py_spy(), "record", "--pid", str(pid), "--gil", "--rate", str(rate)]
    argv += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(raw)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _profile(kind, opts, workdir: Path, raw: Path) -> str:
    with Server.start(kind, workdir) as server:
        spy = _start_py_spy(server.proc.pid, opts.seconds, opts.rate, raw)
        try:
            result = await echo_load(
                server.url, opts.clients, 1.0, opts.seconds + 1, server.cpu_seconds, kind.reply_state
            )
        finally:
            spy.wait(30)
    return (
        f"{kind.label}, {opts.clients} clients: {result.rate:,.0f} msg/s, "
        f"{result.server_us_per_msg:.1f} µs server CPU per message (with py-spy attached)"
    )


def main() -> None:
    """Profile one server and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", nargs="?", default="channelbus", choices=sorted(KINDS))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=30)
    opts = parser.parse_args()
    if can_pin():
        os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        with tempfile.TemporaryDirectory(prefix="channelbus-profile-") as workdir:
            raw = Path(workdir) / "profile.txt"
            print(uvloop.run(_profile(KINDS[opts.server], opts, Path(workdir), raw)))
            print(summarize(raw, opts.top))
    finally:
        stop_all()


if __name__ == "__main__":
    main()

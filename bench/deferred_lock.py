"""Do long deferred jobs of one user hold up another user's sync handler? (issue 11, the embedded default)

Serves the demo with ``manage.py runbus`` (SQLite in WAL and IMMEDIATE mode, the embedded django_tasks_db
worker thread, the in-memory layer) on a fresh database in a temporary directory. User A sends ``--jobs``
``demo.count {"to": --to}`` at once (each sleeps 0.05 s per step and reports progress at each step, so a job
runs about ``to`` / 20 seconds; the worker thread runs them one after the other). As soon as the first
progress frame arrives, user B sends ``board.add`` (a sync handler that inserts a row) one at a time,
0.1 s apart, until every job has ended. Prints the time of ``board.add`` while idle (``--idle`` requests
before the jobs) and while the jobs run: count, p50, p99 and max.

``--tree DIR`` serves the channelbus of another checkout (e.g. ``git worktree add /tmp/before <commit>``),
to compare before and after a change. Run from the repository root::

    .venv/bin/python bench/deferred_lock.py [--jobs 3] [--to 100] [--tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channelbus.client import BusClient, fetch_cookies  # noqa: E402
from tests.servers import demo_server  # noqa: E402


async def _timed(bus: BusClient, title: str) -> float:
    start = time.perf_counter()
    await bus.request("board.add", {"title": title}, timeout=120)
    return time.perf_counter() - start


async def measure(address: str, jobs: int, to: int, idle: int) -> dict[str, list[float] | float]:
    """The board.add times (seconds) while idle and while ``jobs`` demo.count jobs run."""
    url = f"ws://{address}/ws/"
    alice, bob = [await asyncio.to_thread(fetch_cookies, f"http://{address}/") for _ in range(2)]
    async with BusClient(url, cookies=alice) as a, BusClient(url, cookies=bob) as b:
        quiet = [await _timed(b, "idle") for _ in range(idle)]
        running = asyncio.Event()
        started = time.perf_counter()

        def seen(frame: dict[str, object]) -> None:
            if frame.get("p"):
                running.set()

        counts = [
            asyncio.create_task(a.request("demo.count", {"to": to}, timeout=600, on_state=seen))
            for _ in range(jobs)
        ]
        await running.wait()
        busy = []
        while not all(c.done() for c in counts):
            busy.append(await _timed(b, "busy"))
            await asyncio.sleep(0.1)
        await asyncio.gather(*counts)
        return {"idle": quiet, "busy": busy, "jobs_seconds": time.perf_counter() - started}


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def main() -> None:
    """Parse the options, serve the demo, measure, print one line per phase."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--to", type=int, default=100)
    parser.add_argument("--idle", type=int, default=20)
    parser.add_argument("--tree", type=Path, help="serve the channelbus of this checkout")
    options = parser.parse_args()
    path = [str(options.tree)] if options.tree else []
    env = {"PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp, demo_server(Path(tmp), env) as address:
        result = asyncio.run(measure(address, options.jobs, options.to, options.idle))
    jobs = f"{options.jobs} x demo.count {{to: {options.to}}}"
    print(f"tree: {options.tree or ROOT}; {jobs}: {result['jobs_seconds']:.1f} s")
    for phase in ("idle", "busy"):
        values = result[phase]
        assert isinstance(values, list)
        print(
            f"board.add {phase}: n={len(values)} p50 {statistics.median(values) * 1000:.1f} ms, "
            f"p99 {_ms(values, 0.99)} ms, max {max(values) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()

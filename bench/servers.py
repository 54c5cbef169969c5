"""Server subprocesses: start one pinned to a CPU, read its CPU time and RSS, stop it.

Every server started here is registered and stopped by :func:`stop_all`
(``bench/run.py`` calls it in a ``finally`` and on SIGTERM), so no server
outlives the run.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from baseline import pythonpath

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SERVER_CPU = 0
CLIENT_CPU = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_running: list[Server] = []


@dataclass(frozen=True)
class ServerKind:
    """A server under test: a label and how to start it (``{port}`` is filled in)."""

    label: str
    argv: tuple[str, ...]
    #: The ``s`` (state) key the echo reply must carry, or None for a plain echo.
    reply_state: str | None = None
    #: Another source tree to run the server from (``--baseline``), or None for this checkout.
    tree: Path | None = None


def _uvicorn(app: str) -> tuple[str, ...]:
    return (
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        "1",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    )


WEBSOCKETS = ServerKind("bare websockets", (sys.executable, "-m", "bench_site.echo_websockets", "{port}"))
BARE_ASGI = ServerKind("bare ASGI (uvicorn)", _uvicorn("bench_site.echo_asgi:app"))
CHANNELS = ServerKind("plain Channels", _uvicorn("bench_site.asgi_channels:application"))
CHANNELBUS = ServerKind("channelbus", _uvicorn("bench_site.asgi_bus:application"), reply_state="s")


@functools.cache
def can_pin() -> bool:
    """True if servers and the load client can run on different CPUs (decided once, before pinning)."""
    return shutil.which("taskset") is not None and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free when asked; the server binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_seconds(pid: int | str) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of proc_pid_stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class NoiseMeter:
    """How much of the machine was not ours: other processes' CPU time, and steal time.

    Other processes: the machine's user + system time (/proc/stat) minus that
    of ``ours``, so short-lived processes count too. Steal: time the
    hypervisor ran something else while a virtual CPU of ours wanted to run.
    Both as a share of one core, since the meter was made.
    """

    def __init__(self, ours: set[int]) -> None:
        self.ours = ours
        self.start = self._read()

    def _read(self) -> tuple[float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split(maxsplit=9)[1:9]]
        user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
        ours = sum(process_cpu_seconds(pid) for pid in self.ours)
        return (user + nice + system) / CLOCK_TICKS - ours, steal / CLOCK_TICKS, time.monotonic()

    def read(self) -> tuple[float, float]:
        """``(other processes, steal)`` since the meter was made, each as a share of one core."""
        (others0, steal0, t0), (others1, steal1, t1) = self.start, self._read()
        return max(0.0, others1 - others0) / (t1 - t0), (steal1 - steal0) / (t1 - t0)


class Server:
    """One running server process (see :meth:`start`)."""

    def __init__(self, kind: ServerKind, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.kind = kind
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"ws://127.0.0.1:{port}/ws/"

    @classmethod
    def start(cls, kind: ServerKind, workdir: Path, timeout: float = 30.0) -> Server:
        """Start ``kind`` on a free port, pinned to CPU 0 when possible, and wait until it listens."""
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in kind.argv]
        if can_pin():
            argv = ["taskset", "-c", str(SERVER_CPU), *argv]
        env = dict(os.environ)
        paths = pythonpath(kind.tree) if kind.tree is not None else [str(BENCH_DIR), str(ROOT / "demo")]
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
        env["DJANGO_SETTINGS_MODULE"] = "bench_site.settings"
        env["BENCH_DB_DIR"] = str(workdir)
        env["PYTHONUNBUFFERED"] = "1"
        log = Path(tempfile.mkstemp(prefix="server-", suffix=".log", dir=workdir)[1])
        with log.open("wb") as out:
            # taskset execs the server, so proc.pid is the server's own pid.
            cwd = kind.tree or ROOT
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = cls(kind, proc, port, log)
        _running.append(server)
        server._wait_listening(timeout)
        return server

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind.label} exited at start:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind.label} did not listen within {timeout} s:\n{self.log.read_text()}")

    def cpu_seconds(self) -> float:
        """The server's user + system CPU time so far (all its threads)."""
        return process_cpu_seconds(self.proc.pid)

    def rss_kb(self) -> int:
        """The server's resident set size in KB (VmRSS of /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def check_alive(self) -> None:
        """Raise if the server died (its log is in the message)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind.label} died:\n{self.log.read_text()}")

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s)."""
        if self in _running:
            _running.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_pids() -> set[int]:
    """The pids of the servers this process started and has not stopped yet."""
    return {server.proc.pid for server in _running}


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_running):
        server.stop()

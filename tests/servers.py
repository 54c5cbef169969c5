"""Start real servers (uvicorn running the demo) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Wait until something listens on ``port``; fail with the server's output if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def demo_env(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a demo process using the database in ``tmp_path``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_site.settings",
        "DEMO_DB": str(tmp_path / "demo.sqlite3"),
        "PYTHONUNBUFFERED": "1",
        # Tests make many guests from 127.0.0.1 (one per client); tests/system/test_demo.py checks the limit.
        "DEMO_GUESTS_PER_MINUTE": "1000000",
        **(env or {}),
    }


def migrate_demo(tmp_path: Path, env: dict[str, str] | None = None) -> None:
    """Create the demo's database in ``tmp_path``."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=DEMO,
        env=demo_env(tmp_path, env),
        check=True,
    )


@contextlib.contextmanager
def demo_server(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    migrate: bool = True,
    args: tuple[str, ...] = (),
    command: tuple[str, ...] = ("manage.py", "runbus"),
    log: Path | None = None,
    started: list[subprocess.Popen] | None = None,
) -> Iterator[str]:
    """Serve the demo with ``manage.py runbus`` (migrating its database first); yields ``host:port``.

    ``command`` replaces ``manage.py runbus`` (for example ``-m uvicorn demo_site.asgi:application``);
    it gets ``--port`` and ``--log-level`` too. ``log``: a file for the server's output instead of a
    pipe (which stalls a server that writes much once nobody reads it). ``started``: a list the server's
    process is appended to (to kill it with SIGKILL in the middle of a test).
    """
    port = free_port()
    full_env = demo_env(tmp_path, env)
    if migrate:
        migrate_demo(tmp_path, env)
    output = log.open("w") if log is not None else None
    proc = subprocess.Popen(
        [sys.executable, *command, "--port", str(port), "--log-level", "warning", *args],
        cwd=DEMO,
        env=full_env,
        stdout=subprocess.PIPE if output is None else output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if output is not None:
        output.close()  # the server has its own copy
    if started is not None:
        started.append(proc)
    try:
        wait_for_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""Reaching the Redis of the test machine (fail under CI=true, skip elsewhere, when it is down), and
starting a redis-server of a test's own that it may kill ("OwnRedis")."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def require_redis() -> None:
    """Skip (or, with CI=true, fail) the calling test when nothing answers on 127.0.0.1:6379."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as exc:
        message = f"Redis at {REDIS_HOST}:{REDIS_PORT} is needed for this test and is not reachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def layer_settings(kind: str, url: str = REDIS_URL) -> dict:
    """CHANNEL_LAYERS for one of the two channels_redis layers on ``url``, with a prefix of its own."""
    prefix = f"cbtest{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        backend = "channels_redis.core.RedisChannelLayer"
        config = {"hosts": [{"address": url, "socket_timeout": None}], "prefix": prefix}
    else:
        backend = "channels_redis.pubsub.RedisPubSubChannelLayer"
        config = {"hosts": [{"address": url}], "prefix": prefix}
    return {"default": {"BACKEND": backend, "CONFIG": config}}


class OwnRedis:
    """A redis-server of the test's own on a free port (never the shared one), without persistence:
    :meth:`kill` it (SIGKILL) and :meth:`start` it again on the same port, empty, as a Redis restart.

    Skips (or, with CI=true, fails) when ``redis-server`` is not installed.
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is needed for this test and is not installed"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        with socket.socket() as sock:
            sock.bind((REDIS_HOST, 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"redis://{REDIS_HOST}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start it (empty) and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", REDIS_HOST]
        args += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((REDIS_HOST, self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def kill(self) -> None:
        """Kill it at once (SIGKILL: no save, no goodbye to clients) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

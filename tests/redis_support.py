"""Reaching the Redis of the test machine: fail under CI=true, skip elsewhere, when it is down."""

from __future__ import annotations

import os
import socket
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


def layer_settings(kind: str) -> dict:
    """CHANNEL_LAYERS for one of the two channels_redis layers, with a prefix of its own."""
    prefix = f"cbtest{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        backend = "channels_redis.core.RedisChannelLayer"
        config = {"hosts": [{"address": REDIS_URL, "socket_timeout": None}], "prefix": prefix}
    else:
        backend = "channels_redis.pubsub.RedisPubSubChannelLayer"
        config = {"hosts": [{"address": REDIS_URL}], "prefix": prefix}
    return {"default": {"BACKEND": backend, "CONFIG": config}}

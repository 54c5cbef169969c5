"""Memory per idle socket: the server's RSS before and after opening many sockets that stay quiet.

The server is fresh (started for this measure only). A few sockets first
exchange one message and close, so lazily imported code and first-use caches
are in the baseline; then ``count`` sockets are opened and left idle. A second
figure sends one echo on each of them, since a server may allocate
per-connection state only when the first message arrives.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loadgen import close_all, one_echo, open_many, open_socket
from servers import Server


@dataclass
class IdleResult:
    """RSS of the server, in KB: at baseline, with the idle sockets, after one message on each."""

    count: int
    baseline_kb: int
    idle_kb: int
    after_message_kb: int

    @property
    def kb_per_idle_socket(self) -> float:
        """RSS growth per idle socket, in KB."""
        return (self.idle_kb - self.baseline_kb) / self.count

    @property
    def kb_per_used_socket(self) -> float:
        """RSS growth per socket once each has exchanged one message, in KB."""
        return (self.after_message_kb - self.baseline_kb) / self.count


async def idle_memory(server: Server, count: int, settle: float) -> IdleResult:
    """Measure ``server``'s RSS growth for ``count`` idle sockets."""
    state = server.kind.reply_state
    for _ in range(3):
        async with open_socket(server.url) as ws:
            await one_echo(ws, state)
    await asyncio.sleep(settle)
    baseline = server.rss_kb()
    sockets = await open_many(server.url, count)
    try:
        await asyncio.sleep(settle)
        server.check_alive()
        idle = server.rss_kb()
        await asyncio.gather(*(one_echo(ws, state) for ws in sockets))
        await asyncio.sleep(settle)
        used = server.rss_kb()
    finally:
        await close_all(sockets)
    return IdleResult(count, baseline, idle, used)

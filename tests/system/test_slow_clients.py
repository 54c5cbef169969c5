"""A client that stops reading holds back nobody (``docs/protocol.md``, "Slow clients").

A real uvicorn serves the demo (with ``tests.fastapp``, ``SLOW_CLIENT_GRACE`` 2 s, the default outbox
limits); 1,000 sockets follow one topic while sockets with a 4 KiB receive buffer stop reading and are
sent more than they take. Before the outbox, the publisher waited on the stalled socket and the
others got nothing.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from channelbus.client import fetch_cookies
from tests.rawws import RawClient, check_tick, uvicorn_demo

READERS = 1000
GRACE = 2.0  # tests/fastapp/settings_slow.py
CLOSE_TIMEOUT = (
    1.0  # channelbus.server.consumer.CLOSE_TIMEOUT: a socket that cannot take its close is dropped
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with uvicorn_demo(tmp_path_factory.mktemp("slow"), settings="tests.fastapp.settings_slow") as address:
        yield address


async def open_sockets(address: str, cookies: dict[str, str], n: int) -> list[RawClient]:
    gate = asyncio.Semaphore(50)

    async def one() -> RawClient:
        async with gate:
            return await RawClient.connect(address, cookies)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def read_ticks(clients: list[RawClient], topic: str, count: int, by: str) -> list[float]:
    """Every client reads ticks 0..count-1 of ``by`` in order; returns the latencies (publish to read)."""
    latencies: list[float] = []

    async def read(client: RawClient) -> None:
        for k in range(count):
            frame = await client.message(timeout=60)
            check_tick(frame, topic, k, by)
            latencies.append(time.time() - frame["p"]["at"])

    await asyncio.gather(*(read(client) for client in clients))
    return latencies


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


async def watch_until_gone(
    observer: RawClient, connection_id: str, timeout: float
) -> tuple[float | None, float]:
    """Poll the server until the connection is gone: (when its outbox went over the limit, when it was gone),
    both on the server's clock."""
    slow_since = last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = await observer.stats_of(connection_id)
        if stats["of"] is None:
            return slow_since, stats["now"]
        slow_since = stats["of"]["slow_since"] or slow_since
        last = stats["of"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stalled socket {connection_id} was still open after {timeout} s: {last}")


async def test_sockets_that_stop_reading_are_closed_and_hold_back_nobody(server):
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    publisher = await RawClient.connect(server, cookies)
    observer, observer2 = await open_sockets(server, cookies, 2)
    trickled = await RawClient.connect(server, cookies, rcvbuf=4096)  # over the limit slowly: the grace time
    flooded = await RawClient.connect(server, cookies, rcvbuf=4096)  # 30 MB at once: twice the limit
    readers = await open_sockets(server, cookies, READERS)
    crowd = "fp.t:crowd"
    await asyncio.gather(*(client.subscribe(crowd) for client in (trickled, flooded, *readers)))
    await trickled.subscribe("fp.t:trickle")
    await flooded.subscribe("fp.t:flood")
    ids = {"trickled": (await trickled.stats())["id"], "flooded": (await flooded.stats())["id"]}

    # Round 1: everybody reads.
    i = publisher.request("fp.burst", {"topic": crowd, "count": 20, "by": "r1", "every": 0.02})
    before = await read_ticks([trickled, flooded, *readers], crowd, 20, "r1")
    await publisher.reply(i)
    rss_before = (await observer.stats())["rss"]

    # Round 2: two sockets stop reading. One is sent 50 KB every 0.05 s of its own until its outbox is
    # over the limit, then nothing more (so the grace time decides), the other 30 MB at once; the
    # crowd's ticks go on.
    requests = [
        publisher.request(
            "fp.burst",
            {
                "topic": "fp.t:trickle",
                "count": 400,
                "size": 50_000,
                "every": 0.05,
                "until_slow": ids["trickled"],
            },
        ),
        publisher.request("fp.burst", {"topic": "fp.t:flood", "count": 300, "size": 100_000}),
        publisher.request("fp.burst", {"topic": crowd, "count": 160, "by": "r2", "every": 0.05}),
    ]
    watching = asyncio.ensure_future(
        asyncio.gather(
            watch_until_gone(observer, ids["flooded"], 30), watch_until_gone(observer2, ids["trickled"], 30)
        )
    )
    during = await read_ticks(readers, crowd, 160, "r2")
    (_, flood_gone), (trickle_slow, trickle_gone) = await watching
    replies = set()
    while len(replies) < len(requests):  # every publish was answered: none waited on a stalled socket
        frame = await publisher.message(timeout=30)
        assert frame["s"] == "s", frame
        replies.add(frame["i"])
    stats = await observer.stats()

    print(
        f"p99 latency: {p99(before) * 1000:.1f} ms before, {p99(during) * 1000:.1f} ms while two sockets "
        f"stalled; RSS {rss_before / 2**20:.1f} -> {stats['rss'] / 2**20:.1f} MiB"
    )
    # Nobody else was held back: every tick arrived, in order, and p99 stayed near round 1's.
    assert p99(during) < max(10 * p99(before), 1.0), (p99(before), p99(during))
    # The trickled socket was closed when its outbox had been over the limit for the grace time (and
    # dropped 1 s later, as it took not even the close frame).
    assert trickle_slow is not None
    assert GRACE - 0.2 <= trickle_gone - trickle_slow <= GRACE + CLOSE_TIMEOUT + 1.5
    assert flood_gone is not None
    # Memory: the 30 MB sent to the flooded socket were never held (the outbox stops at twice 1 MiB).
    assert stats["rss"] - rss_before < 20 * 2**20, (rss_before, stats["rss"])
    # What the stalled sockets see when they read again: frames, then a 4408 close or a dropped connection.
    for client in (trickled, flooded):
        assert await closed_as_too_slow(client)
    for client in (publisher, observer, observer2, *readers):
        client.close()


async def closed_as_too_slow(client: RawClient) -> bool:
    """Read to the end: True for a close frame with 4408 or a connection the server dropped."""
    try:
        while True:
            opcode, payload = await client.frame(timeout=10)
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big") == 4408
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return True

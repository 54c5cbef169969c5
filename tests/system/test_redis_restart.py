"""Redis restarted empty under two server processes: publishes fail while it is down, delivery resumes.

Each test starts a redis-server of its own on a free port (``OwnRedis``: the shared Redis is never
touched), two demo servers (``manage.py runbus``) on it, kills Redis with SIGKILL, and starts it
again, empty, on the same port. Shouts sent while it is down must get ``error.unavailable``; after
the restart, shouts must reach a follower in the other process and one in the shouting process again
within ``RESUME_DEADLINE`` seconds, every shout after that must arrive, and each server must have
logged the outage at WARNING and the resumption at INFO.
"""

from __future__ import annotations

import asyncio

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.redis_support import OwnRedis
from tests.servers import demo_server, migrate_demo
from tests.waiting import wait_for

#: Seconds from Redis answering again to shouts reaching both followers.
RESUME_DEADLINE = 10.0

pytestmark = pytest.mark.timeout(180)


class Follower:
    """A :class:`BusClient` following ``demo.all``, keeping the texts of the shouts it got."""

    def __init__(self, client: BusClient) -> None:
        self.client = client
        self.texts: list[str] = []
        client.on("demo.shouted", lambda frame: self.texts.append(frame["p"]["text"]))

    async def follow(self) -> None:
        await self.client.request("topic.subscribe", {"topic": "demo.all"})

    def got(self, prefix: str) -> list[str]:
        return [text for text in self.texts if text.startswith(prefix)]


async def shout(client: BusClient, text: str) -> str | None:
    """Send ``demo.shout``; None when it was answered ``s``, else the error type."""
    try:
        await client.request("demo.shout", {"text": text}, timeout=10)
    except RequestFailed as exc:
        return exc.type
    return None


async def shout_until(stop: asyncio.Event, client: BusClient, prefix: str, answers: list[str | None]) -> None:
    """Shout ``<prefix><n>`` every 0.1 s, recording each answer, until ``stop`` is set.

    (An event, not a cancel: on Python 3.11 ``asyncio.wait_for`` in ``BusClient.request`` may swallow a
    cancellation that arrives with the reply.)
    """
    n = 0
    while not stop.is_set():
        answers.append(await shout(client, f"{prefix}{n}"))
        n += 1
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("layer", ["redis", "redis-pubsub"])
async def test_delivery_resumes_after_redis_restarts_empty(tmp_path, layer, capsys):
    redis = OwnRedis()
    redis.start()
    env = {"DEMO_CHANNEL_LAYER": layer, "REDIS_URL": redis.url, "DEMO_REDIS_PREFIX": "cbrestart"}
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    try:
        migrate_demo(tmp_path, env)
        with (
            demo_server(tmp_path, env, migrate=False, log=first_log) as first,
            demo_server(tmp_path, env, migrate=False, log=second_log) as second,
        ):
            cookies_a = await asyncio.to_thread(fetch_cookies, f"http://{first}/")
            cookies_b = await asyncio.to_thread(fetch_cookies, f"http://{second}/")
            async with (
                BusClient(f"ws://{first}/ws/", cookies=cookies_a) as client_a,
                BusClient(f"ws://{second}/ws/", cookies=cookies_b) as client_b,
                BusClient(f"ws://{second}/ws/", cookies=cookies_b) as shouter,
            ):
                elsewhere, alongside = Follower(client_a), Follower(client_b)  # other process, same process
                await elsewhere.follow()
                await alongside.follow()
                assert await shout(shouter, "before") is None
                await wait_for(lambda: elsewhere.got("before") and alongside.got("before"), timeout=5)

                redis.kill()
                during = [await shout(shouter, f"during {n}") for n in range(5)]
                assert during == ["error.unavailable"] * 5  # never a silent success
                assert await shout(client_a, "during, from the first process") == "error.unavailable"

                redis.start()  # empty: every group membership Redis held is gone
                loop = asyncio.get_running_loop()
                restarted = loop.time()
                answers: list[str | None] = []
                stop = asyncio.Event()
                shouting = asyncio.create_task(shout_until(stop, shouter, "after ", answers))
                try:
                    await wait_for(
                        lambda: elsewhere.got("after ") and alongside.got("after "),
                        timeout=RESUME_DEADLINE,
                        interval=0.05,
                        what="a shout after the restart reached both followers",
                    )
                    resumed = loop.time() - restarted
                finally:
                    stop.set()
                    await shouting
                assert set(answers) <= {None, "error.unavailable"}
                failed = answers.count("error.unavailable")
                # Answered s, yet reached no follower elsewhere: sent before this process's groups were back.
                unseen = [
                    n
                    for n, answer in enumerate(answers)
                    if answer is None and f"after {n}" not in elsewhere.texts
                ]
                with capsys.disabled():
                    print(
                        f"\n{layer}: delivery resumed {resumed:.2f} s after the restart; {len(answers)} "
                        f"shouts meanwhile: {failed} error.unavailable, {len(unseen)} got s but no delivery"
                    )

                # From now on, every shout arrives, in order, inside and across the processes, both ways.
                for n in range(5):
                    assert await shout(shouter, f"steady-b {n}") is None
                    assert await shout(client_a, f"steady-a {n}") is None
                for follower in (elsewhere, alongside):
                    await wait_for(lambda f=follower: len(f.got("steady-")) == 10, timeout=5)
                    assert follower.got("steady-b ") == [f"steady-b {n}" for n in range(5)]
                    assert follower.got("steady-a ") == [f"steady-a {n}" for n in range(5)]
                    assert not follower.got("during")

            for log in (first_log, second_log):
                # The INFO line comes with the first check that passes after every group is back: when a
                # group_add failed right after the restart, that is a check later (1 s).
                await wait_for(
                    lambda log=log: "channelbus: the channel layer answers again" in log.read_text(),
                    timeout=10,
                    what=f"the INFO line that delivery resumed in {log.name}",
                )
                assert "channelbus: the channel layer cannot be reached" in log.read_text()
    finally:
        redis.kill()

"""Two uvicorn processes sharing Redis: a publish in one, or from a shell, reaches the other's socket once."""

import asyncio
import subprocess
import sys
import uuid

import orjson
import pytest

from channelbus.client import BusClient, fetch_cookies
from tests.redis_support import require_redis
from tests.servers import DEMO, demo_env, demo_server, migrate_demo


@pytest.mark.parametrize("layer", ["redis", "redis-pubsub"])
async def test_two_processes_and_the_management_command(tmp_path, layer):
    require_redis()
    env = {"DEMO_CHANNEL_LAYER": layer, "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}"}
    migrate_demo(tmp_path, env)
    with (
        demo_server(tmp_path, env, migrate=False) as first,
        demo_server(tmp_path, env, migrate=False) as second,
    ):
        cookies_a = await asyncio.to_thread(fetch_cookies, f"http://{first}/")
        cookies_b = await asyncio.to_thread(fetch_cookies, f"http://{second}/")
        async with (
            BusClient(f"ws://{first}/ws/", cookies=cookies_a) as listener,
            BusClient(f"ws://{second}/ws/", cookies=cookies_b) as shouter,
        ):
            subscribed = await listener.request("topic.subscribe", {"topic": "demo.all"})
            assert (subscribed["topic"], subscribed["state"]) == ("demo.all", None)
            start = subscribed["n"]  # numbered in Redis: one numbering for every process
            await shouter.request("demo.shout", {"text": "from the second process"})
            frame = await listener.receive("demo.shouted", timeout=5)
            assert frame["c"] == "demo.all"
            assert frame["p"]["text"] == "from the second process"
            assert frame["n"] == start + 1

            payload = orjson.dumps({"text": "from a shell", "user": "admin"}).decode()
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "manage.py", "channelbus_publish", "demo.all", "demo.shouted", payload],
                cwd=DEMO,
                env=demo_env(tmp_path, env),
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, result.stderr
            frame = await listener.receive("demo.shouted", timeout=5)
            assert frame["p"] == {"text": "from a shell", "user": "admin"}
            assert frame["n"] == start + 2

            # Exactly once each: nothing else arrives.
            with pytest.raises(TimeoutError):
                await listener.receive(timeout=0.5)

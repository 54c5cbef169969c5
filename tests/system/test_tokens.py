"""Tokens against real servers (the demo under runbus, with tests.tokenapp): a password change closes every
open socket of the user (session, connection token in a header or in the subprotocol) with s.closing and
4401, and the old connection token is refused afterwards; another user's topic token joins nothing; with
two processes on Redis, a password changed from a shell closes the user's sockets in both."""

import asyncio
import subprocess
import sys
import uuid

import orjson
import pytest
from websockets.asyncio.client import connect

from channelbus.client import BusClient, fetch_cookies
from channelbus.server.auth import SUBPROTOCOL_PREFIX
from tests.redis_support import require_redis
from tests.servers import DEMO, ROOT, demo_env, demo_server, migrate_demo

APPS = {"DEMO_EXTRA_APPS": "tests.tokenapp", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("tokens"), APPS) as address:
        yield address


async def signed_in(address):
    """A new guest of the demo (GET / signs one in) and a BusClient on its session cookie."""
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{address}/")
    return await BusClient(f"ws://{address}/ws/", cookies=cookies).connect()


async def assert_closed(bus, reason, code=4401):
    """``s.closing`` with ``code`` and ``reason``, then the close with ``code``."""
    assert (await bus.receive("s.closing", timeout=10))["p"] == {"code": code, "reason": reason}
    assert await bus.wait_closed() == code


async def test_a_password_change_closes_every_socket_and_revokes_the_token(server):
    session = await signed_in(server)
    pk = (await session.request("e2e.whoami"))["pk"]
    token = (await session.request("e2e.connection_token"))["token"]
    by_header = await BusClient(f"ws://{server}/ws/", token=token).connect()
    assert (await by_header.request("topic.list"))["topics"] == ["broadcast", f"user:{pk}"]
    # A browser cannot set headers: it offers the token as a second subprotocol.
    protocols = ["channelbus.v1", SUBPROTOCOL_PREFIX + token]
    async with connect(f"ws://{server}/ws/", subprotocols=protocols, origin=f"http://{server}") as raw:
        assert raw.subprotocol == "channelbus.v1"  # never the token
        await raw.send('{"t":"topic.list","i":"1"}')
        assert orjson.loads(await raw.recv())["p"] == {"topics": ["broadcast", f"user:{pk}"]}

        await session.send("e2e.set_password", {"password": "a new password"})

        await assert_closed(session, "Password changed.")
        await assert_closed(by_header, "Password changed.")
        closing = orjson.loads(await asyncio.wait_for(raw.recv(), 10))
        assert closing == {"t": "s.closing", "p": {"code": 4401, "reason": "Password changed."}}
        await asyncio.wait_for(raw.wait_closed(), 10)
        assert raw.close_code == 4401

    # The old token now names nobody: the connection is signed out, and refused.
    again = await BusClient(f"ws://{server}/ws/", token=token).connect()
    await assert_closed(again, "Sign in to use this connection: token invalid.")


async def test_a_topic_token_of_another_user_joins_nothing(server):
    alice = await signed_in(server)
    alice_pk = (await alice.request("e2e.whoami"))["pk"]
    token = (await alice.request("e2e.topic_token", {"topics": ["demo.all"]}))["token"]
    await alice.close()

    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with BusClient(f"ws://{server}/ws/?topics={token}", cookies=cookies) as bob:
        bob_pk = (await bob.request("e2e.whoami"))["pk"]
        frame = await bob.receive("error.subscribe", timeout=5)
        assert frame["p"] == {"msg": "The topic token was made for another user.", "topic": ""}
        assert (await bob.request("topic.list"))["topics"] == ["broadcast", f"user:{bob_pk}"]
    assert bob_pk != alice_pk

    # A user's own token, on that user's next connection, joins its topics.
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with BusClient(f"ws://{server}/ws/", cookies=cookies) as carol:
        own = (await carol.request("e2e.topic_token", {"topics": ["demo.all"]}))["token"]
        carol_pk = (await carol.request("e2e.whoami"))["pk"]
    async with BusClient(f"ws://{server}/ws/?topics={own}", cookies=cookies) as carol:
        assert sorted((await carol.request("topic.list"))["topics"]) == [
            "broadcast",
            "demo.all",
            f"user:{carol_pk}",
        ]


async def test_a_password_changed_in_another_process_closes_the_sockets_of_every_server(tmp_path):
    require_redis()
    env = {**APPS, "DEMO_CHANNEL_LAYER": "redis", "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}"}
    migrate_demo(tmp_path, env)
    with (
        demo_server(tmp_path, env, migrate=False) as first,
        demo_server(tmp_path, env, migrate=False) as second,
    ):
        cookies = await asyncio.to_thread(fetch_cookies, f"http://{first}/")
        one = await BusClient(f"ws://{first}/ws/", cookies=cookies).connect()
        two = await BusClient(f"ws://{second}/ws/", cookies=cookies).connect()  # the same user
        pk = (await one.request("e2e.whoami"))["pk"]
        assert (await two.request("e2e.whoami"))["pk"] == pk
        others = await signed_in(second)

        script = (
            "import django; django.setup();"
            "from django.contrib.auth import get_user_model;"
            f"user = get_user_model().objects.get(pk={pk});"
            "user.is_active = False; user.save()"
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script],
            cwd=DEMO,
            env=demo_env(tmp_path, env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        await assert_closed(one, "Account deactivated.")
        await assert_closed(two, "Account deactivated.")
        assert await others.request("s.ping") is None  # another user's socket stays open
        await others.close()

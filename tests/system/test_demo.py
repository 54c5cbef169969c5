"""The demo's topics and messages, in process: chat rooms, their history, shouts (issue 3's demo); its
settings (a secret key of each installation's own, refused DEMO_* values) and its limit on new guests."""

import os
import runpy
import stat
import subprocess
import sys
from datetime import datetime

import pytest
from demoapp.models import ChatMessage
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from channelbus.testing import RequestFailed
from tests.servers import DEMO, ROOT, demo_env

pytestmark = pytest.mark.django_db(transaction=True)


async def _refusal(client, type_name, payload):
    with pytest.raises(RequestFailed) as exc:
        await client.request(type_name, payload)
    return exc.value


@pytest.mark.parametrize("room", ["a_b", "Lobby", "x" * 33, ""])
async def test_a_room_name_chat_send_refuses_cannot_be_followed_either(bus_client, user, room):
    client = await bus_client(user=user)
    subscribe = await _refusal(client, "topic.subscribe", {"topic": f"chat.room:{room}"})
    assert subscribe.type == "error.subscribe"
    send = await _refusal(client, "chat.send", {"room": room, "text": "hello"})
    assert send.type == "error.validation"
    assert [e["loc"] for e in send.payload["errors"]] == [["room"]]


@pytest.mark.parametrize("room", ["-x", "x" * 32, "room-2"])
async def test_a_room_name_chat_send_takes_can_be_followed(bus_client, user, room):
    client = await bus_client(user=user)
    reply = await client.request("topic.subscribe", {"topic": f"chat.room:{room}"})
    assert reply["topic"] == f"chat.room:{room}"
    await client.request("chat.send", {"room": room, "text": "hello"})
    assert (await client.receive("chat.message"))["c"] == f"chat.room:{room}"


@pytest.mark.parametrize(("text", "ok"), [("", False), ("x", True), ("x" * 2000, True), ("x" * 2001, False)])
async def test_chat_send_takes_1_to_2000_characters(bus_client, user, text, ok):
    client = await bus_client(user=user)
    if ok:
        assert isinstance((await client.request("chat.send", {"room": "lobby", "text": text}))["id"], int)
    else:
        refused = await _refusal(client, "chat.send", {"room": "lobby", "text": text})
        assert refused.type == "error.validation"
        assert [e["loc"] for e in refused.payload["errors"]] == [["text"]]
    assert await ChatMessage.objects.acount() == (1 if ok else 0)


async def test_chat_message_carries_room_id_user_text_and_time(bus_client, user):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "chat.room:fields"})
    reply = await client.request("chat.send", {"room": "fields", "text": "all five"})
    frame = await client.receive("chat.message")
    assert frame["c"] == "chat.room:fields"
    payload = frame["p"]
    assert set(payload) == {"room", "id", "user", "text", "at"}
    assert payload["room"] == "fields"
    assert payload["id"] == reply["id"]
    assert payload["text"] == "all five"
    assert payload["user"] == user.get_username()
    datetime.fromisoformat(payload["at"])


async def test_a_room_starts_with_its_last_50_messages_oldest_first(bus_client, user):
    history = [ChatMessage(room="busy", user=user, text=f"m{n}") for n in range(60)]
    await ChatMessage.objects.abulk_create(history)
    await ChatMessage.objects.acreate(room="other", user=user, text="elsewhere")
    client = await bus_client(user=user)
    state = (await client.request("topic.subscribe", {"topic": "chat.room:busy"}))["state"]
    assert [m["text"] for m in state] == [f"m{n}" for n in range(10, 60)]


async def test_shout_goes_to_every_follower_of_demo_all(bus_client, user):
    bob = await get_user_model().objects.acreate(username="bob-shouts")
    shouter, listener = await bus_client(user=user), await bus_client(user=bob)
    for tab in (shouter, listener):
        await tab.request("topic.subscribe", {"topic": "demo.all"})
    await shouter.request("demo.shout", {"text": "hi all"})
    for tab in (shouter, listener):
        frame = await tab.receive("demo.shouted")
        assert frame["c"] == "demo.all"
        assert frame["p"] == {"text": "hi all", "user": user.get_username()}


@pytest.mark.parametrize("text", ["", "x" * 201])
async def test_shout_takes_1_to_200_characters(bus_client, user, text):
    client = await bus_client(user=user)
    refused = await _refusal(client, "demo.shout", {"text": text})
    assert refused.type == "error.validation"


# -- the demo's settings ------------------------------------------------------------------------------------

SETTINGS = DEMO / "demo_site" / "settings.py"


def demo_settings(monkeypatch, tmp_path, **env):
    """The demo's settings module run afresh with ``env``, its key file in ``tmp_path``; its names."""
    monkeypatch.setenv("DEMO_SECRET_KEY_FILE", str(tmp_path / "key"))
    for name in ("DEMO_CHANNEL_LAYER", "DEMO_CACHE", "DEMO_TASKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_the_secret_key_is_made_once_per_installation_and_kept_private(monkeypatch, tmp_path):
    first = demo_settings(monkeypatch, tmp_path)["SECRET_KEY"]
    assert len(first) >= 50
    assert first != "demo-only-not-secret"
    key_file = tmp_path / "key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert demo_settings(monkeypatch, tmp_path)["SECRET_KEY"] == first  # read again, not made again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]
    other = tmp_path / "other"
    other.mkdir()
    assert demo_settings(monkeypatch, other)["SECRET_KEY"] != first  # another installation, another key
    key_file.write_text("\n")
    with pytest.raises(ImproperlyConfigured, match="key is empty: delete it and a new key is made"):
        demo_settings(monkeypatch, tmp_path)


def test_processes_starting_at_once_agree_on_one_key(tmp_path):
    env = {**os.environ, "DEMO_SECRET_KEY_FILE": str(tmp_path / "key")}
    script = "import demo_site.settings as s; print(s.SECRET_KEY)"
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=DEMO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(keys) == 1
    assert keys == {(tmp_path / "key").read_text().strip()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no draft left behind


def test_the_committed_demo_has_no_key_and_ignores_its_own():
    assert "demo-only-not-secret" not in SETTINGS.read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", "demo/.secret_key"], cwd=ROOT, check=False)
    assert ignored.returncode == 0


@pytest.mark.parametrize(
    ("name", "value", "choices"),
    [
        ("DEMO_CHANNEL_LAYER", "pubsub", "'memory', 'redis', 'redis-pubsub'"),
        ("DEMO_CHANNEL_LAYER", "Redis", "'memory', 'redis', 'redis-pubsub'"),
        ("DEMO_CACHE", "memcached", "'locmem', 'redis'"),
        ("DEMO_TASKS", "celery", "'db', 'rq'"),
    ],
)
def test_unknown_demo_values_are_refused_not_replaced_by_a_default(
    monkeypatch, tmp_path, name, value, choices
):
    with pytest.raises(ImproperlyConfigured) as exc:
        demo_settings(monkeypatch, tmp_path, **{name: value})
    assert str(exc.value) == f"{name}={value!r} is not one of {choices}."


def test_known_demo_values_choose_the_layer(monkeypatch, tmp_path):
    layers = {
        value: demo_settings(monkeypatch, tmp_path, DEMO_CHANNEL_LAYER=value)["CHANNEL_LAYERS"]["default"][
            "BACKEND"
        ]
        for value in ("", "memory", "redis", "redis-pubsub")
    }
    assert layers == {
        "": "channels.layers.InMemoryChannelLayer",
        "memory": "channels.layers.InMemoryChannelLayer",
        "redis": "channels_redis.core.RedisChannelLayer",
        "redis-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    }


def test_manage_py_stops_with_the_message_for_an_unknown_layer(tmp_path):
    env = {
        **demo_env(tmp_path),
        "DEMO_CHANNEL_LAYER": "pubsub",
        "DEMO_SECRET_KEY_FILE": str(tmp_path / "key"),
    }
    out = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=DEMO, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert (
        "ImproperlyConfigured: DEMO_CHANNEL_LAYER='pubsub' is not one of 'memory', 'redis', 'redis-pubsub'."
        in (out.stderr)
    )


# -- new guests per client address -------------------------------------------------------------------------


@pytest.fixture
def no_guests_yet():
    cache.clear()
    yield
    cache.clear()


@override_settings(DEMO_GUESTS_PER_MINUTE=3)
def test_get_without_a_session_makes_at_most_n_guests_per_address_and_minute(no_guests_yet):
    users = get_user_model().objects
    pages = [Client().get("/") for _ in range(3)]
    assert [page.status_code for page in pages] == [200] * 3
    assert users.filter(username__startswith="guest-").count() == 3
    refused = Client().get("/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    body = refused.content.decode()
    assert "Too many new guests from your address" in body
    assert "at most 3 of them per" in body
    assert "sessionid" not in refused.cookies
    assert users.filter(username__startswith="guest-").count() == 3
    # A guest who kept the cookie is not a new guest; another address has its own count.
    kept = Client()
    kept.cookies = pages[0].cookies
    assert kept.get("/").status_code == 200
    assert Client(REMOTE_ADDR="198.51.100.7").get("/").status_code == 200
    assert users.filter(username__startswith="guest-").count() == 4

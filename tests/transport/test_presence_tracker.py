"""Presence in one process, on the wire (BusTestClient, the in-memory layer): who is in a topic, the state
in ``topic.subscribed`` and ``presence.get``, the batched ``presence.diff``, one member per user, the
limits, and signed-out followers.

Most tests set a long ``PRESENCE_INTERVAL`` and write the batch themselves (``flush()``), so what one
batch holds is known; the others let the hub's task write every 50 ms and wait for the members a
client would show.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from channelbus.testing import RequestFailed
from channelbus.topics import Topic, topic_kinds
from channelbus.transport import get_hub
from channelbus.transport.hub import Hub
from tests import presence_kinds  # noqa: F401 - registers the test kinds
from tests.presence_view import PresenceView
from tests.redis_support import OwnRedis, layer_settings

pytestmark = pytest.mark.django_db(transaction=True)

LOBBY = "test.lobby:a"


@pytest.fixture
def by_hand(settings):
    """Batches written only when the test says (the hub's task sleeps an hour)."""
    settings.CHANNELBUS = {"PRESENCE_INTERVAL": 3600, "PRESENCE_EXPIRY": 3 * 3600}


@pytest.fixture
def quick(settings):
    """The hub's task writes a batch every 50 ms."""
    settings.CHANNELBUS = {"PRESENCE_INTERVAL": 0.05, "PRESENCE_EXPIRY": 0.15}


@pytest.fixture(autouse=True)
async def stop_presence():
    """Stop this test's hub's presence task (its event loop ends with the test)."""
    yield
    await get_hub().presence.stop()


@pytest.fixture
def users(db):
    make = get_user_model().objects.create_user
    return {name: make(username=name) for name in ("alice", "bob", "carol")}  # no password: no hashing


def entry(name: str, conns: int = 1) -> dict[str, Any]:
    return {"info": {"name": name}, "conns": conns}


async def flush() -> None:
    await get_hub().presence.flush()


async def subscribe(client: Any, topic: str = LOBBY) -> PresenceView:
    return await PresenceView.subscribe(client, topic)


async def test_a_subscriber_is_in_its_own_state_and_one_batch_tells_every_follower(
    bus_client, users, by_hand
):
    alice, bob = users["alice"], users["bob"]
    alice_tab = await bus_client(user=alice)
    first = await alice_tab.request("topic.subscribe", {"topic": LOBBY})
    assert first["presence"] == {
        "members": {str(alice.pk): entry("alice")},
        "count": 1,
        "v": first["presence"]["v"],
        "truncated": False,
    }
    bob_tab = await bus_client(user=bob)
    second = (await bob_tab.request("topic.subscribe", {"topic": LOBBY}))["presence"]
    assert second["members"] == {str(alice.pk): entry("alice"), str(bob.pk): entry("bob")}
    assert second["v"] == first["presence"]["v"]  # nothing written yet: both joins are this process's own
    await flush()
    for tab in (alice_tab, bob_tab):
        diff = await tab.receive("presence.diff")
        assert diff["c"] == LOBBY
        assert diff["p"] == {
            "topic": LOBBY,
            "joins": {str(alice.pk): entry("alice"), str(bob.pk): entry("bob")},
            "leaves": {},
            "count": 2,
            "v": second["v"] + 1,
        }
        assert "n" not in diff  # no number: the topic's history stays its own messages
    await flush()
    await alice_tab.assert_nothing_received()  # nothing changed: no diff


async def test_one_user_with_two_tabs_is_one_member_who_leaves_with_the_last_tab(bus_client, users, by_hand):
    alice, bob = users["alice"], users["bob"]
    watcher = await bus_client(user=alice)
    await subscribe(watcher)
    tabs = [await bus_client(user=bob) for _ in range(2)]
    for tab in tabs:
        await subscribe(tab)
    await flush()
    joined = (await watcher.receive("presence.diff"))["p"]
    assert joined["joins"][str(bob.pk)] == entry("bob", 2)
    await tabs[0].close()
    await flush()
    fewer = (await watcher.receive("presence.diff"))["p"]
    assert (fewer["joins"], fewer["leaves"], fewer["count"]) == ({str(bob.pk): entry("bob", 1)}, {}, 2)
    assert fewer["v"] == joined["v"] + 1
    await tabs[1].request("topic.leave", {"topic": LOBBY})
    await flush()
    left = (await watcher.receive("presence.diff"))["p"]
    assert (left["joins"], left["leaves"], left["count"]) == ({}, {str(bob.pk): entry("bob", 0)}, 1)


async def test_a_tab_reloaded_within_the_interval_sends_no_diff(bus_client, users, by_hand):
    alice, bob = users["alice"], users["bob"]
    watcher = await bus_client(user=alice)
    await subscribe(watcher)
    tab = await bus_client(user=bob)
    await subscribe(tab)
    await flush()
    await watcher.receive("presence.diff")
    await tab.close()
    await subscribe(await bus_client(user=bob))
    await flush()
    await watcher.assert_nothing_received()


async def test_the_hub_task_batches_on_its_own_and_stops_when_nobody_follows(bus_client, users, quick):
    alice, bob = users["alice"], users["bob"]
    alice_tab = await bus_client(user=alice)
    view = await subscribe(alice_tab)
    bob_tab = await bus_client(user=bob)
    await subscribe(bob_tab)
    await view.until({str(alice.pk): 1, str(bob.pk): 1})
    assert view.members == {str(alice.pk): entry("alice"), str(bob.pk): entry("bob")}
    await bob_tab.close()
    await view.until({str(alice.pk): 1})
    await alice_tab.close()
    task = get_hub().presence._task
    assert task is not None
    async with asyncio.timeout(5):
        await task  # it ends by itself once nobody follows: no task left behind
    assert get_hub().presence._task is None


async def test_presence_get_lists_the_members_without_following_the_topic(bus_client, users, by_hand):
    alice, bob = users["alice"], users["bob"]
    await subscribe(await bus_client(user=alice))
    asker = await bus_client(user=bob)
    state = await asker.request("presence.get", {"topic": LOBBY})
    assert state == {
        "topic": LOBBY,
        "members": {str(alice.pk): entry("alice")},
        "count": 1,
        "v": state["v"],
        "truncated": False,
    }
    assert LOBBY not in (await asker.request("topic.list"))["topics"]


async def test_more_members_than_the_limit_give_the_count_and_a_cut_list(bus_client, users, settings):
    settings.CHANNELBUS = {"PRESENCE_INTERVAL": 3600, "PRESENCE_EXPIRY": 3 * 3600, "PRESENCE_MAX_MEMBERS": 2}
    tabs = [await bus_client(user=user) for user in users.values()]
    for tab in tabs:
        await subscribe(tab)
    await flush()
    state = await tabs[0].request("presence.get", {"topic": LOBBY})
    assert (len(state["members"]), state["count"], state["truncated"]) == (2, 3, True)
    assert set(state["members"]) < {str(user.pk) for user in users.values()}
    subscribed = (await tabs[0].request("topic.subscribe", {"topic": LOBBY}))["presence"]
    assert (len(subscribed["members"]), subscribed["count"], subscribed["truncated"]) == (2, 3, True)


@pytest.mark.parametrize(
    ("payload", "loc"),
    [({}, ["topic"]), ({"topic": 4}, ["topic"]), ({"topic": LOBBY, "since": 1}, ["since"]), (None, [])],
)
async def test_presence_get_with_a_wrong_payload_is_a_validation_error(bus_client, users, payload, loc):
    client = await bus_client(user=users["alice"])
    with pytest.raises(RequestFailed) as failed:
        await client.request("presence.get", payload)
    assert failed.value.type == "error.validation"
    assert [error["loc"] for error in failed.value.payload["errors"]] == [loc]


@pytest.mark.parametrize(
    ("topic", "msg"),
    [
        ("test.vault:x", "You may not subscribe to test.vault:x."),
        ("nosuch.kind:1", "Unknown topic kind 'nosuch.kind'."),
        (
            "test.lobby:Not A Slug",
            "The key of 'test.lobby' must be a slug: lower-case letters, digits, '-' and '_'.",
        ),
        ("test.quiet:x", "Topic kind 'test.quiet' keeps no presence."),
    ],
)
async def test_presence_get_is_refused_as_a_subscribe_is(bus_client, users, topic, msg):
    staff = users["carol"]
    staff.is_staff = True
    await asyncio.to_thread(staff.save)
    if topic.startswith("test.vault"):
        await (await bus_client(user=staff)).request("topic.subscribe", {"topic": topic})
    client = await bus_client(user=users["alice"])
    with pytest.raises(RequestFailed) as failed:
        await client.request("presence.get", {"topic": topic})
    assert failed.value.type == "error.subscribe"
    assert failed.value.payload == {"msg": msg, "topic": topic}  # no member list, not even a count


async def test_a_signed_out_user_may_not_ask_unless_anonymous_use_is_allowed(bus_client, users, settings):
    settings.CHANNELBUS = {"ALLOW_ANONYMOUS": True, "PRESENCE_INTERVAL": 3600, "PRESENCE_EXPIRY": 3 * 3600}
    alice = users["alice"]
    await subscribe(await bus_client(user=alice), "test.open_lobby")
    guest = await bus_client()
    view = await subscribe(guest, "test.open_lobby")
    assert view.members == {str(alice.pk): entry("alice")}  # a signed-out follower is no member
    with pytest.raises(RequestFailed) as failed:
        await guest.request("presence.get", {"topic": LOBBY})  # test.lobby refuses signed-out users
    assert failed.value.type == "error.subscribe"
    await subscribe(await bus_client(user=users["bob"]), "test.open_lobby")
    await flush()
    await view.until({str(alice.pk): 1, str(users["bob"].pk): 1})
    settings.CHANNELBUS = {"ALLOW_ANONYMOUS": False}
    refused = await bus_client(user=alice)
    await refused.close()


async def test_a_kind_s_info_function_runs_in_a_thread_and_may_query(bus_client, users, by_hand):
    alice = users["alice"]
    client = await bus_client(user=alice)
    view = await subscribe(client, "test.desk:x")
    assert view.members == {str(alice.pk): {"info": {"name": "alice", "groups": 0}, "conns": 1}}


async def test_an_info_too_big_is_logged_and_sent_empty(bus_client, users, settings, caplog):
    settings.CHANNELBUS = {
        "PRESENCE_INTERVAL": 3600,
        "PRESENCE_EXPIRY": 3 * 3600,
        "PRESENCE_MAX_INFO_BYTES": 20,
    }
    alice = users["alice"]
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        view = await subscribe(await bus_client(user=alice), "test.desk:x")
    assert view.members == {str(alice.pk): {"info": {}, "conns": 1}}
    assert "PRESENCE_MAX_INFO_BYTES is 20" in caplog.text


@pytest.fixture
def auto_hall():
    """An auto-joined kind with presence: every signed-in connection is in ``test.hall``."""

    class Hall(Topic):
        kind = "test.hall"
        auto_join = True
        presence = True

    topic_kinds.register(Hall)
    yield "test.hall"
    topic_kinds.unregister("test.hall")


async def test_an_auto_joined_topic_counts_its_connections_too(bus_client, users, by_hand, auto_hall):
    alice, bob = users["alice"], users["bob"]
    await bus_client(user=alice)
    await bus_client(user=bob)
    asker = await bus_client(user=alice)
    state = await asker.request("presence.get", {"topic": auto_hall})
    assert state["members"] == {str(alice.pk): entry("alice", 2), str(bob.pk): entry("bob")}


async def test_the_server_api_reads_what_the_wire_does(bus_client, users, by_hand):
    from channelbus import apresence

    alice = users["alice"]
    await subscribe(await bus_client(user=alice))
    assert await apresence(LOBBY) == {str(alice.pk): entry("alice")}
    await flush()
    assert await apresence(LOBBY) == {str(alice.pk): entry("alice")}


class Tab:
    """A hub Endpoint as the tracker sees it: its user (None: signed out) and the frames offered to it."""

    def __init__(self, name: str, user: Any = None) -> None:
        self.connection_id, self.user = name, user
        self.topics: set[str] = set()
        self.closed, self.sending, self.raw = False, 0, None
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def offer(self, text: str, volatile: bool = False) -> None:
        self.frames.append(orjson.loads(text))
        self.arrived.set()

    def diffs(self) -> list[dict[str, Any]]:
        """The ``p`` of each diff offered so far (taken: the next call gives the newer ones)."""
        taken, self.frames = [f["p"] for f in self.frames if f["t"] == "presence.diff"], []
        return taken


@pytest.fixture
async def redis_hub(users, by_hand):
    """A started hub on RedisChannelLayer over a redis-server of the test's own (that it may kill)."""
    own = OwnRedis()
    own.start()
    with override_settings(CHANNEL_LAYERS=layer_settings("redis", own.url)):
        hub = Hub(asyncio.get_running_loop())
        await hub.start()
        yield hub, own
        await hub.stop()
    own.kill()


async def until_diff(tab: Tab) -> list[dict[str, Any]]:
    """The diffs the tab got (they come through Redis: wait for the first)."""
    async with asyncio.timeout(5):
        await tab.arrived.wait()
    tab.arrived.clear()
    return tab.diffs()


async def test_on_redis_a_batch_that_fails_waits_and_members_lost_by_redis_are_written_again(
    redis_hub, users, caplog
):
    hub, own = redis_hub
    alice, bob = users["alice"], users["bob"]
    watcher = Tab("watcher")
    await hub.join(watcher, LOBBY)
    await hub.join(Tab("a1", alice), LOBBY)
    await hub.presence.flush()
    [first] = await until_diff(watcher)
    assert first["joins"] == {str(alice.pk): entry("alice")}
    own.kill()
    await hub.join(Tab("b1", bob), LOBBY)
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        await hub.presence.flush()  # fails: logged once, bob stays pending
    assert "cannot be reached" in caplog.text
    own.start()  # empty: alice's entry is gone too, and the hub's layer groups
    await hub.check_layer()  # the groups back (the hub's own check does it within LAYER_CHECK_INTERVAL)
    await hub.presence.flush()  # this process's entry is lost: told so, it writes everything again
    [back] = await until_diff(watcher)
    assert back["joins"] == {str(alice.pk): entry("alice"), str(bob.pk): entry("bob")}
    assert back["count"] == 2
    state = await hub.presence_state(LOBBY)
    assert state["members"] == {str(alice.pk): entry("alice"), str(bob.pk): entry("bob")}

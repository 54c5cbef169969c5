"""Topics: subscribe, leave, list, permissions, publishing, on-commit, tokens, recheck (in-process)."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import override_settings

from channelbus.publishing import apublish, publish
from channelbus.testing import RequestFailed
from channelbus.topics import topic_token
from tests.testapp.messages import Greet
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user(username="bob", password="x")


async def test_every_connection_follows_its_user_topic_and_broadcast(bus_client, user):
    client = await bus_client(user=user)
    assert await client.request("topic.list") == {"topics": ["broadcast", f"user:{user.pk}"]}
    await apublish(Greet(text="to alice"), to=user)
    greeting = await client.receive()
    assert len(greeting.pop("e")) == 8  # the first frame of a numbering names its epoch
    assert greeting == {"t": "test.greeting", "p": {"text": "to alice"}, "c": f"user:{user.pk}", "n": 1}
    await apublish(Greet(text="everyone"), to="broadcast")
    everyone = await client.receive()
    assert len(everyone.pop("e")) == 8
    assert everyone == {"t": "test.greeting", "p": {"text": "everyone"}, "c": "broadcast", "n": 1}


async def test_subscribe_publish_leave(bus_client, user, bob):
    alice_tab = await bus_client(user=user)
    bob_tab = await bus_client(user=bob)
    reply = await alice_tab.request("topic.subscribe", {"topic": "test.room:lobby"})
    epoch = reply.pop("epoch")
    assert reply == {"topic": "test.room:lobby", "state": {"room": "lobby", "for": "alice"}, "n": 0}
    assert isinstance(epoch, str)
    assert len(epoch) == 8
    await bob_tab.request("topic.subscribe", {"topic": "test.room:lobby"})
    for n in range(3):
        await apublish(Greet(text=str(n)), to="test.room:lobby")
    for tab in (alice_tab, bob_tab):
        frames = [await tab.receive() for _ in range(3)]
        assert [f["p"]["text"] for f in frames] == ["0", "1", "2"]
        assert [f["n"] for f in frames] == [1, 2, 3]
        assert all(f["c"] == "test.room:lobby" for f in frames)
    assert await bob_tab.request("topic.leave", {"topic": "test.room:lobby"}) == {"topic": "test.room:lobby"}
    await apublish(Greet(text="after"), to="test.room:lobby")
    assert (await alice_tab.receive())["p"] == {"text": "after"}
    await bob_tab.assert_nothing_received()


async def test_exclude_the_sender(bus_client, user, bob):
    from channelbus.transport import get_hub

    alice_tab = await bus_client(user=user)
    bob_tab = await bus_client(user=bob)
    for tab in (alice_tab, bob_tab):
        await tab.request("topic.subscribe", {"topic": "test.room:x"})
    alice_address = next(c.channel_name for c in get_hub().connections.values() if c.user.pk == user.pk)
    await apublish(Greet(text="not to alice"), to="test.room:x", exclude=alice_address)
    assert (await bob_tab.receive())["p"] == {"text": "not to alice"}
    await alice_tab.assert_nothing_received()


@pytest.mark.parametrize(
    ("topic", "msg"),
    [
        ("user:{other}", "You may not subscribe to user:{other}."),
        ("nosuch.kind:1", "Unknown topic kind 'nosuch.kind'."),
        (
            "test.room:Not A Slug",
            "The key of 'test.room' must be a slug: lower-case letters, digits, '-' and '_'.",
        ),
        ("test.room", "Topic kind 'test.room' needs a key: test.room:<key>."),
        ("broadcast:1", "Topic kind 'broadcast' takes no key."),
        ("test.num:abc", "The key of 'test.num' must be a number."),
        ("testapp.note:999", "You may not subscribe to testapp.note:999."),
        ("testapp.note:abc", "You may not subscribe to testapp.note:abc."),
        ("test.num:²", "The key of 'test.num' must be a number."),
        ("test.short:a_b", "The key of 'test.short' must match [a-z0-9-]{{1,8}}."),
        ("test.short:abcdefghi", "The key of 'test.short' must match [a-z0-9-]{{1,8}}."),
    ],
)
async def test_refused_subscriptions(bus_client, user, bob, topic, msg):
    client = await bus_client(user=user)
    topic = topic.format(other=bob.pk)
    with pytest.raises(RequestFailed) as exc:
        await client.request("topic.subscribe", {"topic": topic})
    assert exc.value.type == "error.subscribe"
    assert exc.value.payload["msg"] == msg.format(other=bob.pk)
    assert "topic" in exc.value.payload
    assert topic not in (await client.request("topic.list"))["topics"]


async def test_model_topic_checks_permission_and_never_leaks(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="secret")
    alice_tab = await bus_client(user=user)
    bob_tab = await bus_client(user=bob)
    await alice_tab.request("topic.subscribe", {"topic": f"testapp.note:{note.pk}"})
    with pytest.raises(RequestFailed):
        await bob_tab.request("topic.subscribe", {"topic": f"testapp.note:{note.pk}"})
    await apublish(Greet(text="changed"), to=note)
    assert (await alice_tab.receive())["c"] == f"testapp.note:{note.pk}"
    await bob_tab.assert_nothing_received()
    # A model-level permission lets bob follow every note.
    perm = await Permission.objects.aget(codename="view_note")
    await database_sync_to_async(bob.user_permissions.add)(perm)
    fresh_bob = await get_user_model().objects.aget(pk=bob.pk)
    bob_tab2 = await bus_client(user=fresh_bob)
    assert (await bob_tab2.request("topic.subscribe", {"topic": f"testapp.note:{note.pk}"}))["topic"]


async def test_topic_limit_per_connection(bus_client, user):
    with override_settings(CHANNELBUS={"MAX_TOPICS_PER_CONNECTION": 3}):
        client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "test.room:a"})  # with user:<pk> and broadcast: 3
    with pytest.raises(RequestFailed) as exc:
        await client.request("topic.subscribe", {"topic": "test.room:b"})
    assert exc.value.type == "error.subscribe"
    assert "3 topics" in exc.value.payload["msg"]


async def test_subscriptions_are_dropped_when_the_socket_closes(bus_client, user):
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "test.room:gone"})
    assert "test.room:gone" in get_hub().members
    await client.close()
    assert "test.room:gone" not in get_hub().members
    assert not any(c.user.pk == user.pk for c in get_hub().connections.values())


def _sync_publish_in_transaction(texts_and_flags):
    with transaction.atomic():
        for text, on_commit, rolled_back in texts_and_flags:
            if rolled_back:
                try:
                    with transaction.atomic():
                        publish(Greet(text=text), to="test.room:tx", on_commit=on_commit)
                        raise RuntimeError("roll back the savepoint")
                except RuntimeError:
                    pass
            elif on_commit:
                publish(Greet(text=text), to="test.room:tx")  # on_commit=True is the default
            else:
                publish(Greet(text=text), to="test.room:tx", on_commit=False)


async def test_publish_waits_for_commit_keeps_order_and_drops_rolled_back_savepoints(bus_client, user):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "test.room:tx"})
    await database_sync_to_async(_sync_publish_in_transaction)(
        [("first", True, False), ("dropped", True, True), ("second", True, False), ("third", True, False)]
    )
    assert [(await client.receive())["p"]["text"] for _ in range(3)] == ["first", "second", "third"]
    await client.assert_nothing_received(0.2)


def _publish_now_then_fail():
    with transaction.atomic():
        publish(Greet(text="at once"), to="test.room:tx", on_commit=False)
        raise RuntimeError("the transaction fails after the message went out")


async def test_on_commit_false_sends_at_once(bus_client, user):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "test.room:tx"})
    with pytest.raises(RuntimeError):
        await database_sync_to_async(_publish_now_then_fail)()
    assert (await client.receive())["p"] == {"text": "at once"}


async def test_publish_refuses_bad_targets_where_it_is_called():
    with pytest.raises(TypeError, match=r"publish\(to=\.\.\.\)"):
        publish(Greet(text="x"), to=[object()])
    # A name nobody can follow (no such kind): a typo would otherwise lose the message silently.
    with pytest.raises(ValueError) as exc:
        publish(Greet(text="x"), to=["test.room:a", "test.rooom:a"])
    assert str(exc.value) == (
        "publish(to=...): no topic kind 'test.rooom' is registered, so nobody can follow 'test.rooom:a'. "
        "Register a Topic with kind = 'test.rooom' (or bind the model), or fix the name."
    )
    with pytest.raises(ValueError, match=r"no topic kind 'auth\.group' is registered"):
        await apublish(Greet(text="x"), to=Group(name="a model nobody bound"))
    with pytest.raises(TypeError, match=r"Message instance"):
        publish({"t": "x"}, to="broadcast")


async def test_signed_topic_token_subscribes_without_asking(bus_client, user):
    token = topic_token(["test.room:signed", "test.num:7"], user=user)
    client = await bus_client(user=user, path="/ws/", query_string=f"topics={token}")
    assert set((await client.request("topic.list"))["topics"]) >= {"test.room:signed", "test.num:7"}


async def test_a_topic_token_of_another_user_joins_nothing_and_says_why(bus_client, user, bob, caplog):
    # Alice's page token names her own topic; Bob presents it on his connection.
    token = topic_token([user, "test.room:alice"], user=user)
    with caplog.at_level("INFO", logger="channelbus"):
        client = await bus_client(user=bob, query_string=f"topics={token}")
        frame = await client.receive()
    assert frame == {
        "t": "error.subscribe",
        "s": "f",
        "p": {"msg": "The topic token was made for another user.", "topic": ""},
    }
    assert (await client.request("topic.list"))["topics"] == ["broadcast", f"user:{bob.pk}"]
    assert "error.subscribe" in caplog.text
    assert "The topic token was made for another user." in caplog.text
    # Signed out, it joins nothing either (with anonymous connections allowed).
    with override_settings(CHANNELBUS={"ALLOW_ANONYMOUS": True}):
        client = await bus_client(query_string=f"topics={token}")
    assert (await client.receive())["p"]["msg"] == "The topic token was made for another user."
    assert (await client.request("topic.list"))["topics"] == ["broadcast"]


async def test_a_topic_token_made_before_a_password_change_joins_nothing(bus_client, user):
    token = topic_token(["test.room:before"], user=user)
    user.set_password("changed")  # the connection's user object has the new hash
    client = await bus_client(user=user, query_string=f"topics={token}")
    assert (await client.receive())["p"]["msg"] == (
        "The topic token is no longer valid: the password changed since; reload the page."
    )
    assert "test.room:before" not in (await client.request("topic.list"))["topics"]


async def test_a_public_topic_token_joins_for_anyone(bus_client, user, bob):
    token = topic_token(["test.room:public"], public=True)
    for who in (user, bob):
        client = await bus_client(user=who, query_string=f"topics={token}")
        assert "test.room:public" in (await client.request("topic.list"))["topics"]


@pytest.mark.parametrize(("token", "msg"), [("forged", "The topic token is not valid.")])
async def test_forged_topic_token_subscribes_nothing_and_says_why(bus_client, user, token, msg):
    client = await bus_client(user=user, query_string=f"topics={token}")
    frame = await client.receive()
    assert frame == {"t": "error.subscribe", "s": "f", "p": {"msg": msg, "topic": ""}}
    assert (await client.request("topic.list"))["topics"] == ["broadcast", f"user:{user.pk}"]


async def test_expired_topic_token(bus_client, user):
    token = topic_token(["test.room:old"], user=user)
    with override_settings(CHANNELBUS={"TOPIC_TOKEN_MAX_AGE": -1}):
        client = await bus_client(user=user, query_string=f"topics={token}")
    frame = await client.receive()
    assert frame["t"] == "error.subscribe"
    assert "expired" in frame["p"]["msg"]


async def test_recheck_removes_connections_that_lost_access(bus_client, user, bob):
    from channelbus.publishing import arecheck

    note = await Note.objects.acreate(owner=user, text="mine")
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": f"testapp.note:{note.pk}"})
    note.owner = bob
    await note.asave()
    await arecheck(note)
    frame = await client.receive()
    assert frame["t"] == "topic.left"
    assert frame["p"] == {
        "topic": f"testapp.note:{note.pk}",
        "reason": f"You may not subscribe to testapp.note:{note.pk}.",
    }
    await apublish(Greet(text="not for alice any more"), to=note)
    await client.assert_nothing_received()


async def test_keys_are_normalised(bus_client, user):
    client = await bus_client(user=user)
    assert (await client.request("topic.subscribe", {"topic": "test.num:007"}))["topic"] == "test.num:7"
    await apublish(Greet(text="seven"), to="test.num:7")
    assert (await client.receive())["c"] == "test.num:7"


async def test_token_topics_count_toward_the_limit(bus_client, user):
    token = topic_token([f"test.room:t{n}" for n in range(5)], user=user)
    with override_settings(CHANNELBUS={"MAX_TOPICS_PER_CONNECTION": 3}):
        client = await bus_client(user=user, query_string=f"topics={token}")
    assert len((await client.request("topic.list"))["topics"]) == 3


async def test_subscribes_sent_together_respect_the_limit(bus_client, user):
    with override_settings(CHANNELBUS={"MAX_TOPICS_PER_CONNECTION": 3}):
        client = await bus_client(user=user)
    for n in range(4):
        await client.send("topic.subscribe", {"topic": f"test.room:s{n}"}, i=str(n))
    frames = [await client.receive() for _ in range(4)]
    assert sorted(f["t"] for f in frames) == ["error.subscribe"] * 3 + ["topic.subscribed"]
    assert len((await client.request("topic.list"))["topics"]) == 3


async def test_leave_right_after_subscribe_applies_in_order(bus_client, user):
    client = await bus_client(user=user)
    await client.send("topic.subscribe", {"topic": "test.room:quick"}, i="s")
    await client.send("topic.leave", {"topic": "test.room:quick"}, i="l")
    replies = {f["i"]: f["t"] for f in [await client.receive(), await client.receive()]}
    assert replies == {"s": "topic.subscribed", "l": "topic.left"}
    assert "test.room:quick" not in (await client.request("topic.list"))["topics"]


def _publish_from_sync_code_on_the_loop_thread():
    publish(
        Greet(text="scheduled"), to=(name for name in ["test.room:loop"])
    )  # a generator, on_commit default


async def test_publish_from_a_sync_function_inside_the_event_loop(bus_client, user):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "test.room:loop"})
    _publish_from_sync_code_on_the_loop_thread()
    assert (await client.receive())["p"] == {"text": "scheduled"}


async def test_a_user_is_their_user_topic_everywhere(user):
    from channelbus.topics import topic_name, topics_from_token

    assert topic_name(user) == f"user:{user.pk}"
    assert topics_from_token(topic_token([user], user=user), user) == [f"user:{user.pk}"]


def test_a_token_refuses_a_topic_nobody_could_publish_to():
    with pytest.raises(ValueError, match=r"topic_token\(\): no topic kind 'test\.rooom' is registered"):
        topic_token(["test.room:a", "test.rooom:a"], public=True)


def test_a_failed_send_after_commit_is_logged_and_later_callbacks_still_run(transactional_db, caplog):
    import logging

    later = []
    broken_layer = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1"}]},  # nothing listens there
        }
    }
    with override_settings(CHANNEL_LAYERS=broken_layer), caplog.at_level(logging.ERROR), transaction.atomic():
        publish(Greet(text="lost"), to="test.room:x")
        transaction.on_commit(lambda: later.append("ran"))
    assert later == ["ran"]
    assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_refusals_echo_the_name_as_sent(bus_client, user, bob):
    note = await Note.objects.acreate(owner=bob, text="bob's")
    client = await bus_client(user=user)
    for name in (f"testapp.note:00{note.pk}", "testapp.note:0099999"):
        with pytest.raises(RequestFailed) as exc:
            await client.request("topic.subscribe", {"topic": name})
        assert exc.value.payload == {"msg": f"You may not subscribe to {name}.", "topic": name}


async def test_key_pattern_replaces_the_slug_rule(bus_client, user):
    client = await bus_client(user=user)
    for name in ("test.short:-x", "test.short:a-b-c"):  # "-x" is no default slug; this pattern allows it
        assert (await client.request("topic.subscribe", {"topic": name}))["topic"] == name


@override_settings(
    AUTHENTICATION_BACKENDS=[
        "django.contrib.auth.backends.ModelBackend",
        "tests.testapp.topics.SharedNotesBackend",
    ]
)
async def test_the_default_model_permission_asks_object_permission_backends(bus_client, user, bob):
    shared = await Note.objects.acreate(owner=user, text="shared")
    secret = await Note.objects.acreate(owner=user, text="secret")
    bob_tab = await bus_client(user=bob)  # no model-level permission: only the backend's per-object answer
    reply = await bob_tab.request("topic.subscribe", {"topic": f"test.plainnote:{shared.pk}"})
    assert reply["topic"] == f"test.plainnote:{shared.pk}"
    with pytest.raises(RequestFailed) as exc:
        await bob_tab.request("topic.subscribe", {"topic": f"test.plainnote:{secret.pk}"})
    assert exc.value.payload["msg"] == f"You may not subscribe to test.plainnote:{secret.pk}."
    await apublish(Greet(text="to the shared note"), to=f"test.plainnote:{shared.pk}")
    await apublish(Greet(text="to the secret note"), to=f"test.plainnote:{secret.pk}")
    assert (await bob_tab.receive())["p"] == {"text": "to the shared note"}
    await bob_tab.assert_nothing_received()


async def test_a_publish_is_encoded_once_whatever_the_number_of_subscribers(bus_client, user, monkeypatch):
    import orjson

    from channelbus.protocol import envelope
    from channelbus.publishing import api

    tabs = [await bus_client(user=user) for _ in range(50)]
    for tab in tabs:
        epoch = (await tab.request("topic.subscribe", {"topic": "test.room:once"}))["epoch"]
    calls = {"encode": 0, "dumps": 0}
    real_encode, real_dumps = api.encode, orjson.dumps

    def counting_encode(*args, **kwargs):
        calls["encode"] += 1
        return real_encode(*args, **kwargs)

    def counting_dumps(*args, **kwargs):
        calls["dumps"] += 1
        return real_dumps(*args, **kwargs)

    monkeypatch.setattr(api, "encode", counting_encode)  # the publish path's encoder
    monkeypatch.setattr(orjson, "dumps", counting_dumps)  # JSON made anywhere else
    monkeypatch.setattr(envelope, "_dumps", counting_dumps)  # the encoder's own reference to orjson.dumps
    await apublish(Greet(text="once"), to="test.room:once")
    for tab in tabs:
        once = {"t": "test.greeting", "p": {"text": "once"}, "c": "test.room:once", "n": 1, "e": epoch}
        assert await tab.receive() == once
    assert calls["encode"] == 1
    assert calls["dumps"] == 1  # the one encode's JSON; nothing per subscriber


async def test_access_lost_between_the_check_and_the_join_is_caught_by_the_second_check(bus_client, user):
    """A recheck that runs while a subscribe is between its check and its join cannot see the new
    follower: the check made again once joined refuses it, and it follows nothing."""
    from tests.testapp import topics

    client = await bus_client(user=user)
    topics.GATE_ANSWERS[:] = [True, False]  # allowed before the join, no longer after it
    with pytest.raises(RequestFailed) as exc:
        await client.request("topic.subscribe", {"topic": "test.gate:a"})
    assert exc.value.payload["msg"] == "You may not subscribe to test.gate:a."
    assert topics.GATE_ANSWERS == []  # both checks ran
    assert "test.gate:a" not in (await client.request("topic.list"))["topics"]
    await apublish(Greet(text="not for you"), to="test.gate:a")
    await client.assert_nothing_received(0.2)
    topics.GATE_ANSWERS[:] = [True, True]
    assert (await client.request("topic.subscribe", {"topic": "test.gate:a"}))["topic"] == "test.gate:a"
    assert topics.GATE_ANSWERS == []

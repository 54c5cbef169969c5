"""Topic kinds (channelbus.topics.kinds): resolving keys, the kind registry, topic names, built-in kinds."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission

from channelbus.protocol import SubscribeRefused
from channelbus.topics.kinds import (
    MAX_TOPIC_LENGTH,
    BroadcastTopic,
    Topic,
    TopicRegistry,
    UserTopic,
    topic_kinds,
    topic_name,
)
from tests.testapp.models import Note
from tests.testapp.topics import Numbered, PlainNote, Room, ShortRoom


def refusal(call, *args):
    """The (msg, topic) of the SubscribeRefused that ``call(*args)`` raises."""
    with pytest.raises(SubscribeRefused) as exc:
        call(*args)
    return exc.value.msg, exc.value.details["topic"]


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user(username="bob", password="x")


# ------------------------------------------------------------------------------ Topic.resolve


def test_a_kind_without_key():
    topic = BroadcastTopic.resolve(None)
    assert isinstance(topic, BroadcastTopic)
    assert (topic.key, topic.raw_key, topic.name) == (None, None, "broadcast")
    assert refusal(BroadcastTopic.resolve, "1") == ("Topic kind 'broadcast' takes no key.", "broadcast:1")


@pytest.mark.parametrize(("raw_key", "key", "name"), [("7", 7, "test.num:7"), ("007", 7, "test.num:7")])
def test_int_keys_are_normalised(raw_key, key, name):
    topic = Numbered.resolve(raw_key)
    assert isinstance(topic, Numbered)
    assert topic.key == key
    assert topic.name == name


@pytest.mark.parametrize("raw_key", ["abc", "-1", "1.5", "²", "٣", " 1", "1" * 20])
def test_int_keys_refused(raw_key):
    assert refusal(Numbered.resolve, raw_key) == (
        "The key of 'test.num' must be a number.",
        f"test.num:{raw_key}",
    )


def test_the_longest_int_key_is_accepted():
    assert Numbered.resolve("9" * 19).key == int("9" * 19)


@pytest.mark.parametrize("raw_key", [None, ""])
def test_a_kind_with_key_needs_one(raw_key):
    assert refusal(Room.resolve, raw_key) == (
        "Topic kind 'test.room' needs a key: test.room:<key>.",
        "test.room",
    )
    assert refusal(Numbered.resolve, raw_key)[0] == "Topic kind 'test.num' needs a key: test.num:<key>."


@pytest.mark.parametrize("raw_key", ["lobby", "a", "room_1-b", "0" + "x" * 63])
def test_slug_keys(raw_key):
    topic = Room.resolve(raw_key)
    assert topic.key == raw_key
    assert topic.name == f"test.room:{raw_key}"


@pytest.mark.parametrize("raw_key", ["Lobby", "-x", "_x", "a b", "a:b", "é", "x" * 65, "lobby\n"])
def test_slug_keys_refused(raw_key):
    assert refusal(Room.resolve, raw_key) == (
        "The key of 'test.room' must be a slug: lower-case letters, digits, '-' and '_'.",
        f"test.room:{raw_key}",
    )


def test_key_pattern_replaces_the_slug_rule():
    assert ShortRoom.resolve("-x").name == "test.short:-x"  # no default slug, but the pattern allows it
    for raw_key in ("a_b", "abcdefghi", "A"):
        assert refusal(ShortRoom.resolve, raw_key) == (
            "The key of 'test.short' must match [a-z0-9-]{1,8}.",
            f"test.short:{raw_key}",
        )


def test_a_compiled_key_pattern_is_shown_as_its_pattern():
    class Coded(Topic):
        kind = "test.coded"
        key_type = "slug"
        key_pattern = re.compile(r"[A-Z]{3}")

    assert Coded.resolve("ABC").key == "ABC"
    assert refusal(Coded.resolve, "ABCD") == (
        "The key of 'test.coded' must match [A-Z]{3}.",
        "test.coded:ABCD",
    )


def test_model_keys_look_the_object_up(user):
    note = Note.objects.create(owner=user, text="hi")
    topic = PlainNote.resolve(str(note.pk))
    assert topic.key == note
    assert topic.name == f"test.plainnote:{note.pk}"
    assert PlainNote.resolve(f"00{note.pk}").name == f"test.plainnote:{note.pk}"  # the object's own pk


@pytest.mark.parametrize("raw_key", ["999999", "abc", "-"])
def test_missing_and_malformed_model_keys_get_the_answer_of_a_refusal(db, raw_key):
    assert refusal(PlainNote.resolve, raw_key) == (
        f"You may not subscribe to test.plainnote:{raw_key}.",
        f"test.plainnote:{raw_key}",
    )


def test_an_unsupported_key_type_is_a_programming_error():
    class Floating(Topic):
        kind = "test.float"
        key_type = float

    with pytest.raises(
        TypeError, match=r"key_type must be None, int, 'slug' or a model class, not <class 'float'>"
    ):
        Floating.resolve("1.5")


def test_topic_instances(user):
    room = Room("lobby")
    assert room.name == "test.room:lobby"
    assert repr(room) == "<Room test.room:lobby>"
    assert Numbered(7).raw_key == "7"
    assert room.initial_state(user) == {"room": "lobby", "for": "alice"}
    assert Topic().initial_state(AnonymousUser()) is None
    assert Topic.auto_key(AnonymousUser()) is None


# ------------------------------------------------------------------------------ TopicRegistry


def test_parse_splits_kind_and_key():
    assert topic_kinds.parse("test.room:lobby") == (Room, "lobby")
    assert topic_kinds.parse("broadcast") == (BroadcastTopic, None)
    assert topic_kinds.parse("test.room:") == (Room, "")
    assert topic_kinds.parse("test.room:a:b") == (Room, "a:b")  # the key keeps what follows the first ':'


@pytest.mark.parametrize("name", ["", "x" * (MAX_TOPIC_LENGTH + 1), 42, None, ["broadcast"]])
def test_parse_refuses_what_is_no_topic_name(name):
    msg, topic = refusal(topic_kinds.parse, name)
    assert msg == "A topic name is a string of 1 to 200 characters."
    assert topic == str(name)[:200]


def test_parse_refuses_an_unknown_kind():
    assert refusal(topic_kinds.parse, "nosuch.kind:1") == (
        "Unknown topic kind 'nosuch.kind'.",
        "nosuch.kind:1",
    )


def test_registry_resolve_parses_then_resolves():
    topic = topic_kinds.resolve("test.num:042")
    assert isinstance(topic, Numbered)
    assert topic.name == "test.num:42"
    assert refusal(topic_kinds.resolve, "test.room:Bad")[1] == "test.room:Bad"


def test_require_kind():
    assert topic_kinds.require_kind("test.room:a", "publish(to=...)") == "test.room:a"
    assert topic_kinds.require_kind("broadcast", "x()") == "broadcast"
    with pytest.raises(ValueError) as exc:
        topic_kinds.require_kind("test.rooom:a", "caller()")
    assert str(exc.value) == (
        "caller(): no topic kind 'test.rooom' is registered, so nobody can follow 'test.rooom:a'. "
        "Register a Topic with kind = 'test.rooom' (or bind the model), or fix the name."
    )


def test_auto_join_kinds():
    registry = TopicRegistry()

    class Joined(Topic):
        kind = "test.joined"
        auto_join = True

    class Asked(Topic):
        kind = "test.asked"

    registry.register(Joined)
    registry.register(Asked)
    assert registry.auto_join_kinds() == [Joined]
    assert {UserTopic, BroadcastTopic} <= set(topic_kinds.auto_join_kinds())
    assert Room not in topic_kinds.auto_join_kinds()


def test_registry_conflicts_replace_and_unregister():
    registry = TopicRegistry()

    class First(Topic):
        kind = "test.same"

    class Second(Topic):
        kind = "test.same"

    assert registry.register(First) is First
    assert registry.register(Second) is Second
    assert registry.get("test.same") is First
    assert registry.conflicts == [("test.same", First, Second)]
    registry.register(replace=True)(Second)
    assert registry.get("test.same") is Second
    assert len(registry.conflicts) == 1
    assert "test.same" in registry
    assert list(registry) == ["test.same"]
    assert registry.unregister("test.same") is Second
    assert registry.unregister("test.same") is None
    assert registry.get("test.same") is None
    assert "test.same" not in registry


def test_the_same_kind_imported_again_is_no_conflict():
    def define():
        class Again(Topic):
            kind = "test.again"

        return Again

    registry = TopicRegistry()
    first, second = define(), define()
    registry.register(first)
    registry.register(second)
    assert registry.conflicts == []
    assert registry.get("test.again") is second


@pytest.mark.parametrize("bad", [object, "test.room", Room("x")])
def test_register_refuses_what_is_no_topic_class(bad):
    with pytest.raises(TypeError, match="must be a Topic subclass with a lower-case dotted 'kind'"):
        TopicRegistry().register(bad)


@pytest.mark.parametrize("kind", ["", "Upper.case", "has space"])
def test_register_refuses_a_bad_kind(kind):
    cls = type("BadKind", (Topic,), {"kind": kind})
    registry = TopicRegistry()
    with pytest.raises(TypeError, match="lower-case dotted 'kind'"):
        registry.register(cls)
    assert list(registry) == []


# ------------------------------------------------------------------------------ topic_name


def test_topic_name_of_each_target(user):
    note = Note.objects.create(owner=user, text="hi")
    assert topic_name(Room("lobby")) == "test.room:lobby"
    assert topic_name(BroadcastTopic()) == "broadcast"
    assert topic_name("anything:as-is") == "anything:as-is"
    assert topic_name(user) == f"user:{user.pk}"
    assert topic_name(note) == f"testapp.note:{note.pk}"
    assert topic_name(PlainNote(note)) == f"test.plainnote:{note.pk}"


@pytest.mark.parametrize("target", [42, None, object(), ["broadcast"]])
def test_topic_name_refuses_other_objects(target):
    with pytest.raises(TypeError, match="Cannot tell the topic of"):
        topic_name(target)


# ------------------------------------------------------------------------------ built-in kinds and allowed


def test_user_topic_only_allows_its_own_user(user, bob):
    topic = UserTopic.resolve(str(user.pk))
    assert topic.name == f"user:{user.pk}"
    assert topic.allowed(user) is True
    assert topic.allowed(bob) is False
    assert topic.allowed(AnonymousUser()) is False


def test_user_topic_auto_key(user):
    assert UserTopic.auto_join is True
    assert UserTopic.auto_key(user) == str(user.pk)
    assert UserTopic.auto_key(AnonymousUser()) is False  # signed-out connections join no user topic


def test_broadcast_topic_allows_everyone_and_joins_without_key(user):
    topic = BroadcastTopic.resolve(None)
    assert topic.allowed(AnonymousUser()) is True
    assert topic.allowed(user) is True
    assert BroadcastTopic.auto_join is True
    assert BroadcastTopic.auto_key(user) is None


def test_default_allowed_wants_a_signed_in_user(user):
    assert Room.resolve("a").allowed(user) is True
    assert Room.resolve("a").allowed(AnonymousUser()) is False


def test_default_allowed_for_model_keys_asks_the_view_permission(user, bob):
    note = Note.objects.create(owner=user, text="hi")
    topic = PlainNote.resolve(str(note.pk))
    assert topic.allowed(user) is False  # owning it is not the default rule
    bob.user_permissions.add(Permission.objects.get(codename="view_note"))
    bob = get_user_model().objects.get(pk=bob.pk)  # no cached permissions
    assert topic.allowed(bob) is True

"""Topic access (channelbus.topics.access): check_access and confirm_access."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from channelbus.protocol import SubscribeRefused
from channelbus.topics import BroadcastTopic
from channelbus.topics.access import check_access, confirm_access
from tests.testapp import topics
from tests.testapp.models import Note
from tests.testapp.topics import Numbered, Room


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user(username="bob", password="x")


@pytest.fixture
def gate():
    """The answers of ``test.gate``'s ``allowed``, emptied again after the test."""
    yield topics.GATE_ANSWERS
    topics.GATE_ANSWERS.clear()


def refused(name, user):
    with pytest.raises(SubscribeRefused) as exc:
        check_access(name, user)
    return exc.value


def test_check_access_returns_the_resolved_topic(user):
    topic = check_access("test.num:007", user)
    assert isinstance(topic, Numbered)
    assert topic.key == 7
    assert topic.name == "test.num:7"
    assert isinstance(check_access("broadcast", AnonymousUser()), BroadcastTopic)
    room = check_access("test.room:lobby", user)
    assert isinstance(room, Room)
    assert room.key == "lobby"


def test_refusal_names_the_topic_as_sent(user, bob):
    for name in (f"user:{bob.pk}", f"user:00{bob.pk}"):
        exc = refused(name, user)
        assert exc.type == "error.subscribe"
        assert exc.payload() == {"msg": f"You may not subscribe to {name}.", "topic": name}


def test_a_signed_out_user_is_refused_a_signed_in_topic():
    exc = refused("test.room:lobby", AnonymousUser())
    assert exc.payload() == {"msg": "You may not subscribe to test.room:lobby.", "topic": "test.room:lobby"}


def test_missing_and_refused_objects_get_the_same_answer(user, bob):
    secret = Note.objects.create(owner=bob, text="bob's")
    answers = {}
    for label, pk in (("refused", str(secret.pk)), ("missing", "999999"), ("malformed", "x1")):
        name = f"test.plainnote:{pk}"
        exc = refused(name, user)
        assert exc.payload() == {"msg": f"You may not subscribe to {name}.", "topic": name}
        answers[label] = (type(exc), exc.msg.replace(name, "<name>"), set(exc.details))
    assert answers["refused"] == answers["missing"] == answers["malformed"]


def test_check_access_passes_on_what_resolving_refuses(user):
    assert refused("nosuch.kind:1", user).msg == "Unknown topic kind 'nosuch.kind'."
    assert refused("test.num:abc", user).msg == "The key of 'test.num' must be a number."


def test_confirm_access_returns_the_initial_state(user):
    assert confirm_access("test.room:lobby", user) == {"room": "lobby", "for": "alice"}
    assert confirm_access("broadcast", user) is None
    assert confirm_access(f"user:{user.pk}", user) is None


def test_confirm_access_checks_again(user, gate):
    gate[:] = [False]
    with pytest.raises(SubscribeRefused) as exc:
        confirm_access("test.gate:a", user)
    assert exc.value.msg == "You may not subscribe to test.gate:a."
    assert gate == []  # the check ran
    with pytest.raises(SubscribeRefused):
        confirm_access("test.room:lobby", AnonymousUser())

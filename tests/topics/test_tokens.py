"""Signed topic tokens (channelbus.topics.tokens): topic_token and topics_from_token."""

import time

import pytest
from django.core import signing
from django.test import override_settings

from channelbus.conf import settings
from channelbus.protocol import SubscribeRefused
from channelbus.topics.tokens import _TOKEN_SALT, topic_token, topics_from_token
from tests.testapp.models import Note
from tests.testapp.topics import Room


class PastSigner(signing.TimestampSigner):
    """Signs as ``seconds`` ago."""

    def __init__(self, seconds, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def timestamp(self):
        return signing.b62_encode(int(time.time()) - self.seconds)


def signed(value, seconds_ago=0):
    """A token for ``value`` as topic_token signs it, made ``seconds_ago``."""
    return PastSigner(seconds_ago, salt=_TOKEN_SALT).sign_object(value, compress=True)


def refusal(token):
    with pytest.raises(SubscribeRefused) as exc:
        topics_from_token(token)
    assert exc.value.details == {"topic": ""}
    return exc.value.msg


def test_round_trip_of_names_topics_users_and_models(user):
    note = Note.objects.create(owner=user, text="hi")
    token = topic_token(["test.room:a", Room("b"), user, note, "broadcast"])
    assert topics_from_token(token) == [
        "test.room:a",
        "test.room:b",
        f"user:{user.pk}",
        f"testapp.note:{note.pk}",
        "broadcast",
    ]


def test_an_empty_token_round_trips():
    assert topics_from_token(topic_token([])) == []
    assert topics_from_token(topic_token(n for n in ["test.num:1"])) == ["test.num:1"]


def test_a_token_older_than_the_max_age_has_expired():
    assert settings.TOPIC_TOKEN_MAX_AGE == 12 * 3600
    assert topics_from_token(signed(["test.room:a"], seconds_ago=11 * 3600)) == ["test.room:a"]
    assert refusal(signed(["test.room:a"], seconds_ago=13 * 3600)) == (
        "The topic token has expired; reload the page."
    )


def test_the_max_age_setting_is_read_when_checking():
    token = topic_token(["test.room:a"])
    with override_settings(CHANNELBUS={"TOPIC_TOKEN_MAX_AGE": -1}):
        assert refusal(token) == "The topic token has expired; reload the page."
    assert topics_from_token(token) == ["test.room:a"]


def test_a_tampered_token_is_not_valid():
    token = topic_token(["test.room:a"])
    body, _, signature = token.rpartition(":")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert refusal(f"{body}:{flipped}") == "The topic token is not valid."
    assert refusal("forged") == "The topic token is not valid."
    assert refusal("") == "The topic token is not valid."


def test_a_token_signed_for_something_else_is_not_valid():
    other = signing.dumps(["test.room:a"], salt="another.salt", compress=True)
    assert refusal(other) == "The topic token is not valid."


@pytest.mark.parametrize("payload", [{"topics": ["test.room:a"]}, "test.room:a", [1, 2], ["ok", None], None])
def test_a_signed_payload_that_is_no_list_of_names_is_not_valid(payload):
    assert refusal(signed(payload)) == "The topic token is not valid."


def test_an_unknown_kind_is_refused_when_signing():
    with pytest.raises(ValueError) as exc:
        topic_token(["test.room:a", "nosuch.kind:1"])
    assert str(exc.value).startswith(
        "topic_token(): no topic kind 'nosuch.kind' is registered, so nobody can follow 'nosuch.kind:1'."
    )


def test_what_has_no_topic_cannot_be_signed():
    with pytest.raises(TypeError, match="Cannot tell the topic of"):
        topic_token([object()])

"""Signed topic tokens (channelbus.topics.tokens): topic_token and topics_from_token, and the session tag
that binds a token to its user's password (session_tag, session_tag_matches)."""

import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.test import override_settings

from channelbus.conf import settings
from channelbus.protocol import SubscribeRefused
from channelbus.topics.tokens import (
    _TOKEN_SALT,
    session_tag,
    session_tag_matches,
    topic_token,
    topics_from_token,
)
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


def refusal(token, user=None):
    with pytest.raises(SubscribeRefused) as exc:
        topics_from_token(token, user)
    assert exc.value.details == {"topic": ""}
    return exc.value.msg


def test_round_trip_of_names_topics_users_and_models(user):
    note = Note.objects.create(owner=user, text="hi")
    token = topic_token(["test.room:a", Room("b"), user, note, "broadcast"], user=user)
    assert topics_from_token(token, user) == [
        "test.room:a",
        "test.room:b",
        f"user:{user.pk}",
        f"testapp.note:{note.pk}",
        "broadcast",
    ]


def test_an_empty_token_round_trips():
    assert topics_from_token(topic_token([], public=True), None) == []
    assert topics_from_token(topic_token((n for n in ["test.num:1"]), public=True), None) == ["test.num:1"]


def test_a_token_older_than_the_max_age_has_expired():
    assert settings.TOPIC_TOKEN_MAX_AGE == 12 * 3600
    assert topics_from_token(signed({"t": ["test.room:a"]}, seconds_ago=11 * 3600), None) == ["test.room:a"]
    assert refusal(signed({"t": ["test.room:a"]}, seconds_ago=13 * 3600)) == (
        "The topic token has expired; reload the page."
    )


def test_the_max_age_setting_is_read_when_checking():
    token = topic_token(["test.room:a"], public=True)
    with override_settings(CHANNELBUS={"TOPIC_TOKEN_MAX_AGE": -1}):
        assert refusal(token) == "The topic token has expired; reload the page."
    assert topics_from_token(token, None) == ["test.room:a"]


def test_a_tampered_token_is_not_valid():
    token = topic_token(["test.room:a"], public=True)
    body, _, signature = token.rpartition(":")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert refusal(f"{body}:{flipped}") == "The topic token is not valid."
    assert refusal("forged") == "The topic token is not valid."
    assert refusal("") == "The topic token is not valid."


def test_a_token_signed_for_something_else_is_not_valid():
    other = signing.dumps({"t": ["test.room:a"]}, salt="another.salt", compress=True)
    assert refusal(other) == "The topic token is not valid."


@pytest.mark.parametrize(
    "payload",
    [{"topics": ["test.room:a"]}, {"t": "test.room:a"}, {"t": [1, 2]}, {"t": ["ok", None]}, "x", None],
)
def test_a_signed_payload_that_is_no_list_of_names_is_not_valid(payload):
    assert refusal(signed(payload)) == "The topic token is not valid."


def test_an_unknown_kind_is_refused_when_signing():
    with pytest.raises(ValueError) as exc:
        topic_token(["test.room:a", "nosuch.kind:1"], public=True)
    assert str(exc.value).startswith(
        "topic_token(): no topic kind 'nosuch.kind' is registered, so nobody can follow 'nosuch.kind:1'."
    )


def test_what_has_no_topic_cannot_be_signed():
    with pytest.raises(TypeError, match="Cannot tell the topic of"):
        topic_token([object()], public=True)


def test_a_token_says_whom_it_is_for():
    with pytest.raises(ValueError) as exc:
        topic_token(["test.room:a"])
    assert str(exc.value) == (
        "topic_token(): say whom the token is for: user=request.user (the token then works only for that "
        "user), or public=True (anyone who has it may follow these topics)."
    )


def test_a_token_made_for_a_user_works_for_that_user_only(user, django_user_model):
    bob = django_user_model.objects.create_user(username="bob", password="x")
    token = topic_token([user, "test.room:a"], user=user)
    assert topics_from_token(token, user) == [f"user:{user.pk}", "test.room:a"]
    assert refusal(token, bob) == "The topic token was made for another user."
    assert refusal(token, AnonymousUser()) == "The topic token was made for another user."
    assert refusal(token, None) == "The topic token was made for another user."
    # The same pk on a user whose password changed since: refused too.
    user.set_password("new password")
    assert (
        refusal(token, user)
        == "The topic token is no longer valid: the password changed since; reload the page."
    )


def test_a_public_token_or_one_made_for_a_signed_out_visitor_works_for_anyone(user):
    for token in (
        topic_token(["test.room:a"], public=True),
        topic_token(["test.room:a"], user=AnonymousUser()),
    ):
        assert topics_from_token(token, user) == ["test.room:a"]
        assert topics_from_token(token, AnonymousUser()) == ["test.room:a"]
        assert topics_from_token(token, None) == ["test.room:a"]
    # public=True wins over a user: nothing of the user goes into the token.
    assert signing.loads(topic_token(["test.room:a"], user=user, public=True), salt=_TOKEN_SALT) == {
        "t": ["test.room:a"]
    }


def test_a_token_of_channelbus_0_1_is_refused(user):
    # 0.1 signed a bare list of names, bound to nobody: it could be replayed by anyone.
    assert refusal(signed([f"user:{user.pk}"]), user) == (
        "The topic token was made by an older version of the server; reload the page."
    )


def test_a_token_carries_a_digest_of_the_session_hash_not_the_hash(user):
    data = signing.loads(topic_token(["test.room:a"], user=user), salt=_TOKEN_SALT)
    assert data == {"t": ["test.room:a"], "u": str(user.pk), "h": session_tag(user)}
    assert len(data["h"]) == 32
    assert data["h"] not in user.get_session_auth_hash()


def test_the_session_tag_follows_the_password_and_the_key_fallbacks(user):
    tag = session_tag(user)
    assert session_tag_matches(user, tag)
    assert not session_tag_matches(user, None)
    assert not session_tag_matches(user, 7)
    assert not session_tag_matches(user, tag[:-1] + ("0" if tag[-1] != "0" else "1"))
    # A key rotation: the old key moves to SECRET_KEY_FALLBACKS, and tokens made with it still work.
    with override_settings(SECRET_KEY="a new key", SECRET_KEY_FALLBACKS=["tests-only"]):
        assert session_tag(user) != tag
        assert session_tag_matches(user, tag)
    with override_settings(SECRET_KEY="a new key", SECRET_KEY_FALLBACKS=[]):
        assert not session_tag_matches(user, tag)
    user.set_password("changed")
    assert not session_tag_matches(user, tag)


def test_a_bound_token_survives_a_key_rotation_until_the_old_key_is_dropped(user):
    token = topic_token(["test.room:a"], user=user)
    with override_settings(SECRET_KEY="a new key", SECRET_KEY_FALLBACKS=["tests-only"]):
        assert topics_from_token(token, user) == ["test.room:a"]
    with override_settings(SECRET_KEY="a new key", SECRET_KEY_FALLBACKS=[]):
        assert refusal(token, user) == "The topic token is not valid."


class NoHashUser:
    """A user object without get_session_auth_hash (a custom user model not based on AbstractBaseUser)."""

    is_authenticated = True
    pk = 5


def test_a_user_without_a_session_hash_is_bound_by_pk_only():
    user = NoHashUser()
    assert session_tag(user) is None
    assert session_tag_matches(user, None)
    assert not session_tag_matches(user, "0" * 32)
    token = topic_token(["test.room:a"], user=user)
    assert signing.loads(token, salt=_TOKEN_SALT) == {"t": ["test.room:a"], "u": "5"}
    assert topics_from_token(token, user) == ["test.room:a"]

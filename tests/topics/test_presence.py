"""Who a presence member is: the key of a user, the display name (never an email), a kind's info
function, and the bound on the info's size."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from channelbus.topics.presence import display_name, member_info, member_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user(username="alice", email="alice@example.com")


def test_a_member_is_a_signed_in_user_keyed_by_pk(alice):
    assert member_key(alice) == str(alice.pk)
    assert member_key(AnonymousUser()) is None
    assert member_key(None) is None


def test_the_display_name_is_the_full_name_else_the_username_never_the_email(alice):
    assert display_name(alice) == "alice"
    alice.first_name, alice.last_name = "Alice", "Liddell"
    assert display_name(alice) == "Alice Liddell"
    email_named = get_user_model()(pk=7, username="someone@example.com")
    assert display_name(email_named) == "user 7"


def test_default_info_is_the_display_name(alice):
    assert member_info(True, alice, "room") == {"name": "alice"}
    assert "@" not in str(member_info(True, alice, "room"))


def test_a_kind_s_function_gives_the_info(alice):
    assert member_info(lambda user: {"name": user.username, "role": "admin"}, alice, "room") == {
        "name": "alice",
        "role": "admin",
    }


@pytest.mark.parametrize(
    ("function", "logged"),
    [
        (lambda user: ["not", "a", "dict"], "is a list, not a dict"),
        (lambda user: {"when": object()}, "failed"),
        (lambda user: 1 / 0, "failed"),
        (lambda user: {"bio": "x" * 2000}, "PRESENCE_MAX_INFO_BYTES is 1024"),
    ],
)
def test_bad_or_too_big_info_is_logged_and_sent_empty(alice, caplog, function, logged):
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        assert member_info(function, alice, "room") == {}
    assert logged in caplog.text
    assert f"user {alice.pk} in room" in caplog.text

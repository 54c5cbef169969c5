"""Shared fixtures: the channelbus pytest plugin, users."""

import pytest

pytest_plugins = ["channelbus.testing"]


@pytest.fixture
def user(db):
    """A signed-in user."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="alice", password="x")

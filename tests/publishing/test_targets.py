"""Publish targets (channelbus.publishing.targets): resolve_targets and exclude_address."""

from types import SimpleNamespace

import pytest

from channelbus.messages import Metadata
from channelbus.publishing.targets import exclude_address, resolve_targets
from tests.testapp.messages import Greet
from tests.testapp.models import Note
from tests.testapp.topics import Room


def test_one_topic_name():
    assert resolve_targets("test.room:lobby") == (["test.room:lobby"], [])
    assert resolve_targets("broadcast") == (["broadcast"], [])


def test_one_topic_object():
    assert resolve_targets(Room("lobby")) == (["test.room:lobby"], [])


def test_one_address():
    assert resolve_targets("local|abc") == ([], ["local|abc"])


def test_a_user_and_a_model_instance(user):
    note = Note.objects.create(owner=user, text="hi")
    assert resolve_targets(user) == ([f"user:{user.pk}"], [])
    assert resolve_targets(note) == ([f"testapp.note:{note.pk}"], [])


def test_a_mixed_list_keeps_its_order_within_each_kind(user):
    to = ["test.room:b", "local|1", user, Room("a"), "channelbus.hub.x!y|2", "broadcast"]
    assert resolve_targets(to) == (
        ["test.room:b", f"user:{user.pk}", "test.room:a", "broadcast"],
        ["local|1", "channelbus.hub.x!y|2"],
    )


@pytest.mark.parametrize(
    "to",
    [
        ("test.room:a", "local|1"),
        (name for name in ["test.room:a", "local|1"]),
        iter(["test.room:a", "local|1"]),
    ],
)
def test_any_iterable(to):
    assert resolve_targets(to) == (["test.room:a"], ["local|1"])


def test_nothing_to_send_to():
    assert resolve_targets([]) == ([], [])


def test_a_topic_nobody_can_follow_is_a_value_error():
    with pytest.raises(ValueError) as exc:
        resolve_targets(["test.room:a", "test.rooom:a"])
    assert str(exc.value).startswith("publish(to=...): no topic kind 'test.rooom' is registered")


@pytest.mark.parametrize("to", [42, None, [object()], ["test.room:a", 3.5]])
def test_anything_else_is_a_type_error(to):
    with pytest.raises(TypeError) as exc:
        resolve_targets(to)
    assert str(exc.value).startswith(
        "publish(to=...) takes topic names, Topic objects, users, model instances or connection "
        "addresses, not "
    )
    assert exc.value.__cause__ is None
    assert exc.value.__suppress_context__


def test_exclude_address():
    assert exclude_address(None) is None
    assert exclude_address("local|abc") == "local|abc"
    incoming = Greet(text="hi", meta=Metadata(channel_name="local|sender"))
    assert exclude_address(incoming) == "local|sender"
    assert exclude_address(Greet(text="built in code")) is None
    assert exclude_address(SimpleNamespace(channel_name="local|consumer")) == "local|consumer"
    assert exclude_address(object()) is None

"""Message registries (channelbus.messages.registry): registering, conflicts, lookup and the list of them."""

import gc

import pytest

from channelbus.messages import Message
from channelbus.messages.control import Ping, Pong
from channelbus.messages.registry import Registry, all_registries, incoming, outgoing


class Alpha(Message):
    name = "reg.alpha"


class Beta(Message):
    name = "reg.beta"


def twin_class() -> type[Message]:
    """A class defined anew on each call, as when its module is imported a second time (autoreload)."""

    class Twin(Message):
        name = "reg.twin"

    return Twin


def test_register_returns_the_class_and_looks_it_up_by_name():
    registry = Registry("lookup")
    assert registry.register(Alpha) is Alpha
    assert registry.register(Beta) is Beta
    assert registry.get("reg.alpha") is Alpha
    assert registry.get("reg.nope") is None
    assert "reg.beta" in registry
    assert "reg.nope" not in registry
    assert list(registry) == ["reg.alpha", "reg.beta"]
    assert len(registry) == 2
    assert registry.classes() == [Alpha, Beta]
    assert repr(registry) == "<Registry lookup: 2 types>"


def test_register_as_a_decorator_with_and_without_arguments():
    registry = Registry("decorator")

    @registry.register
    class Plain(Message):
        name = "reg.plain"

    @registry.register(replace=True)
    class Replacing(Message):
        name = "reg.plain"

    assert Plain.name == "reg.plain"  # the decorator hands the class back
    assert registry.get("reg.plain") is Replacing
    assert registry.conflicts == []


def test_a_different_class_under_a_taken_name_is_a_recorded_conflict():
    registry = Registry("conflicts")
    registry.register(Alpha)

    class Impostor(Message):
        name = "reg.alpha"

    assert registry.register(Impostor) is Impostor
    assert registry.get("reg.alpha") is Alpha  # the first one stays
    assert registry.conflicts == [("reg.alpha", Alpha, Impostor)]


def test_replace_true_replaces_without_a_conflict():
    registry = Registry("replace")
    registry.register(Alpha)

    class Better(Message):
        name = "reg.alpha"

    registry.register(Better, replace=True)
    assert registry.get("reg.alpha") is Better
    assert registry.classes() == [Better]
    assert registry.conflicts == []


def test_unregister_returns_the_removed_class():
    registry = Registry("unregister")
    registry.register(Alpha)
    assert registry.unregister("reg.alpha") is Alpha
    assert registry.unregister("reg.alpha") is None
    assert registry.get("reg.alpha") is None  # the fast per-instance get sees the removal
    assert "reg.alpha" not in registry
    assert len(registry) == 0
    registry.register(Alpha)  # and the name is free again
    assert registry.get("reg.alpha") is Alpha
    assert registry.conflicts == []


def test_the_same_class_imported_again_is_no_conflict():
    registry = Registry("reimport")
    first, second = twin_class(), twin_class()
    assert first is not second
    assert (first.__module__, first.__qualname__) == (second.__module__, second.__qualname__)
    registry.register(first)
    registry.register(second)
    assert registry.conflicts == []
    assert registry.get("reg.twin") is second  # the newer definition is the one used


def test_all_registries_lists_incoming_and_outgoing_first_then_the_others_by_name():
    later, earlier = Registry("zz registry"), Registry("aa registry")
    found = all_registries()
    assert found[:2] == [incoming, outgoing]
    assert found.index(earlier) < found.index(later)
    names = [r.name for r in found[2:]]
    assert names == sorted(names)
    del later, earlier, found
    gc.collect()
    assert not {"zz registry", "aa registry"} & {r.name for r in all_registries()}  # weakly held


def test_built_in_control_messages_are_registered():
    assert incoming.get("s.ping") is Ping
    assert outgoing.get("s.pong") is Pong


def test_allows_anonymous_ignores_control_types():
    registry = Registry("anonymous")

    class AnonymousControl(Message):
        name = "reg.anon_control"
        control = True
        allow_anonymous = True

    class SignedInOnly(Message):
        name = "reg.signed_in"

    registry.register(AnonymousControl)
    registry.register(SignedInOnly)
    registry.register(Ping)
    assert registry.allows_anonymous() is False

    class AnonymousOk(Message):
        name = "reg.anon_ok"
        allow_anonymous = True

    registry.register(AnonymousOk)
    assert registry.allows_anonymous() is True
    registry.unregister("reg.anon_ok")
    assert registry.allows_anonymous() is False


@pytest.mark.parametrize("value", [object, dict, "reg.alpha", Alpha(), 42])
def test_only_message_subclasses_can_be_registered(value):
    registry = Registry("typeerror")
    with pytest.raises(TypeError, match="Only Message subclasses can be registered"):
        registry.register(value)
    assert len(registry) == 0


def test_a_class_without_name_cannot_be_registered():
    registry = Registry("nameless")

    class Nameless(Message):
        pass

    with pytest.raises(TypeError, match=r"Nameless has no 'name' and cannot be registered\."):
        registry.register(Nameless)
    with pytest.raises(TypeError, match="has no 'name'"):
        registry.register(replace=True)(Nameless)
    assert len(registry) == 0

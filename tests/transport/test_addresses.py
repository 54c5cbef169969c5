"""Connection addresses (channelbus.transport.addresses): making, splitting and recognising them."""

import pytest

from channelbus.topics import topic_kinds
from channelbus.transport.addresses import ADDRESS_SEPARATOR, LOCAL, is_address, make_address, split_address


def test_make_and_split_round_trip():
    address = make_address("channelbus.hub.abc!def", "c0ffee")
    assert address == "channelbus.hub.abc!def|c0ffee"
    assert split_address(address) == ("channelbus.hub.abc!def", "c0ffee")


def test_a_local_address():
    assert LOCAL == "local"
    assert make_address(LOCAL, "42") == "local|42"
    assert split_address("local|42") == (LOCAL, "42")


def test_split_takes_the_connection_id_after_the_last_separator():
    assert split_address("a|b|c") == ("a|b", "c")
    assert split_address("no-separator") == ("", "no-separator")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("local|1", True),
        ("|", True),
        ("test.room:lobby", False),
        ("broadcast", False),
        ("", False),
        (None, False),
        (42, False),
        (["local|1"], False),
    ],
)
def test_is_address(target, expected):
    assert is_address(target) is expected


def test_the_separator_never_appears_in_a_registered_kind():
    assert ADDRESS_SEPARATOR == "|"
    assert not any(ADDRESS_SEPARATOR in kind for kind in topic_kinds)

"""Connection sessions (channelbus.session): ConnectionSession's sync and async API."""

import uuid

import pytest
from django.core.cache import cache

from channelbus.messages import Metadata
from channelbus.session import SESSION_SECONDS, ConnectionSession
from tests.testapp.messages import Greet


@pytest.fixture
def session():
    session = ConnectionSession(f"local|{uuid.uuid4().hex}")
    yield session
    session.clear()


def test_the_cache_key_names_the_address():
    assert ConnectionSession("local|abc").key == "channelbus:session:local|abc"
    assert SESSION_SECONDS == 24 * 3600


def test_set_get_and_item_access(session):
    assert session.get("count") is None
    assert session.get("count", 0) == 0
    session.set("count", 1)
    session["name"] = "alice"
    assert session.get("count") == 1
    assert session["name"] == "alice"
    assert cache.get(session.key) == {"count": 1, "name": "alice"}


def test_a_missing_key_raises_key_error(session):
    with pytest.raises(KeyError, match="nope"):
        session["nope"]
    session["other"] = 1
    with pytest.raises(KeyError):
        session["nope"]


def test_contains(session):
    assert "k" not in session
    session["k"] = None  # stored, even though None
    assert "k" in session
    assert 42 not in session


def test_delete(session):
    session["a"], session["b"] = 1, 2
    del session["a"]
    assert "a" not in session
    assert session["b"] == 2
    session.delete("never-set")  # nothing to remove: no error
    assert cache.get(session.key) == {"b": 2}


NONE_DELETE_BUG = (
    "delete()/adelete() write the dict back only when data.pop(name, None) is not None, so a key whose "
    "value is None is never removed: `session['k'] = None; del session['k']` leaves 'k' in the session"
)


def test_delete_removes_a_key_whose_value_is_none(session):
    session["k"] = None
    del session["k"]
    assert "k" not in session


async def test_adelete_removes_a_key_whose_value_is_none(session):
    await session.aset("k", None)
    await session.adelete("k")
    assert "k" not in (await cache.aget(session.key) or {})


def test_clear_drops_the_whole_session(session):
    session["a"] = 1
    session.clear()
    assert "a" not in session
    assert cache.get(session.key) is None
    session.clear()  # clearing again is fine
    assert session.get("a") is None


def test_sessions_of_two_connections_are_separate(session):
    other = ConnectionSession(session.address + "-other")
    try:
        session["k"] = "mine"
        other["k"] = "theirs"
        assert (session["k"], other["k"]) == ("mine", "theirs")
        other.clear()
        assert session["k"] == "mine"
    finally:
        other.clear()


def test_a_second_object_for_the_same_address_sees_the_same_data(session):
    session["k"] = [1, 2]
    assert ConnectionSession(session.address)["k"] == [1, 2]


async def test_async_api(session):
    assert await session.aget("k") is None
    assert await session.aget("k", "default") == "default"
    await session.aset("k", 1)
    await session.aset("j", 2)
    assert await session.aget("k") == 1
    await session.adelete("k")
    await session.adelete("never-set")
    assert await session.aget("k") is None
    assert await session.aget("j") == 2
    await session.aclear()
    assert await session.aget("j") is None


async def test_sync_and_async_see_the_same_store(session):
    await session.aset("from_async", 1)
    assert "from_async" in session
    session["from_sync"] = 2
    assert await session.aget("from_sync") == 2
    await session.aclear()
    assert "from_sync" not in session


def test_a_message_reaches_its_connection_session(session):
    message = Greet(text="x", meta=Metadata(channel_name=session.address))
    message.session["seen"] = True
    assert session["seen"] is True
    assert Greet(text="built in code").session is None

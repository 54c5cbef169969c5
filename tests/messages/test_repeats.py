"""The store of repeated requests (channelbus/messages/repeats.py) on real caches: LocMem (inline), the
file cache and Redis (in a thread), and a cache that cannot be reached. What the consumer and the jobs do
with it is in tests/system/test_repeats.py."""

import asyncio
import logging
import threading
import time
import uuid
import warnings

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache

from channelbus.messages import repeats
from channelbus.messages.repeats import Begun, Entry, Gone
from channelbus.protocol import (
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from channelbus.transport import DeliveryFailed
from tests.redis_support import REDIS_URL, require_redis

#: A Redis cache nothing answers on (port 1 is never served): every call fails at once.
UNREACHABLE = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def redis_cache():
    """CACHES for the Redis of the test machine (skipped when it is down), with a key prefix of its own."""
    require_redis()
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}",
        }
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_the_owner_is_the_user_or_the_guests_session(user, db):
    assert repeats.owner_of(user, {}) == f"u{user.pk}"
    session = SessionStore()
    session.create()
    assert repeats.owner_of(AnonymousUser(), {"session": session}) == f"s{session.session_key}"
    # A signed-in user is the owner whatever the session (it changes at sign-in anyway).
    assert repeats.owner_of(user, {"session": session}) == f"u{user.pk}"


def test_a_guest_without_a_session_key_has_no_owner():
    assert repeats.owner_of(AnonymousUser(), {}) is None
    assert repeats.owner_of(AnonymousUser(), {"session": SessionStore()}) is None  # no cookie: no key
    assert repeats.owner_of(None, {}) is None


def test_a_key_is_a_hash_of_owner_type_and_i():
    key = repeats.request_key("u1", "demo.echo", "tab-1")
    assert key == repeats.request_key("u1", "demo.echo", "tab-1")
    others = {
        repeats.request_key("u2", "demo.echo", "tab-1"),
        repeats.request_key("u1", "demo.other", "tab-1"),
        repeats.request_key("u1", "demo.echo", "tab-2"),
        repeats.request_key("s1", "demo.echo", "tab-1"),
    }
    assert key not in others
    assert len(others) == 4
    odd = repeats.request_key("u1", "demo.echo", "ä b:c/" + "x" * 120)
    assert "tab" not in key
    assert len(odd) == len(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CacheKeyWarning: a key memcached would refuse
        cache.set(odd, 1)


def test_begin_marks_running_once_and_the_frames_follow():
    key = repeats.request_key("u1", "test.x", "a")
    assert repeats.begin(key, 60) is Begun.FIRST
    assert repeats.begin(key, 60) == Entry(None, False)
    assert repeats.look(key) == Entry(None, False)
    repeats.record(key, '{"s":"q"}', False, 60)
    assert repeats.begin(key, 60) == Entry('{"s":"q"}', False)
    repeats.record(key, '{"s":"s"}', True, 60)
    assert repeats.look(key) == Entry('{"s":"s"}', True)
    repeats.forget(key)
    assert repeats.look(key) is Gone.MISSING
    assert repeats.begin(key, 60) is Begun.FIRST


def test_an_entry_lives_for_its_window_from_the_last_write():
    key = repeats.request_key("u1", "test.x", "short")
    assert repeats.begin(key, 0.05) is Begun.FIRST
    repeats.record(key, "frame", True, 60)  # a write gives it the whole window again
    time.sleep(0.1)
    assert repeats.look(key) == Entry("frame", True)
    repeats.record(key, "frame", True, 0.05)
    time.sleep(0.1)
    assert repeats.look(key) is Gone.MISSING


def test_record_uses_the_setting_and_does_nothing_when_it_is_off(settings):
    key = repeats.request_key("u1", "test.x", "w")
    assert repeats.window() == 120
    settings.CHANNELBUS = {"IDEMPOTENCY_WINDOW": 0}
    assert repeats.window() == 0
    repeats.record(key, "frame", True)
    assert repeats.look(key) is Gone.MISSING
    settings.CHANNELBUS = {"IDEMPOTENCY_WINDOW": None}
    assert repeats.window() == 0
    settings.CHANNELBUS = {"IDEMPOTENCY_WINDOW": 30}
    repeats.record(key, "frame", True)
    assert repeats.look(key) == Entry("frame", True)


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (RateLimited(retry_after=1), False),
        (Unavailable(), False),
        (DeliveryFailed("layer down"), False),  # the hub's kind of error.unavailable
        (NotFound(), True),
        (ValidationFailed(), True),
        (Unauthorized(), True),
        (ServerError(), True),
        (JobFailed(), True),
    ],
)
def test_errors_that_say_try_again_are_not_kept(error, kept):
    assert repeats.is_recorded(error) is kept


def test_a_cache_that_fails_is_logged_and_never_raises(settings, caplog):
    settings.CACHES = UNREACHABLE
    key = repeats.request_key("u1", "test.x", "down")
    with caplog.at_level(logging.WARNING, "channelbus"):
        assert repeats.begin(key, 60) is Begun.UNRECORDED
        assert repeats.look(key) is Gone.UNKNOWN
        repeats.record(key, "frame", True, 60)
        repeats.forget(key)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "channelbus: the cache failed: a request is handled without deduplication"),
        ("WARNING", "channelbus: the cache failed: cannot follow a repeated request"),
        ("WARNING", "channelbus: the cache failed: a request's reply is not kept for a repeat"),
        ("WARNING", "channelbus: the cache failed: a request's entry is left to expire"),
    ]


def test_a_connection_s_requests_need_an_owner_and_the_window(user, settings):
    requests = repeats.of_connection(user, {})
    assert (requests.owner, requests.window) == (f"u{user.pk}", 120)
    assert requests.key("demo.echo", "tab-1") == repeats.request_key(f"u{user.pk}", "demo.echo", "tab-1")
    assert repeats.of_connection(AnonymousUser(), {}) is None
    settings.CHANNELBUS = {"IDEMPOTENCY_WINDOW": 0}
    assert repeats.of_connection(user, {}) is None


async def test_with_locmem_a_connection_calls_the_cache_inline():
    """No await point: nothing waits for a thread, and the loop is not given up."""
    requests = repeats.Requests("u1", 60)
    key = requests.key("test.x", "inline")
    call = requests.begin(key)
    with pytest.raises(StopIteration) as done:
        call.send(None)
    assert done.value.value is Begun.FIRST
    call = requests.record(key, "frame", True)
    with pytest.raises(StopIteration):
        call.send(None)
    assert await requests.look(key) == Entry("frame", True)


@pytest.fixture
def blocked_sync_thread():
    """Holds asgiref's one thread-sensitive thread (every database call of the process) until the end."""
    release = threading.Event()
    started = threading.Event()

    def hold():
        started.set()
        release.wait(5)

    yield sync_to_async(hold, thread_sensitive=True), started
    release.set()


async def test_other_backends_run_in_a_thread_of_their_own(settings, tmp_path, blocked_sync_thread):
    """The file cache: the calls work while the thread of Django's a* cache methods is busy."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path),
        }
    }
    hold, started = blocked_sync_thread
    holder = asyncio.ensure_future(hold())
    await asyncio.to_thread(started.wait, 5)
    requests = repeats.Requests("u1", 60)
    key = requests.key("test.x", "file")
    async with asyncio.timeout(3):
        assert await requests.begin(key) is Begun.FIRST
        await requests.record(key, "frame", False)
        assert await requests.begin(key) == Entry("frame", False)
        await requests.forget(key)
        assert await requests.look(key) is Gone.MISSING
    assert not holder.done()  # it was held all along
    holder.cancel()


async def test_redis_the_distributed_cache(settings):
    settings.CACHES = redis_cache()
    requests = repeats.Requests("u1", 60)
    key = requests.key("test.x", "redis")
    try:
        assert await requests.begin(key) is Begun.FIRST
        assert await requests.begin(key) == Entry(None, False)
        await requests.record(key, '{"s":"s"}', True)
        assert await asyncio.to_thread(repeats.look, key) == Entry('{"s":"s"}', True)  # as a worker sees it
    finally:
        await requests.forget(key)
    assert await requests.look(key) is Gone.MISSING


def test_with_the_local_memory_cache_entries_never_push_out_the_default_caches_entries():
    store_module = repeats
    assert store_module.store() is not cache  # a LocMemCache of its own
    cache.set("project:session", "kept")
    for k in range(400):  # more than the default LocMemCache's 300 entries
        store_module.begin(store_module.request_key("u1", "x.y", f"tab-{k}"), 60)
    assert cache.get("project:session") == "kept"
    assert store_module.store().get(store_module.request_key("u1", "x.y", "tab-0")) is not None

"""Repeated requests: what a request with a trace id ``i`` answered, kept so that a repeat runs nothing again.

A client whose socket dropped sends the requests that had no terminal reply again, once, with the
same ``i``. For ``IDEMPOTENCY_WINDOW`` seconds this store remembers, per *owner* (a signed-in user,
or a guest's session) and message type, each ``i`` it saw: the first time :func:`begin` marks it
running; the handler's frames are recorded as they go (:func:`record`: the latest state ``q``/``r``
and at the end the terminal ``s`` or ``f`` frame); a repeat finds the entry instead, and gets the
terminal frame, or the states that follow (``docs/messages.md``, "Repeated requests").

The entries live in Django's default cache, so every server process and every task worker sees the
same ones (Redis in the distributed setup). When that cache is ``LocMemCache`` (one process, the
embedded default) they live in a ``LocMemCache`` of their own instead (:func:`store`, up to
:data:`LOCAL_MAX_ENTRIES` entries): the default one holds 300 entries and culls a third when full, and
the requests of a few busy users would push out the project's sessions, job places and ordering keys.
Each lives ``IDEMPOTENCY_WINDOW`` seconds from its last
write. The functions here are sync, for the workers; a connection uses :class:`Requests`, whose
coroutines, with ``LocMemCache``, call them inline (a dict under a lock: microseconds) and, with any
other backend, run them in a thread of their own with :func:`asyncio.to_thread`, not with Django's
``a*`` cache methods, whose ``sync_to_async`` uses the one thread shared with every database call of
the process. A cache that fails is logged at WARNING and never fails a request:
:func:`begin` answers :data:`Begun.UNRECORDED` and the request runs without deduplication.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache

from ..conf import settings
from ..protocol import BusError, RateLimited, Unavailable

__all__ = [
    "Begun",
    "Entry",
    "Gone",
    "Requests",
    "begin",
    "forget",
    "is_recorded",
    "look",
    "of_connection",
    "owner_of",
    "record",
    "request_key",
    "window",
]

logger = logging.getLogger("channelbus")


class Begun(enum.Enum):
    """What :func:`begin` says when the request is not a repeat."""

    #: Marked running: handle it, and record its frames.
    FIRST = "first"
    #: The cache failed (logged): handle it without deduplication, record nothing.
    UNRECORDED = "unrecorded"


class Gone(enum.Enum):
    """What :func:`look` says when there is no entry to show."""

    #: No entry: never seen, expired, or forgotten (its first run ended without a reply to keep).
    MISSING = "missing"
    #: The cache failed (logged): nobody can tell.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Entry:
    """What is remembered of one request: its latest frame (None before the first) and whether that
    frame ended it (state ``s`` or ``f``)."""

    frame: str | None = None
    done: bool = False

    @classmethod
    def loads(cls, value: Any) -> Entry:
        """The entry from its cached form, a ``(frame, done)`` pair (a tuple pickles small and reads
        the same in any later release)."""
        frame, done = value
        return cls(frame, bool(done))


def window() -> float:
    """``IDEMPOTENCY_WINDOW`` in seconds; 0 when deduplication is off (0 or None)."""
    return float(settings.IDEMPOTENCY_WINDOW or 0)


def owner_of(user: Any, scope: dict[str, Any]) -> str | None:
    """Whose requests a connection's are: ``"u<pk>"`` for a signed-in user, ``"s<session key>"`` for a
    guest whose scope has a session with a key, else None (no deduplication for that connection: a
    guest without a session cookie has nothing that survives a reconnect)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return f"u{user.pk}"
    key = getattr(scope.get("session"), "session_key", None)
    return f"s{key}" if key else None


def request_key(owner: str, type_name: str, trace_id: str) -> str:
    """The cache key of one request. Hashed: ``i`` is client text (any printable characters, up to
    its length limit), which some cache backends would refuse in a key. NUL is in none of the three
    parts (type names and owners are plain, ``i`` is printable), so no two triples share a key."""
    digest = hashlib.blake2b(f"{owner}\0{type_name}\0{trace_id}".encode(), digest_size=16).hexdigest()
    return f"channelbus:repeat:{digest}"


def is_recorded(error: BusError) -> bool:
    """Whether ``error`` is kept as a request's terminal reply. ``error.rate_limited`` and
    ``error.unavailable`` are not: they say "try again later", so a repeat must run the request
    again rather than get the same refusal for the rest of the window."""
    return not isinstance(error, RateLimited | Unavailable)


#: Entries of the store of its own that a process keeps when the default cache is ``LocMemCache``.
LOCAL_MAX_ENTRIES = 100_000


def store() -> BaseCache:
    """Where the entries live: Django's default cache, or a ``LocMemCache`` of their own (``channelbus-
    repeats``, shared by every thread of the process) when the default one is ``LocMemCache``."""
    default = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(default, LocMemCache):
        return default
    return LocMemCache(
        "channelbus-repeats", {"OPTIONS": {"MAX_ENTRIES": LOCAL_MAX_ENTRIES, "CULL_FREQUENCY": 10}}
    )


def begin(key: str, seconds: float, cache: BaseCache | None = None) -> Begun | Entry:
    """Mark the request ``key`` running, atomically (``cache.add``): :data:`Begun.FIRST` the first
    time, the :class:`Entry` on a repeat, :data:`Begun.UNRECORDED` when the cache fails.
    ``cache`` defaults to Django's default cache (as for the functions below)."""
    cache = store() if cache is None else cache
    try:
        for _ in range(2):  # the entry may expire (or be forgotten) between the add and the get
            if cache.add(key, (None, False), seconds):
                return Begun.FIRST
            value = cache.get(key)
            if value is not None:
                return Entry.loads(value)
        return Entry()  # taken and dropped twice meanwhile: someone runs it; follow them
    except Exception:
        logger.warning(
            "channelbus: the cache failed: a request is handled without deduplication", exc_info=True
        )
        return Begun.UNRECORDED


def look(key: str, cache: BaseCache | None = None) -> Entry | Gone:
    """The entry of ``key`` now (a repeat following its first run)."""
    try:
        value = (store() if cache is None else cache).get(key)
    except Exception:
        logger.warning("channelbus: the cache failed: cannot follow a repeated request", exc_info=True)
        return Gone.UNKNOWN
    return Gone.MISSING if value is None else Entry.loads(value)


def record(
    key: str, frame: str, done: bool, seconds: float | None = None, cache: BaseCache | None = None
) -> None:
    """Keep ``frame`` as the latest of request ``key`` (``done``: it is the terminal one) for
    ``seconds`` (default: the window) more. Never raises."""
    seconds = window() if seconds is None else seconds
    if not seconds:
        return
    try:
        (store() if cache is None else cache).set(key, (frame, done), seconds)
    except Exception:
        logger.warning(
            "channelbus: the cache failed: a request's reply is not kept for a repeat", exc_info=True
        )


def forget(key: str, cache: BaseCache | None = None) -> None:
    """Drop request ``key``: its first run ended with nothing to keep, and a repeat runs it again.
    Never raises (an entry that cannot be dropped expires by itself)."""
    try:
        (store() if cache is None else cache).delete(key)
    except Exception:
        logger.warning("channelbus: the cache failed: a request's entry is left to expire", exc_info=True)


class Requests:
    """The requests of one owner as one connection sees them, from the event loop: made once per
    connection by :func:`of_connection`, which also reads the window and the cache backend once.

    With ``LocMemCache`` its coroutines call the sync functions above inline, on that backend (no
    await point); with any other backend they run them in a thread of their own (see the module).
    """

    __slots__ = ("_inline", "owner", "window")

    def __init__(self, owner: str, seconds: float) -> None:
        self.owner = owner
        self.window = seconds
        backend = store()
        self._inline: BaseCache | None = backend if isinstance(backend, LocMemCache) else None

    def key(self, type_name: str, trace_id: str) -> str:
        """The key of this owner's request ``trace_id`` of type ``type_name``."""
        return request_key(self.owner, type_name, trace_id)

    async def begin(self, key: str) -> Begun | Entry:
        """:func:`begin`, for the window."""
        if self._inline is not None:
            return begin(key, self.window, self._inline)
        return await asyncio.to_thread(begin, key, self.window)

    async def look(self, key: str) -> Entry | Gone:
        """:func:`look`."""
        if self._inline is not None:
            return look(key, self._inline)
        return await asyncio.to_thread(look, key)

    async def record(self, key: str, frame: str, done: bool) -> None:
        """:func:`record`, for the window."""
        if self._inline is not None:
            record(key, frame, done, self.window, self._inline)
        else:
            await asyncio.to_thread(record, key, frame, done, self.window)

    async def forget(self, key: str) -> None:
        """:func:`forget`."""
        if self._inline is not None:
            forget(key, self._inline)
        else:
            await asyncio.to_thread(forget, key)


def of_connection(user: Any, scope: dict[str, Any]) -> Requests | None:
    """The :class:`Requests` of a connection's owner (:func:`owner_of`); None when its requests are not
    deduplicated: no owner, or ``IDEMPOTENCY_WINDOW`` off."""
    seconds = window()
    owner = owner_of(user, scope) if seconds else None
    return None if owner is None else Requests(owner, seconds)

"""Presence in one hub: which local connections make which members, written in batches, and the diffs.

The hub calls :meth:`PresenceTracker.join` and :meth:`~PresenceTracker.leave` when a connection starts
or stops following a topic whose kind keeps presence (``Hub.join`` and ``Hub.leave``, so every way in
counts: ``topic.subscribe``, an auto-joined kind, a ``?topics=`` token; a close leaves them all). Both
only change this process's counts and mark the member as changed; nothing is written per join.

Every ``PRESENCE_INTERVAL`` seconds a task writes what changed as one batch to the store (this
process's memory, or Redis in the distributed setup: one call per host, which is also the process's
heartbeat, and in which it sweeps a dead process) and publishes the store's diffs with
``Hub.send_to_topic``: not volatile, so never dropped silently, and not numbered (``v`` orders them,
and they take no place in the topic's history). A member whose
count went back to what was written (a tab reloaded within the interval) is not written at all. The
task runs while some local connection follows a presence topic, and stops after the last one left.

:meth:`~PresenceTracker.state` reads the store and adds this process's changes not written yet, so a
subscriber's own join is in the state its ``topic.subscribed`` carries; the diff that writes it comes
later with a higher ``v`` and sets the same entry again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from typing import Any, Protocol

from channels.db import database_sync_to_async

from ..conf import settings
from ..protocol import encode
from ..topics.presence import DIFF_TYPE, member_info, member_key
from .history_redis import redis_hosts
from .layer_health import DeliveryFailed, LayerHealth
from .presence import Batch, Diff, MemoryPresence, Snapshot
from .presence_redis import RedisPresence

__all__ = ["PresenceHost", "PresenceTracker"]

logger = logging.getLogger("channelbus")


class PresenceHost(Protocol):
    """What the tracker uses of its hub (:class:`~channelbus.transport.hub.Hub` is one)."""

    loop: asyncio.AbstractEventLoop
    layer: Any
    health: LayerHealth

    def pick_layer(self) -> None:
        """Choose the delivery mode (and so where presence is kept)."""

    async def send_to_topic(
        self, topic: str, text: str, exclude: str | None = None, volatile: bool = False, numbered: bool = True
    ) -> None:
        """Publish an encoded frame to every follower of ``topic``, in every process."""


class PresenceTracker:
    """The presence of one hub's connections, and the task that writes it and publishes the diffs."""

    def __init__(self, hub: PresenceHost, calls: asyncio.Semaphore) -> None:
        self.hub = hub
        #: The hub's bound on Redis and layer calls in flight (redis-py's pool is shared).
        self._calls = calls
        #: This process in Redis's list of processes (random: a restarted process is another one).
        self.process = secrets.token_hex(8)
        #: topic -> id of each local connection following it -> its member key (None: signed out).
        self._followers: dict[str, dict[str, str | None]] = {}
        #: topic -> member key -> ids of its local connections following the topic.
        self._members: dict[str, dict[str, set[str]]] = {}
        #: topic -> member key -> info, for each member in :attr:`_members`.
        self._infos: dict[str, dict[str, dict[str, Any]]] = {}
        #: topic -> member key -> this process's connections as the store has them (the last batch written).
        self._written: dict[str, dict[str, int]] = {}
        #: topic -> member keys whose count changed here since the last batch.
        self._pending: dict[str, set[str]] = {}
        self._store: MemoryPresence | RedisPresence | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # a batch and a read never overlap (see state())

    # ------------------------------------------------------------------ local connections

    async def join(self, connection: Any, topic: str, presence: Any) -> None:
        """Count ``connection`` (a hub ``Endpoint``; its ``user``, if any, is the member) in ``topic``,
        whose kind has ``presence`` (True, or the function that gives a member's info)."""
        cid = connection.connection_id
        if cid in self._followers.get(topic, ()):
            return
        user = getattr(connection, "user", None)
        key = member_key(user)
        info: dict[str, Any] = {}
        if key is not None and key not in self._members.get(topic, ()):
            if presence is True:  # the display name: attributes of the user, no query
                info = member_info(presence, user, topic)
            else:  # the kind's own function may query the database
                info = await database_sync_to_async(member_info)(presence, user, topic)
            if connection.closed or topic not in connection.topics or cid in self._followers.get(topic, ()):
                return  # it left (or joined by another path) while the info was made
        self._followers.setdefault(topic, {})[cid] = key
        self._start()
        if key is None:
            return
        members = self._members.setdefault(topic, {})
        if key not in members:
            members[key] = set()
            self._infos.setdefault(topic, {})[key] = info
        members[key].add(cid)
        self._pending.setdefault(topic, set()).add(key)

    def leave(self, connection: Any, topic: str) -> None:
        """``connection`` no longer follows ``topic`` (nothing happens if it was not counted there)."""
        followers = self._followers.get(topic)
        cid = connection.connection_id
        if followers is None or cid not in followers:
            return
        key = followers.pop(cid)
        if not followers:
            del self._followers[topic]
        if key is None:
            return
        members = self._members[topic]
        conns = members[key]
        conns.discard(cid)
        if not conns:
            del members[key], self._infos[topic][key]
            if not members:
                del self._members[topic], self._infos[topic]
        self._pending.setdefault(topic, set()).add(key)

    # ------------------------------------------------------------------ the store

    @property
    def store(self) -> MemoryPresence | RedisPresence:
        """Where presence is kept: Redis with a channels_redis layer, else this process's memory."""
        store = self._store
        if store is None:
            self.hub.pick_layer()
            layer = self.hub.layer
            hosts = redis_hosts(layer) if layer is not None else None
            prefix = getattr(layer, "prefix", "asgi")
            store = self._store = RedisPresence(hosts, prefix, self.process) if hosts else MemoryPresence()
        return store

    def forget_store(self) -> None:
        """Pick the store again on next use (the channel layer changed), unless connections use this one."""
        if not self._followers and not self._pending and not isinstance(self._store, RedisPresence):
            self._store = None

    async def state(self, topic: str, limit: int | None) -> dict[str, Any]:
        """``{"members", "count", "v", "truncated"}`` of ``topic`` now: the store's, with this process's
        changes not written yet; at most ``limit`` members (None: all), in no particular order.

        Raises :class:`DeliveryFailed` when Redis cannot be read.
        """
        async with self._lock:  # not during a batch: its counts would be in the store and added again
            pending = self._pending.get(topic, ())
            snapshot = await self._read(topic, limit, pending)
            members, count = snapshot.members, snapshot.count
            written = self._written.get(topic, {})
            local = self._members.get(topic, {})
            infos = self._infos.get(topic, {})
            for key in pending:
                delta = len(local.get(key, ())) - written.get(key, 0)
                if not delta:
                    continue
                entry = members.get(key)
                conns = (entry["conns"] if entry is not None else 0) + delta
                if conns > 0:
                    count += entry is None
                    members[key] = {
                        "info": entry["info"] if entry is not None else infos[key],
                        "conns": conns,
                    }
                elif entry is not None:
                    del members[key]
                    count -= 1
        if limit is not None and len(members) > limit:
            members = dict(itertools.islice(members.items(), limit))
        return {"members": members, "count": count, "v": snapshot.v, "truncated": len(members) < count}

    async def _read(self, topic: str, limit: int | None, also: set[str] | tuple[()]) -> Snapshot:
        store = self.store
        if isinstance(store, MemoryPresence):
            return store.read(topic, limit, also)
        try:
            async with self._calls:
                return await store.read(topic, limit, also)
        except Exception as exc:
            self.hub.health.failed("presence read", exc)
            raise DeliveryFailed() from exc

    # ------------------------------------------------------------------ batches

    def _start(self) -> None:
        if self._task is None:
            self._task = self.hub.loop.create_task(self._run())

    async def _run(self) -> None:
        """A batch every ``PRESENCE_INTERVAL`` s; stops once no local connection follows a presence topic."""
        try:
            while True:
                await asyncio.sleep(float(settings.PRESENCE_INTERVAL))
                await self.flush()
                if self._followers or self._pending:
                    continue
                if isinstance(self._store, RedisPresence):
                    await self.flush(retire=True)  # out of Redis's list of processes: nobody sweeps it
                if not (self._followers or self._pending):  # no await since the test: no join slipped in
                    self._task = None
                    return
        except Exception:
            logger.exception("channelbus: the presence task stopped")
            self._task = None

    async def flush(self, retire: bool = False) -> None:
        """Write what changed since the last batch (and, with Redis, renew this process's entry when due),
        then publish the diffs. ``retire``: take this process out of Redis's list when it has no member.

        A batch that cannot be written stays pending (logged once per outage, as layer failures are).
        """
        diffs: list[Diff] = []
        async with self._lock:
            for _ in range(2):  # again at once when a Redis host had lost this process's entry
                batch = self._batch()
                try:
                    applied, lost = await self._apply(batch, retire)
                except Exception as exc:
                    for topic, changes in batch.items():
                        self._pending.setdefault(topic, set()).update(changes)
                    self.hub.health.failed("presence write", exc)
                    return
                diffs += applied
                self._wrote(batch, lost)
                if not lost:
                    break
        for diff in diffs:
            await self._publish(diff)

    def _batch(self) -> Batch:
        """What changed since the last batch: each member's count here, with its info if new here."""
        batch: Batch = {}
        for topic, keys in self._pending.items():
            local = self._members.get(topic, {})
            written = self._written.get(topic, {})
            changes = {}
            for key in keys:
                count, before = len(local.get(key, ())), written.get(key, 0)
                if count != before:
                    changes[key] = (count, self._infos[topic][key] if count and not before else None)
            if changes:
                batch[topic] = changes
        self._pending = {}
        return batch

    async def _apply(self, batch: Batch, retire: bool) -> tuple[list[Diff], set[int]]:
        """Write ``batch``; the diffs, and the Redis hosts that had lost this process's entry (unwritten)."""
        store = self.store
        if isinstance(store, MemoryPresence):
            return (store.apply(batch) if batch else []), set()
        interval = float(settings.PRESENCE_INTERVAL)
        every = max(interval, float(settings.PRESENCE_EXPIRY) / 3)
        if not batch and not retire and not store.heartbeat_due(every - interval):
            return [], set()
        async with self._calls:
            # Renewed every `every` s (a tick early, so never late), and taken for dead after expiry - every:
            # a process killed just after a renewal is swept by the next renewal of any other after that.
            return await store.apply(
                batch,
                silent_ms=int((float(settings.PRESENCE_EXPIRY) - every) * 1000),
                every=every - interval,
                retire=retire,
            )

    def _wrote(self, batch: Batch, lost: set[int]) -> None:
        """Record what the store has now; members of topics on a host that lost them are written again."""
        store = self.store
        for topic, changes in batch.items():
            if lost and isinstance(store, RedisPresence) and store.place(topic)[0] in lost:
                continue
            written = self._written.setdefault(topic, {})
            for key, (count, _) in changes.items():
                if count:
                    written[key] = count
                else:
                    written.pop(key, None)
            if not written:
                del self._written[topic]
        if not lost or not isinstance(store, RedisPresence):
            return
        for topic in set(self._written) | set(self._members):
            if store.place(topic)[0] in lost:
                self._written.pop(topic, None)
                if topic in self._members:
                    self._pending.setdefault(topic, set()).update(self._members[topic])

    async def _publish(self, diff: Diff) -> None:
        """Publish one ``presence.diff`` to its topic: not volatile (never dropped), not numbered (``v``
        orders the diffs; they take no place in the topic's history, which stays its messages')."""
        try:
            text = encode(DIFF_TYPE, diff.payload(), c=diff.topic)
            await self.hub.send_to_topic(diff.topic, text, numbered=False)
        except DeliveryFailed:
            pass  # counted and logged by the hub's layer health; clients see the gap in v and ask again
        except Exception:
            logger.exception("channelbus: could not publish the presence diff of %s", diff.topic)

    async def stop(self) -> None:
        """Stop the task and close the Redis connections (tests, shutdown)."""
        task, self._task = self._task, None
        store, self._store = self._store, None
        with contextlib.suppress(BaseException):
            if task is not None:
                task.cancel()
                await task
        if isinstance(store, RedisPresence):
            await store.close()

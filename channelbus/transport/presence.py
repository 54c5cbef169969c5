"""Presence kept in this process's memory (the embedded default; no I/O), and the shapes every store shares.

A store holds, per topic, the members (``{<key>: {"info", "conns"}}``) and the version ``v``, and
takes *batches*: for each topic and member key, how many of this process's connections follow the
topic now, with the member's info when they are the first (``Batch``). It answers each batch with
the :class:`Diff` of every topic it changed, each with the next ``v``; a change that changes nothing
(a tab reloaded within one interval) gives none. The per-hub tracker
(:mod:`channelbus.transport.presence_tracker`) makes the batches and publishes the diffs; in the
distributed setup :class:`~channelbus.transport.presence_redis.RedisPresence` is the store.

``v`` starts at the wall clock in milliseconds when a topic's presence starts, and grows by one per
change: a topic forgotten and started again (after :data:`IDLE_TTL` without a member) goes on above
the old numbers, so a client never takes the new diffs for ones it has seen.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IDLE_TTL", "Batch", "Diff", "MemoryPresence", "Snapshot", "new_version"]

#: Seconds a topic's ``v`` is kept after its last member left (then the next one starts it again).
IDLE_TTL = 3600.0
#: Seconds between two sweeps of topics idle for over ``IDLE_TTL`` (made by a batch, at most this often).
SWEEP_INTERVAL = 60.0

#: topic -> member key -> (this process's connections following the topic now, the info when the member
#: had none here before, else None).
Batch = dict[str, dict[str, tuple[int, dict[str, Any] | None]]]


def new_version() -> int:
    """The ``v`` a topic's presence starts at: the wall clock in milliseconds (below 2^53 for millennia)."""
    return int(time.time() * 1000)


@dataclass
class Diff:
    """What one batch changed in one topic: the entries to set, those gone, the count after, the new ``v``."""

    topic: str
    joins: dict[str, dict[str, Any]]
    leaves: dict[str, dict[str, Any]]
    count: int
    v: int

    def payload(self) -> dict[str, Any]:
        """The ``p`` of its ``presence.diff`` frame."""
        return {
            "topic": self.topic,
            "joins": self.joins,
            "leaves": self.leaves,
            "count": self.count,
            "v": self.v,
        }


@dataclass
class Snapshot:
    """Members of a topic as a store read them: some (or all) entries, how many there are, and ``v``."""

    members: dict[str, dict[str, Any]]
    count: int
    v: int


@dataclass
class _Topic:
    v: int = field(default_factory=new_version)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    idle_since: float | None = None


class MemoryPresence:
    """The members of every presence topic of this process (one process: its connections are all)."""

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._swept = time.monotonic()

    def apply(self, batch: Batch) -> list[Diff]:
        """Take this process's connection counts per topic and member; the diffs of the topics changed."""
        now = time.monotonic()
        diffs = []
        for topic, changes in batch.items():
            room = self._topics.get(topic)
            if room is None:
                room = self._topics[topic] = _Topic()
            diff = self._change(topic, room, changes.items())
            if diff is not None:
                diffs.append(diff)
            room.idle_since = None if room.members else now
        if now - self._swept >= SWEEP_INTERVAL:
            self._sweep(now)
        return diffs

    @staticmethod
    def _change(
        topic: str, room: _Topic, changes: Iterable[tuple[str, tuple[int, dict[str, Any] | None]]]
    ) -> Diff | None:
        joins: dict[str, dict[str, Any]] = {}
        leaves: dict[str, dict[str, Any]] = {}
        members = room.members
        for key, (conns, info) in changes:
            entry = members.get(key)
            if conns <= 0:
                if entry is not None:
                    del members[key]
                    leaves[key] = {"info": entry["info"], "conns": 0}
                continue
            new_info = info if info is not None else (entry["info"] if entry is not None else {})
            if entry is None or entry["conns"] != conns or entry["info"] != new_info:
                members[key] = joins[key] = {"info": new_info, "conns": conns}
        if not (joins or leaves):
            return None
        room.v += 1
        return Diff(topic, joins, leaves, len(members), room.v)

    def _sweep(self, now: float) -> None:
        """Forget topics without members for over ``IDLE_TTL`` (their ``v`` starts again from the clock)."""
        self._swept = now
        idle = [
            t
            for t, room in self._topics.items()
            if room.idle_since is not None and now - room.idle_since > IDLE_TTL
        ]
        for topic in idle:
            del self._topics[topic]

    def read(self, topic: str, limit: int | None, also: Collection[str] = ()) -> Snapshot:
        """The members of ``topic``: at most ``limit`` of them (None: all), and those of ``also`` besides."""
        room = self._topics.get(topic)
        if room is None:
            room = self._topics[topic] = _Topic(idle_since=time.monotonic())
        members = room.members
        chosen = [*(members if limit is None else itertools.islice(members, limit)), *also]
        # Copies: the caller may change what it gets (the entries are the store's own).
        listed = {
            key: {"info": dict(e["info"]), "conns": e["conns"]} for key in chosen if (e := members.get(key))
        }
        return Snapshot(listed, len(members), room.v)

"""Topic numbering and history in this process's memory (the embedded default; no I/O).

Every frame published to a topic (except those of ``volatile`` types) gets
``n``, the topic's publish number: 1, 2, 3... The numbering has an
``epoch``, a short random string made when the numbering starts, so a
client can tell "n = 41 of this numbering" from "n = 41 of a numbering that
restarted" (this process restarted, or the topic was idle long enough to be
forgotten). A topic whose kind keeps history (``history_size`` > 0) also
keeps its last ``history_size`` frames, each for ``history_ttl`` seconds, so
that a client that resubscribes with ``since`` gets what it missed
(:meth:`MemoryHistory.read`).

The frame text is encoded once per publish without ``n`` and numbered by
:func:`numbered` (``n`` is the envelope's last key), so numbering costs one
string concatenation, not a second encoding. The same text goes to every
subscriber and into the history, and a replay sends exactly those texts.

Memory: a topic's frames are freed at most :data:`SWEEP_INTERVAL` seconds
after they are older than ``history_ttl``, and its numbering (its epoch and
``n``) :data:`NUMBERING_TTL` seconds after its last publish or subscribe.
The sweep that frees them runs on a publish at most once per interval and
looks at every topic (about 0.2 µs each); between sweeps a publish only
trims its own topic.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass

__all__ = [
    "NUMBERING_TTL",
    "SWEEP_INTERVAL",
    "MemoryHistory",
    "Recovery",
    "TopicLog",
    "new_epoch",
    "numbered",
]

#: Seconds a topic's numbering is kept after its last publish or subscribe (then it restarts, with a
#: new epoch). Frames are kept for their own, shorter, ``history_ttl``.
NUMBERING_TTL = 3600.0
#: Seconds between two sweeps of every topic (made by the first publish after that time).
SWEEP_INTERVAL = 60.0


def numbered(text: str, n: int, epoch: str = "") -> str:
    """``text`` (an encoded frame) with ``"n": n`` appended as its last key; the first frame of a numbering
    (``n`` = 1) also carries ``"e": epoch``, so a client that stayed connected while the numbering restarted
    (its history was lost) starts counting again instead of taking the new frames for ones it has seen."""
    if n == 1:
        return f'{text[:-1]},"n":1,"e":"{epoch}"}}'
    return f'{text[:-1]},"n":{n}}}'


def new_epoch() -> str:
    """A new epoch: 8 random hex digits."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Recovery:
    """Where a topic stands for a subscriber, and what it missed.

    ``n`` is the topic's position (the ``n`` of its last numbered publish, 0 before any),
    ``epoch`` its numbering's epoch. ``recovered`` is None when the subscribe gave no
    ``since``; True when ``frames`` (the missed frames, in order) fill the gap exactly;
    False when they cannot (another epoch, a gap older than the history or longer than
    ``RECOVERY_MAX_FRAMES``, a ``since`` ahead of the topic).
    """

    n: int
    epoch: str
    recovered: bool | None = None
    frames: tuple[str, ...] = ()


class TopicLog:
    """One topic's numbering and its last frames (``(n, published at, text)``, oldest first)."""

    __slots__ = ("entries", "epoch", "n", "touched", "ttl")

    def __init__(self, epoch: str, now: float) -> None:
        self.epoch = epoch
        self.n = 0
        self.entries: deque[tuple[int, float, str]] = deque()
        self.touched = now
        #: The ``history_ttl`` of its last publish (for the sweep).
        self.ttl = 0.0

    def expire(self, ttl: float, now: float) -> None:
        """Drop the frames published more than ``ttl`` seconds ago."""
        entries = self.entries
        limit = now - ttl
        while entries and entries[0][1] < limit:
            entries.popleft()


class MemoryHistory:
    """The numbering and history of every topic published to in this process.

    ``now`` arguments are a monotonic clock's readings: the class keeps no clock of its own.
    """

    def __init__(self) -> None:
        #: topic -> its log.
        self.logs: dict[str, TopicLog] = {}
        self._next_sweep = 0.0

    def _log(self, topic: str, now: float) -> TopicLog:
        """The log of ``topic``, made if needed, marked as touched now."""
        log = self.logs.get(topic)
        if log is None:
            log = self.logs[topic] = TopicLog(new_epoch(), now)
        log.touched = now
        return log

    def append(self, topic: str, text: str, size: int, ttl: float, now: float) -> tuple[int, str]:
        """Number one published frame of ``topic`` (kept if ``size`` > 0); returns ``n`` and the frame."""
        log = self._log(topic, now)
        n = log.n = log.n + 1
        text = numbered(text, n, log.epoch)
        if size > 0:
            log.ttl = ttl
            entries = log.entries
            entries.append((n, now, text))
            while len(entries) > size:
                entries.popleft()
            if entries[0][1] < now - ttl:
                log.expire(ttl, now)
        elif log.entries:  # the kind's history was turned off since
            log.entries.clear()
        if now >= self._next_sweep:
            self.sweep(now)
        return n, text

    def read(
        self, topic: str, since: tuple[int, str] | None, ttl: float, max_frames: int, now: float
    ) -> Recovery:
        """Where ``topic`` stands, and the frames after ``since = (n, epoch)`` if they are all kept."""
        log = self._log(topic, now)
        n, epoch = log.n, log.epoch
        if since is None:
            return Recovery(n, epoch)
        after, their_epoch = since
        if their_epoch != epoch or after > n:
            return Recovery(n, epoch, False)
        if after == n:
            return Recovery(n, epoch, True)
        if n - after > max_frames:
            return Recovery(n, epoch, False)
        log.expire(ttl, now)
        entries = log.entries
        if not entries or entries[0][0] > after + 1:
            return Recovery(n, epoch, False)
        first = entries[0][0]
        frames = tuple(entries[i][2] for i in range(after + 1 - first, len(entries)))
        return Recovery(n, epoch, True, frames)

    def sweep(self, now: float) -> None:
        """Free the frames older than their topic's ``history_ttl``, and forget the topics not touched
        for :data:`NUMBERING_TTL` seconds (their numbering restarts, with a new epoch)."""
        self._next_sweep = now + SWEEP_INTERVAL
        forgotten = now - NUMBERING_TTL
        for topic, log in list(self.logs.items()):
            if log.touched < forgotten:
                del self.logs[topic]
            elif log.entries:
                log.expire(log.ttl, now)

"""The outbox of one connection: frames waiting for a socket that cannot take them now (no I/O).

A publish never waits on a socket. When a socket cannot be written at once
(its transport is paused by flow control, or another frame is still being
sent), the frame is appended to the connection's :class:`Outbox` and the
connection's own writer sends it when the socket drains. The outbox is
bounded, so a client that stops reading costs the server a bounded amount of
memory and never holds back anyone else:

* **The limit** is ``OUTBOX_MAX_FRAMES`` frames or ``OUTBOX_MAX_BYTES``
  (counted as characters of the JSON text, its size in bytes for ASCII),
  whichever comes first. A frame is always taken into an empty outbox,
  whatever its size.
* **Over the limit**, the outbox is *slow* since :attr:`Outbox.slow_since`:
  frames of volatile types (``Message.volatile``, a cursor position) are
  dropped and counted (:attr:`Outbox.dropped`); other frames are still
  queued, up to twice the limit. If the outbox has not come back under the
  limit after ``SLOW_CLIENT_GRACE`` seconds, the connection closes it with
  4408 (the consumer's timer, not this class).
* **At twice the limit** :meth:`Outbox.put` answers :data:`OVERFLOW`: a frame
  that is not volatile cannot be kept, so the connection closes at once
  with 4408 rather than lose it silently.

So the memory a connection holds in frames is at most twice the limit, plus
the frame being written, plus a replay.

**A replay** (the frames a resubscribing client missed, at most
``RECOVERY_MAX_FRAMES``) is counted against none of these limits:
:meth:`Outbox.put_replay` raises them by its size until as many frames have
been written.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["DROPPED", "OVERFLOW", "QUEUED", "Outbox"]

#: :meth:`Outbox.put` verdicts.
QUEUED: Final = "queued"
DROPPED: Final = "dropped"
OVERFLOW: Final = "overflow"


class Outbox:
    """Frames waiting to be written to one socket, bounded in frames and in bytes.

    ``now`` arguments are a monotonic clock's readings (``loop.time()``): the
    class keeps no clock of its own, so it is tested without a server.
    """

    __slots__ = (
        "allowance",
        "allowance_bytes",
        "dropped",
        "frames",
        "max_bytes",
        "max_frames",
        "size",
        "slow_since",
    )

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.frames: deque[str] = deque()
        #: Characters of the frames waiting.
        self.size = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        #: When the outbox went over its limit (``now`` of that :meth:`put`), None when under it.
        self.slow_since: float | None = None
        #: Volatile frames dropped so far because the outbox was over its limit.
        self.dropped = 0
        #: Frames and characters of replays not written yet: the limits are raised by them.
        self.allowance = 0
        self.allowance_bytes = 0

    def __len__(self) -> int:
        return len(self.frames)

    def __bool__(self) -> bool:
        return bool(self.frames)

    def put(self, text: str, volatile: bool, now: float) -> str:
        """Append ``text`` if the limits allow; :data:`QUEUED`, :data:`DROPPED` or :data:`OVERFLOW`."""
        frames = self.frames
        if frames:
            n, size = len(frames) - self.allowance, self.size - self.allowance_bytes
            if n >= self.max_frames or size >= self.max_bytes:
                if volatile:
                    self.dropped += 1
                    return DROPPED
                if n >= 2 * self.max_frames or size + len(text) > 2 * self.max_bytes:
                    return OVERFLOW
        frames.append(text)
        self.size += len(text)
        if self.slow_since is None and self._over():
            self.slow_since = now
        return QUEUED

    def put_replay(self, texts: tuple[str, ...]) -> None:
        """Append the frames of a replay, counted against no limit until as many have been taken."""
        self.frames.extend(texts)
        size = sum(map(len, texts))
        self.size += size
        self.allowance += len(texts)
        self.allowance_bytes += size

    def _over(self) -> bool:
        return (
            len(self.frames) - self.allowance >= self.max_frames
            or self.size - self.allowance_bytes >= self.max_bytes
        )

    def take(self) -> str:
        """Remove and return the oldest frame (the outbox must not be empty)."""
        text = self.frames.popleft()
        self.size -= len(text)
        if self.allowance:
            self.allowance -= 1
            self.allowance_bytes = max(0, self.allowance_bytes - len(text)) if self.allowance else 0
        if self.slow_since is not None and not self._over():
            self.slow_since = None
        return text

    def clear(self) -> int:
        """Drop every waiting frame (the connection is closing); returns how many there were."""
        n = len(self.frames)
        self.frames.clear()
        self.size = 0
        self.slow_since = None
        self.allowance = self.allowance_bytes = 0
        return n

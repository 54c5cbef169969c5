"""Message states, the ``s`` key of frames the server sends."""

from __future__ import annotations

__all__ = ["ACKNOWLEDGED", "FAILED", "QUEUED", "RUNNING", "SUCCESS", "TERMINAL_STATES"]

#: The message passed validation.
ACKNOWLEDGED = "a"
#: The message waits in a job queue.
QUEUED = "q"
#: A worker runs the handler; ``p`` may carry progress.
RUNNING = "r"
#: Terminal: the handler succeeded; ``p`` holds its result.
SUCCESS = "s"
#: Terminal: the message failed; the frame is an ``error.*`` message.
FAILED = "f"
#: States after which no other frame for the same ``i`` follows.
TERMINAL_STATES = frozenset((SUCCESS, FAILED))

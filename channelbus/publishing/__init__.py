"""Publishing: sending a message to topics and connections from any code, sync or async.

``api`` (``publish``, ``apublish``), ``targets`` (what ``to=`` takes), ``recheck`` (asking
followers again), ``closing`` (closing every socket of a user), ``presence`` (who is in a presence
topic: ``presence``, ``apresence``), ``sender`` (the event loop that sync code sends through) and
``binding`` (a model's changes published after commit).
"""

from __future__ import annotations

from .api import Published, apublish, hold_publishes, publish
from .closing import aclose_user, close_user
from .presence import apresence, presence
from .recheck import arecheck, recheck
from .sender import FrameSender, run_on_sender_loop, send_text, sender_loop
from .targets import resolve_targets

# FrameSender, run_on_sender_loop, send_text and sender_loop: where channelbus 0.1 had them.
__all__ = [
    "FrameSender",
    "Published",
    "aclose_user",
    "apresence",
    "apublish",
    "arecheck",
    "close_user",
    "hold_publishes",
    "presence",
    "publish",
    "recheck",
    "resolve_targets",
    "run_on_sender_loop",
    "send_text",
    "sender_loop",
]

"""Who may follow a topic: the check made on subscribe, once joined, and on every recheck."""

from __future__ import annotations

from typing import Any

from ..protocol import SubscribeRefused
from .kinds import Topic, topic_kinds

__all__ = ["check_access", "confirm_access"]


def check_access(name: str, user: Any) -> Topic:
    """Resolve ``name`` and check the user may follow it. Sync (may query the database).

    A missing object and a refused one get the same answer, so pks cannot be probed.
    """
    topic = topic_kinds.resolve(name)
    if not topic.allowed(user):
        # The name as sent, not the normalised one: "note:001" must not tell that note 1 exists.
        raise SubscribeRefused(f"You may not subscribe to {name}.", topic=name)
    return topic


def confirm_access(name: str, user: Any) -> Any:
    """After the join: check access again, then return the initial state. Sync (may query the database).

    A recheck that ran between the first check and the join did not see this connection; this
    second check, made once it is a member, catches what that recheck would have.
    """
    return check_access(name, user).initial_state(user)

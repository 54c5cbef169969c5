"""Who a presence member is: the key and the public info of a user who follows a presence topic.

A topic kind opts in with ``presence = True`` (the info is the user's display name) or with a
function of the user that returns the info, a dict. A member is a signed-in user, keyed by their pk
as a string; signed-out connections are never members (:func:`member_key` is None for them). The info
goes to everyone who may follow the topic, so it is bounded: encoded as JSON it must fit in
``PRESENCE_MAX_INFO_BYTES``, else :func:`member_info` logs a warning and gives ``{}``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..conf import settings

__all__ = ["DIFF_TYPE", "GET_TYPE", "STATE_TYPE", "display_name", "member_info", "member_key"]

logger = logging.getLogger("channelbus")

#: The wire types of presence (docs/protocol.md, "Presence").
GET_TYPE = "presence.get"
STATE_TYPE = "presence.state"
DIFF_TYPE = "presence.diff"


def member_key(user: Any) -> str | None:
    """The member key of ``user`` (their pk as a string), or None for a signed-out user (never a member)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def display_name(user: Any) -> str:
    """The name others see: the full name, else the username, never an email address.

    A user model whose username is its email field (``USERNAME_FIELD == EMAIL_FIELD``) and a user without
    a full name give ``"user <pk>"``: the address would otherwise go to every follower of the topic.
    """
    full = getattr(user, "get_full_name", None)
    name = str(full() or "").strip() if callable(full) else ""
    if name:
        return name
    username_field = getattr(user, "USERNAME_FIELD", "username")
    email_field = user.get_email_field_name() if hasattr(user, "get_email_field_name") else "email"
    username = user.get_username() if hasattr(user, "get_username") else ""
    if username and username_field != email_field and "@" not in str(username):
        return str(username)
    return f"user {user.pk}"


def member_info(presence: Any, user: Any, topic: str) -> dict[str, Any]:
    """The public info of ``user`` as a member of ``topic``, whose kind has ``presence``. Sync: a kind's
    function may query the database (the hub calls it in a thread).

    ``True`` gives ``{"name": display_name(user)}``. A function's result must be a dict that orjson
    encodes in at most ``PRESENCE_MAX_INFO_BYTES``; anything else (an exception too) is logged and
    gives ``{}``, so one bad member never stops the others from being seen.
    """
    if presence is True:
        return {"name": display_name(user)}
    try:
        info = presence(user)
        size = len(orjson.dumps(info))
    except Exception:
        logger.exception("channelbus: the presence info of user %s in %s failed; sent as {}", user.pk, topic)
        return {}
    if not isinstance(info, dict):
        logger.warning(
            "channelbus: the presence info of user %s in %s is a %s, not a dict; sent as {}",
            user.pk,
            topic,
            type(info).__name__,
        )
        return {}
    limit = int(settings.PRESENCE_MAX_INFO_BYTES)
    if size > limit:
        logger.warning(
            "channelbus: the presence info of user %s in %s has %d bytes (PRESENCE_MAX_INFO_BYTES is %d); "
            "sent as {}",
            user.pk,
            topic,
            size,
            limit,
        )
        return {}
    return info

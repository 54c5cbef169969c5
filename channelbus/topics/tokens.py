"""Signed topic tokens: a view names the topics a page follows without asking.

``topic_token(["chat.room:lobby"], user=request.user)`` goes into the page; the client sends it as
``?topics=<token>`` and the connection joins those topics at once (the server chose them: no
permission check runs). A token is bound to the user it was made for, and to that user's password
(the session auth hash, as Django's sessions are): presented by anyone else, or after a password
change, it joins nothing. ``public=True`` makes a token anyone may use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from django.core import signing
from django.utils.crypto import constant_time_compare

from ..conf import settings
from ..protocol import SubscribeRefused
from .kinds import topic_kinds, topic_name

__all__ = ["session_tag", "session_tag_matches", "topic_token", "topics_from_token"]

_TOKEN_SALT = "channelbus.topics"
_TAG_PREFIX = b"channelbus.session-tag:"


def _digest(auth_hash: str) -> str:
    return hashlib.sha256(_TAG_PREFIX + auth_hash.encode()).hexdigest()[:32]


def session_tag(user: Any) -> str | None:
    """A one-way digest of ``user.get_session_auth_hash()``, put into tokens that are bound to the user.

    It changes when the password changes, as the session auth hash does, so a token carrying it
    stops working then; it does not reveal the hash. None for a user model without the hash.
    """
    get_hash = getattr(user, "get_session_auth_hash", None)
    return None if get_hash is None else _digest(get_hash())


def session_tag_matches(user: Any, tag: Any) -> bool:
    """Whether ``tag`` is :func:`session_tag` of ``user`` now, with ``SECRET_KEY`` or, during a key
    rotation, with one of ``SECRET_KEY_FALLBACKS`` (as ``django.contrib.auth`` checks sessions)."""
    get_hash = getattr(user, "get_session_auth_hash", None)
    if get_hash is None:
        return tag is None
    if not isinstance(tag, str):
        return False
    if constant_time_compare(tag, _digest(get_hash())):
        return True
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    return fallbacks is not None and any(constant_time_compare(tag, _digest(h)) for h in fallbacks())


def topic_token(names: Iterable[Any], *, user: Any = None, public: bool = False) -> str:
    """A signed, expiring token naming topics a page may follow without asking.

    A view puts it into the page; the client sends it as ``?topics=<token>``
    in the WebSocket URL and the connection joins those topics at once. The
    server chose them, so no permission check runs; sign only what this
    request's user may see. ``user`` is the user the page is for
    (``request.user``): the token then works only on a connection of that
    user, and only until the user's password changes. A signed-out ``user``,
    or ``public=True``, makes a token anyone may use. Without either it raises
    ``ValueError``, as it does for a name whose kind is not registered
    (:meth:`TopicRegistry.require_kind`).
    """
    topics = [topic_kinds.require_kind(topic_name(n), "topic_token()") for n in names]
    data: dict[str, Any] = {"t": topics}
    if not public:
        if user is None:
            raise ValueError(
                "topic_token(): say whom the token is for: user=request.user (the token then works "
                "only for that user), or public=True (anyone who has it may follow these topics)."
            )
        if getattr(user, "is_authenticated", False):
            data["u"] = str(user.pk)
            tag = session_tag(user)
            if tag is not None:
                data["h"] = tag
    return signing.dumps(data, salt=_TOKEN_SALT, compress=True)


def topics_from_token(token: str, user: Any) -> list[str]:
    """The topic names in a token presented by ``user`` (the connection's user, or None when signed
    out); raises :class:`SubscribeRefused` saying why it is refused."""
    try:
        data = signing.loads(token, salt=_TOKEN_SALT, max_age=settings.TOPIC_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise SubscribeRefused("The topic token has expired; reload the page.", topic="") from None
    except signing.BadSignature:
        raise SubscribeRefused("The topic token is not valid.", topic="") from None
    if isinstance(data, list):  # channelbus 0.1 signed a bare list, bound to nobody
        raise SubscribeRefused(
            "The topic token was made by an older version of the server; reload the page.", topic=""
        )
    names = data.get("t") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SubscribeRefused("The topic token is not valid.", topic="")
    owner = data.get("u")
    if owner is not None:
        if not (getattr(user, "is_authenticated", False) and str(user.pk) == owner):
            raise SubscribeRefused("The topic token was made for another user.", topic="")
        if not session_tag_matches(user, data.get("h")):
            raise SubscribeRefused(
                "The topic token is no longer valid: the password changed since; reload the page.", topic=""
            )
    return names

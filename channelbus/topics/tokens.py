"""Signed topic tokens: a view names the topics a page follows without asking.

``topic_token(["chat.room:lobby"])`` goes into the page; the client sends it as ``?topics=<token>``
and the connection joins those topics at once (the server chose them: no permission check runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import signing

from ..conf import settings
from ..protocol import SubscribeRefused
from .kinds import topic_kinds, topic_name

__all__ = ["topic_token", "topics_from_token"]

_TOKEN_SALT = "channelbus.topics"


def topic_token(names: Iterable[Any]) -> str:
    """A signed, expiring token naming topics a page may follow without asking.

    A view puts it into the page; the client sends it as ``?topics=<token>``
    in the WebSocket URL and the connection joins those topics at once. The
    server chose them, so no permission check runs; sign only what this
    request's user may see. A name whose kind is not registered raises
    ``ValueError`` (:meth:`TopicRegistry.require_kind`).
    """
    topics = [topic_kinds.require_kind(topic_name(n), "topic_token()") for n in names]
    return signing.dumps(topics, salt=_TOKEN_SALT, compress=True)


def topics_from_token(token: str) -> list[str]:
    """The topic names in a token; raises :class:`SubscribeRefused` saying why it is refused."""
    try:
        names = signing.loads(token, salt=_TOKEN_SALT, max_age=settings.TOPIC_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise SubscribeRefused("The topic token has expired; reload the page.", topic="") from None
    except signing.BadSignature:
        raise SubscribeRefused("The topic token is not valid.", topic="") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SubscribeRefused("The topic token is not valid.", topic="")
    return names

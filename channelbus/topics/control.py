"""Built-in topic control messages: ``topic.subscribe``, ``topic.leave``, ``topic.list``, ``presence.get``.

``topic.subscribe`` looks the topic up and asks its kind whether the user may
follow it (in a thread: it may query the database), so it runs beside other
handlers (``concurrent``), never behind a slow one; ``topic.leave`` too, taking
turns with subscribes of the same connection. ``topic.list`` is a control
message answered at once. ``presence.get`` is checked as ``topic.subscribe`` is, and answered from
the hub's presence (``connection.hub``), as is the ``presence`` of a presence topic's ``topic.subscribed``.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from pydantic import BaseModel, ConfigDict, Field

from ..conf import settings
from ..messages import REPLIED, Message, incoming, outgoing, reply_frame
from ..protocol import SubscribeRefused
from .access import check_access, confirm_access
from .kinds import topic_kinds
from .presence import DIFF_TYPE, GET_TYPE, STATE_TYPE

__all__ = [
    "PresenceDiff",
    "PresenceGet",
    "PresenceState",
    "TopicLeave",
    "TopicLeft",
    "TopicList",
    "TopicSubscribe",
    "TopicSubscribed",
    "TopicSubscriptions",
]


class TopicPayload(BaseModel):
    """``{"topic": "<name>"}``."""

    topic: str


#: Largest ``n`` a client may send in ``since`` (JSON numbers beyond it lose precision in browsers).
MAX_SINCE = 2**53 - 1


class Since(BaseModel):
    """``{"n", "epoch"}``: the last frame of a topic the client saw, and its numbering's epoch."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=0, le=MAX_SINCE, strict=True)
    epoch: str = Field(min_length=1, max_length=64)


class SubscribePayload(BaseModel):
    """``{"topic", "since"?}``."""

    topic: str
    since: Since | None = None


class SubscribedPayload(BaseModel):
    """``{"topic", "state", "n", "epoch", "recovered"?}``: the topic, its initial state for this user,
    where its numbering stands, and (after a ``since``) whether the missed frames follow."""

    topic: str
    state: Any = None
    n: int = 0
    epoch: str = ""
    recovered: bool | None = None
    #: For a topic whose kind keeps presence: ``{"members", "count", "v", "truncated"}`` after the join.
    presence: Any = None


class LeftPayload(BaseModel):
    """``{"topic", "reason"}``; ``reason`` is set when the server removed the connection."""

    topic: str
    reason: str | None = None


class SubscriptionsPayload(BaseModel):
    """``{"topics": [...]}``."""

    topics: list[str]


@outgoing.register
class TopicSubscribed(Message):
    """Reply to ``topic.subscribe``."""

    name = "topic.subscribed"
    schema = SubscribedPayload

    def payload(self) -> Any:
        """The payload, without ``recovered`` when the subscribe gave no ``since``, and without ``presence``
        for a topic without presence."""
        data = super().payload()
        if data.get("recovered") is None:
            del data["recovered"]
        if data.get("presence") is None:
            del data["presence"]
        return data


@outgoing.register
class TopicLeft(Message):
    """Reply to ``topic.leave``, or sent alone when access to a topic was revoked."""

    name = "topic.left"
    schema = LeftPayload
    exclude_none = True


@outgoing.register
class TopicSubscriptions(Message):
    """Reply to ``topic.list``."""

    name = "topic.subscriptions"
    schema = SubscriptionsPayload


@incoming.register
class TopicSubscribe(Message):
    """``topic.subscribe {"topic", "since"?}`` → ``topic.subscribed {"topic", "state", "n", "epoch",
    "recovered"?}`` (then the missed frames, when recovered) or ``error.subscribe``."""

    name = "topic.subscribe"
    schema = SubscribePayload
    concurrent = True
    idempotent = False  # renewed by every resubscription: a repeat must subscribe again

    async def handle(self) -> Any:
        """Check, join, check again, then compute the initial state (joined first, so no change is
        missed; checked again once joined, so no recheck is missed).

        Subscribes and leaves of one connection take turns (its topic lock), so a
        ``topic.leave`` sent during a slow check is applied after it, in order. The topic's
        frames are held back from the join until the reply is sent; then come the missed frames
        (with ``since``, when all are kept), then those held, newer than the reply's ``n``.
        """
        connection = self.meta.connection
        since = self.data.since
        async with connection.topic_lock:
            topic = await database_sync_to_async(check_access)(self.data.topic, self.user)
            name = topic.name
            if name not in connection.topics and len(connection.topics) >= connection.max_topics:
                raise SubscribeRefused(
                    f"This connection follows {connection.max_topics} topics already; leave one first.",
                    topic=name,
                )
            recovery = await connection.follow(name, None if since is None else (since.n, since.epoch))
            try:
                state = await database_sync_to_async(confirm_access)(self.data.topic, self.user)
                presence = await presence_after_join(connection, name)
            except BaseException:
                await connection.leave(name)
                raise
            reply = TopicSubscribed(
                topic=name, state=state, n=recovery.n, epoch=recovery.epoch, recovered=recovery.recovered
            )
            reply.data.presence = presence  # None (no presence) is left out of the payload
            try:
                if self.meta.trace_id is not None:
                    await connection.send_frame(reply_frame(type(self), self.meta.trace_id, reply))
            finally:
                connection.release(name, recovery)
        return REPLIED


@incoming.register
class TopicLeave(Message):
    """``topic.leave {"topic"}`` → ``topic.left {"topic"}`` (also when it was not followed)."""

    name = "topic.leave"
    schema = TopicPayload
    concurrent = True  # it waits for a subscribe in progress, but never blocks the socket
    idempotent = False  # a repeat must leave again (a subscribe may have come in between)

    async def handle(self) -> Any:
        """Leave the topic (after any subscribe of this connection still being checked)."""
        connection = self.meta.connection
        async with connection.topic_lock:
            await connection.leave(self.data.topic)
        return TopicLeft(topic=self.data.topic)


@incoming.register
class TopicList(Message):
    """``topic.list`` → ``topic.subscriptions {"topics"}``."""

    name = "topic.list"
    control = True
    idempotent = False  # the topics followed now, not when first asked

    async def handle(self) -> Any:
        """The topics this connection follows, sorted."""
        return TopicSubscriptions(topics=sorted(self.meta.connection.topics))


async def presence_after_join(connection: Any, name: str) -> dict[str, Any] | None:
    """The presence of topic ``name`` for its ``topic.subscribed`` (None if its kind keeps none)."""
    if not topic_kinds.presence_of(name):
        return None
    state: dict[str, Any] = await connection.hub.presence_state(name, int(settings.PRESENCE_MAX_MEMBERS))
    return state


class PresenceGetPayload(BaseModel):
    """``{"topic": "<name>"}``, nothing else."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(strict=True)


class PresenceStatePayload(BaseModel):
    """``{"topic", "members", "count", "v", "truncated"}``: the members now (``{<key>: {"info", "conns"}}``,
    at most ``PRESENCE_MAX_MEMBERS``), how many there are, the version, and whether some are left out."""

    topic: str
    members: dict[str, Any]
    count: int
    v: int
    truncated: bool


class PresenceDiffPayload(BaseModel):
    """``{"topic", "joins", "leaves", "count", "v"}``: entries to set, entries gone, the count after, v."""

    topic: str
    joins: dict[str, Any]
    leaves: dict[str, Any]
    count: int
    v: int


@outgoing.register
class PresenceState(Message):
    """Reply to ``presence.get``."""

    name = STATE_TYPE
    schema = PresenceStatePayload


@outgoing.register
class PresenceDiff(Message):
    """Published to a presence topic when members came, changed or went (encoded by the hub's presence
    tracker, ``channelbus.transport.presence_tracker``; registered here for the registry and clients)."""

    name = DIFF_TYPE
    schema = PresenceDiffPayload


@incoming.register
class PresenceGet(Message):
    """``presence.get {"topic"}`` → ``presence.state``, or ``error.subscribe`` (checked as a subscribe is)."""

    name = GET_TYPE
    schema = PresenceGetPayload
    concurrent = True  # its check may query the database: never behind a slow handler
    idempotent = False  # the members now, not when first asked

    async def handle(self) -> Any:
        """Check the user may follow the topic (the same refusals as a subscribe: no member list leaks),
        then read its members; the asker need not follow it."""
        topic = await database_sync_to_async(check_access)(self.data.topic, self.user)
        if not type(topic).presence:
            raise SubscribeRefused(f"Topic kind {topic.kind!r} keeps no presence.", topic=topic.name)
        limit = int(settings.PRESENCE_MAX_MEMBERS)
        state = await self.meta.connection.hub.presence_state(topic.name, limit)
        return PresenceState(topic=topic.name, **state)

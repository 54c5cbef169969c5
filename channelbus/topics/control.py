"""Built-in topic control messages: ``topic.subscribe``, ``topic.leave``, ``topic.list``.

``topic.subscribe`` looks the topic up and asks its kind whether the user may
follow it (in a thread: it may query the database), so it runs beside other
handlers (``concurrent``), never behind a slow one; ``topic.leave`` too, taking
turns with subscribes of the same connection. ``topic.list`` is a control
message answered at once.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from pydantic import BaseModel, ConfigDict, Field

from ..messages import REPLIED, Message, incoming, outgoing, reply_frame
from ..protocol import SubscribeRefused
from .access import check_access, confirm_access

__all__ = ["TopicLeave", "TopicLeft", "TopicList", "TopicSubscribe", "TopicSubscribed", "TopicSubscriptions"]


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
        """The payload, without ``recovered`` when the subscribe gave no ``since``."""
        data = super().payload()
        if data.get("recovered") is None:
            del data["recovered"]
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
            except BaseException:
                await connection.leave(name)
                raise
            reply = TopicSubscribed(
                topic=name, state=state, n=recovery.n, epoch=recovery.epoch, recovered=recovery.recovered
            )
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

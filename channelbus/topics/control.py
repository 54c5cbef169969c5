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
from pydantic import BaseModel

from ..messages import Message, incoming, outgoing
from ..protocol import SubscribeRefused
from .access import check_access, confirm_access

__all__ = ["TopicLeave", "TopicLeft", "TopicList", "TopicSubscribe", "TopicSubscribed", "TopicSubscriptions"]


class TopicPayload(BaseModel):
    """``{"topic": "<name>"}``."""

    topic: str


class SubscribedPayload(BaseModel):
    """``{"topic", "state"}``: the topic and its initial state for this user."""

    topic: str
    state: Any = None


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
    """``topic.subscribe {"topic"}`` → ``topic.subscribed {"topic", "state"}`` or ``error.subscribe``."""

    name = "topic.subscribe"
    schema = TopicPayload
    concurrent = True

    async def handle(self) -> Any:
        """Check, join, check again, then compute the initial state (joined first, so no change is
        missed; checked again once joined, so no recheck is missed).

        Subscribes and leaves of one connection take turns (its topic lock), so a
        ``topic.leave`` sent during a slow check is applied after it, in order.
        """
        connection = self.meta.connection
        async with connection.topic_lock:
            topic = await database_sync_to_async(check_access)(self.data.topic, self.user)
            if topic.name not in connection.topics and len(connection.topics) >= connection.max_topics:
                raise SubscribeRefused(
                    f"This connection follows {connection.max_topics} topics already; leave one first.",
                    topic=topic.name,
                )
            await connection.join(topic.name)
            try:
                state = await database_sync_to_async(confirm_access)(self.data.topic, self.user)
            except BaseException:
                await connection.leave(topic.name)
                raise
        return TopicSubscribed(topic=topic.name, state=state)


@incoming.register
class TopicLeave(Message):
    """``topic.leave {"topic"}`` → ``topic.left {"topic"}`` (also when it was not followed)."""

    name = "topic.leave"
    schema = TopicPayload
    concurrent = True  # it waits for a subscribe in progress, but never blocks the socket

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

    async def handle(self) -> Any:
        """The topics this connection follows, sorted."""
        return TopicSubscriptions(topics=sorted(self.meta.connection.topics))

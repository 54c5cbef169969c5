"""Built-in topic control messages: ``topic.subscribe``, ``topic.leave``, ``topic.list``.

``topic.subscribe`` looks the topic up and asks its kind whether the user may
follow it (in a thread: it may query the database), so it runs beside other
handlers (``concurrent``), never behind a slow one. ``topic.leave`` and
``topic.list`` are control messages answered at once.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from pydantic import BaseModel

from .messages import Message
from .protocol import SubscribeRefused
from .registry import incoming, outgoing
from .topics import Topic, topic_kinds

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


def check_subscription(name: str, user: Any) -> tuple[Topic, Any]:
    """Resolve ``name``, check the user may follow it, and compute its initial state. Sync (ORM)."""
    topic = topic_kinds.resolve(name)
    if not topic.allowed(user):
        raise SubscribeRefused(f"You may not subscribe to {topic.name}.", topic=topic.name)
    return topic, topic.initial_state(user)


@incoming.register
class TopicSubscribe(Message):
    """``topic.subscribe {"topic"}`` → ``topic.subscribed {"topic", "state"}`` or ``error.subscribe``."""

    name = "topic.subscribe"
    schema = TopicPayload
    concurrent = True

    async def handle(self) -> Any:
        """Check, then join the topic on this connection."""
        connection = self.meta.connection
        name = self.data.topic
        if name not in connection.topics and len(connection.topics) >= connection.max_topics:
            raise SubscribeRefused(
                f"This connection follows {connection.max_topics} topics already; leave one first.",
                topic=name,
            )
        topic, state = await database_sync_to_async(check_subscription)(name, self.user)
        await connection.join(topic.name)
        return TopicSubscribed(topic=topic.name, state=state)


@incoming.register
class TopicLeave(Message):
    """``topic.leave {"topic"}`` → ``topic.left {"topic"}`` (also when it was not followed)."""

    name = "topic.leave"
    schema = TopicPayload
    control = True

    async def handle(self) -> Any:
        """Leave the topic."""
        await self.meta.connection.leave(self.data.topic)
        return TopicLeft(topic=self.data.topic)


@incoming.register
class TopicList(Message):
    """``topic.list`` → ``topic.subscriptions {"topics"}``."""

    name = "topic.list"
    control = True

    async def handle(self) -> Any:
        """The topics this connection follows, sorted."""
        return TopicSubscriptions(topics=sorted(self.meta.connection.topics))

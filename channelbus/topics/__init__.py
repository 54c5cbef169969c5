"""Topics: the kinds a project declares, who may follow them, and the subscription messages.

``kinds`` (:class:`Topic`, ``topic_kinds``, the built-in ``user`` and ``broadcast`` kinds),
``access`` (the permission check), ``tokens`` (signed topic lists for pages) and ``control``
(``topic.subscribe``, ``topic.leave``, ``topic.list`` and their replies).
"""

from __future__ import annotations

from .kinds import BroadcastTopic, Topic, TopicRegistry, UserTopic, topic_kinds, topic_name
from .tokens import topic_token, topics_from_token

__all__ = [
    "BroadcastTopic",
    "Topic",
    "TopicRegistry",
    "UserTopic",
    "topic_kinds",
    "topic_name",
    "topic_token",
    "topics_from_token",
]

"""``fp.t:<slug>``: a topic any signed-in user may follow, for the raw-frame tests."""

from channelbus.topics import Topic, topic_kinds


@topic_kinds.register
class FastTopic(Topic):
    """``fp.t:<slug>``: any signed-in user; no initial state."""

    kind = "fp.t"
    key_type = "slug"

"""``bench.all``: the topic every subscriber of the fan-out benchmark follows."""

from channelbus.topics import Topic, topic_kinds


@topic_kinds.register
class BenchAll(Topic):
    """``bench.all``: no key; anyone connected may follow it."""

    kind = "bench.all"
    key_type = None

    def allowed(self, user):
        """Everyone, signed in or not."""
        return True

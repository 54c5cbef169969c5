"""``asgi_bus`` with a history on ``bench.all`` (``CHANNELBUS["TOPIC_HISTORY_SIZE"] = 1000``)."""

import os

os.environ["FANOUT_HISTORY_SIZE"] = "1000"

from fanout_site.asgi_bus import application

__all__ = ["application"]

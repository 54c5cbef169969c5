"""``asgi_bus`` with ``CHANNELBUS["RAW_FRAMES"] = False``: every delivery goes through the ASGI send."""

import os

os.environ["FANOUT_RAW_FRAMES"] = "0"

from fanout_site.asgi_bus import application

__all__ = ["application"]

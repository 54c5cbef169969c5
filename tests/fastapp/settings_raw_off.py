"""The demo's settings with ``CHANNELBUS["RAW_FRAMES"] = False``."""

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS

CHANNELBUS = {**CHANNELBUS, "RAW_FRAMES": False}

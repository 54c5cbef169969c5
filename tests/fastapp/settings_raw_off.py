"""The raw-frame tests' settings with ``CHANNELBUS["RAW_FRAMES"] = False``."""

from tests.fastapp.settings import *  # noqa: F403
from tests.fastapp.settings import CHANNELBUS

CHANNELBUS = {**CHANNELBUS, "RAW_FRAMES": False}

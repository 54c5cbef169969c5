"""The demo's settings for the slow-client tests: the default outbox limits, a short grace time."""

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS

CHANNELBUS = {**CHANNELBUS, "SLOW_CLIENT_GRACE": 2.0}

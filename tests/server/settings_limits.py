"""The demo's settings for the connection-limit tests (tests/server/test_limits.py): small limits."""

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS

CHANNELBUS = {**CHANNELBUS, "MAX_CONNECTIONS_PER_USER": 2, "MAX_CONNECTIONS_PER_ADDRESS": 3}

"""The demo's settings for the connection-limit tests (tests/server/test_limits.py): small limits, and
signed-out sockets allowed (so that the tests need no guest user per socket)."""

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS

CHANNELBUS = {
    **CHANNELBUS,
    "MAX_CONNECTIONS_PER_USER": 2,
    "MAX_CONNECTIONS_PER_ADDRESS": 3,
    "ALLOW_ANONYMOUS": True,
}

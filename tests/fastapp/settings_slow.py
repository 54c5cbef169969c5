"""The demo's settings for the slow-client tests: the default outbox limits, a short grace time,
and no cap on connections per user or address (1,000 sockets of one guest, from 127.0.0.1)."""

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS

CHANNELBUS = {
    **CHANNELBUS,
    "SLOW_CLIENT_GRACE": 2.0,
    "MAX_CONNECTIONS_PER_USER": None,
    "MAX_CONNECTIONS_PER_ADDRESS": None,
}

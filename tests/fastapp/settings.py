"""The demo's settings for the raw-frame tests: outboxes large enough for their bursts.

Those tests publish megabytes in a tight loop to clients that read one socket after the
other, to check order and framing; with the default outbox limits such a burst closes a
client that falls behind (4408, ``docs/protocol.md`` "Slow clients"), which is what
``settings_slow`` tests.
"""

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS

CHANNELBUS = {**CHANNELBUS, "OUTBOX_MAX_FRAMES": 100_000, "OUTBOX_MAX_BYTES": 256 * 1024 * 1024}

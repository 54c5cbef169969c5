"""The fuzz site with the demo's own limits (rate limit, flood close): ``tests/system/test_fuzz.py``."""

from demo_site.settings import CHANNELBUS as DEMO_CHANNELBUS

from fuzz_site.settings import *  # noqa: F403

CHANNELBUS = DEMO_CHANNELBUS

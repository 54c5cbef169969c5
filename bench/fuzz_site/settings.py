"""The demo's settings for the fuzzer and the churn load (``bench/fuzz.py``, ``bench/churn.py``).

The demo as it ships (the embedded default: SQLite, the in-memory layer, the database job queue run by
``runbus``'s worker thread), with these changes:

* ``RATE_LIMIT: None``: the clients send as fast as replies come back (the limits are tested as they are,
  with the demo's own settings, in ``tests/system/test_fuzz.py``);
* ``DEBUG = False``, as in production (Django keeps no query log);
* the database in ``BENCH_DB_DIR``, a directory the caller made for the run.
"""

import os
import tempfile
from pathlib import Path

from demo_site.settings import *  # noqa: F403
from demo_site.settings import CHANNELBUS, DATABASES

DEBUG = False
DATABASES["default"]["NAME"] = Path(os.environ.get("BENCH_DB_DIR", tempfile.gettempdir())) / "fuzz.sqlite3"
CHANNELBUS = {**CHANNELBUS, "RATE_LIMIT": None}

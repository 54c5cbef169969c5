"""The demo's settings (``demo/demo_site/settings.py``, with all its ``DEMO_*`` switches) plus this app.

``bench/deferred.py`` adds this app through ``DEMO_EXTRA_APPS=deferred_site`` (with ``bench/`` on
``PYTHONPATH``). Changes to the demo:

* ``RATE_LIMIT`` is off: the default (50 messages/s per connection, burst 100) would refuse part
  of the throughput run's load, which comes from one client;
* ``BENCH_SQLITE_WAL=1`` (cases with ``+wal``) opens SQLite in WAL mode with
  ``synchronous=NORMAL`` and ``IMMEDIATE`` transactions, a common production setting for SQLite;
* ``BENCH_CONN_MAX_AGE=<seconds>`` (cases with ``+persistent``) sets ``CONN_MAX_AGE``: the
  demo's default of 0 makes Django close the connection after each request and each worker loop.
"""

import os

from demo_site.settings import *  # noqa: F403

CHANNELBUS = {"RATE_LIMIT": None}

if os.environ.get("BENCH_SQLITE_WAL") == "1":
    DATABASES["default"]["OPTIONS"] = {  # noqa: F405
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        "transaction_mode": "IMMEDIATE",
    }

if os.environ.get("BENCH_CONN_MAX_AGE"):  # +persistent: keep database connections open
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])  # noqa: F405

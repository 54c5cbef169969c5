"""The fuzz site for ``bench/churn.py``: 500 sockets from one address, of a few users, at once."""

from fuzz_site.settings import *  # noqa: F403
from fuzz_site.settings import CHANNELBUS

CHANNELBUS = {**CHANNELBUS, "MAX_CONNECTIONS_PER_ADDRESS": 2000, "MAX_CONNECTIONS_PER_USER": 2000}

if os.environ.get("CHURN_TRACEMALLOC"):  # noqa: F405 - os comes with the star import
    # SIGUSR1 writes a tracemalloc snapshot to $BENCH_DB_DIR/snapshot-<n>.pickle (churn.py --tracemalloc).
    import itertools
    import signal
    import tracemalloc

    tracemalloc.start(int(os.environ["CHURN_TRACEMALLOC"]))  # noqa: F405
    _numbers = itertools.count(1)

    def _snapshot(signum, frame):
        path = Path(os.environ["BENCH_DB_DIR"]) / f"snapshot-{next(_numbers)}.pickle"  # noqa: F405
        tracemalloc.take_snapshot().dump(str(path))

    signal.signal(signal.SIGUSR1, _snapshot)

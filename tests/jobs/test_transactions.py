"""A deferred handler's transaction takes SQLite's write lock at its first write, not for its whole run
(issue 11): on a real SQLite file in WAL and IMMEDIATE mode, in-process and under a real runbus."""

import asyncio
import copy
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, connections, transaction

from channelbus.client import BusClient, fetch_cookies
from channelbus.jobs.transactions import job_atomic
from tests.servers import demo_server

ALIAS = "jobs_lock"


@pytest.fixture
def lockdb(tmp_path, django_db_blocker):
    """A database alias on a SQLite file, configured as the embedded default (WAL, IMMEDIATE), with a table
    ``t(n)``; every thread gets its own connection, as the server's and the worker's threads do."""
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict.update(
        NAME=str(tmp_path / "lock.sqlite3"),
        OPTIONS={"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 5},
    )
    connections.settings[ALIAS] = settings_dict
    with django_db_blocker.unblock():
        with connections[ALIAS].cursor() as cursor:
            cursor.execute("CREATE TABLE t (n integer)")
        try:
            yield connections[ALIAS]
        finally:
            connections[ALIAS].close()
            del connections[ALIAS]
            del connections.settings[ALIAS]


def _other(sql, busy_timeout_ms=100):
    """Run ``sql`` on another connection, in another thread, waiting at most ``busy_timeout_ms`` for the
    lock; return the rows or the error."""

    def run():
        raw = sqlite3.connect(connections.settings[ALIAS]["NAME"], timeout=busy_timeout_ms / 1000)
        try:
            with raw:
                return raw.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            return exc
        finally:
            raw.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _rows(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM t ORDER BY n")
        return [n for (n,) in cursor.fetchall()]


def _insert(connection, n):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO t (n) VALUES (%s)", [n])


def test_a_block_that_only_reads_leaves_others_free_to_write(lockdb):
    with job_atomic(ALIAS):
        assert _rows(lockdb) == []
        assert lockdb.in_atomic_block
        assert _other("INSERT INTO t (n) VALUES (1)") == []  # no lock held: done within 0.1 s
        assert _rows(lockdb) == [1]  # each read sees the latest commit
    assert _rows(lockdb) == [1]


def test_from_its_first_write_the_block_holds_the_lock_and_commits_everything_at_its_end(lockdb):
    with job_atomic(ALIAS):
        _insert(lockdb, 1)
        refused = _other("INSERT INTO t (n) VALUES (2)")
        assert isinstance(refused, sqlite3.OperationalError)
        assert "locked" in str(refused)
        _insert(lockdb, 3)
        assert _other("SELECT n FROM t") == []  # not committed yet (WAL: readers go on)
    assert _other("SELECT n FROM t ORDER BY n") == [(1,), (3,)]


def test_a_block_that_raises_rolls_back_its_writes_and_runs_no_on_commit(lockdb):
    committed = []
    with pytest.raises(ValueError, match="handler failed"), job_atomic(ALIAS):
        _insert(lockdb, 1)
        transaction.on_commit(lambda: committed.append(True), using=ALIAS)
        raise ValueError("handler failed")
    assert _rows(lockdb) == []
    assert committed == []
    with job_atomic(ALIAS):
        transaction.on_commit(lambda: committed.append(True), using=ALIAS)
        assert committed == []
    assert committed == [True]


def test_a_write_after_another_connection_committed_waits_for_the_lock_instead_of_failing(lockdb):
    """What IMMEDIATE mode is for: a transaction that read, then writes after someone else's commit, does
    not fail with "database is locked" (SQLITE_BUSY_SNAPSHOT), because its BEGIN IMMEDIATE comes before
    the write, with the busy timeout."""
    with job_atomic(ALIAS):
        assert _rows(lockdb) == []
        assert _other("INSERT INTO t (n) VALUES (1)") == []
        _insert(lockdb, 2)
        assert _rows(lockdb) == [1, 2]
    assert _rows(lockdb) == [1, 2]


def test_a_handlers_own_atomic_block_is_a_savepoint_inside_the_jobs_transaction(lockdb):
    with job_atomic(ALIAS):
        assert _rows(lockdb) == []
        with pytest.raises(OperationalError), transaction.atomic(using=ALIAS):
            _insert(lockdb, 1)
            with lockdb.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table")
        _insert(lockdb, 2)
        with transaction.atomic(using=ALIAS):
            _insert(lockdb, 3)
        assert _other("SELECT n FROM t") == []  # the inner block's end committed nothing
    assert _rows(lockdb) == [2, 3]


def test_inside_a_running_transaction_it_is_a_plain_savepoint(lockdb):
    with transaction.atomic(using=ALIAS):
        _insert(lockdb, 1)
        with pytest.raises(ValueError, match="inner"), job_atomic(ALIAS):
            _insert(lockdb, 2)
            raise ValueError("inner")
        assert _rows(lockdb) == [1]


@pytest.mark.django_db
def test_elsewhere_it_is_transaction_atomic():
    """The tests' own database is in-memory SQLite without a transaction mode: nothing is held back."""
    default = connections["default"]
    assert getattr(default, "transaction_mode", None) is None
    with job_atomic():
        assert default.in_atomic_block
        assert default.execute_wrappers == []


async def test_a_long_job_with_progress_does_not_hold_up_another_users_sync_handler(tmp_path):
    """The embedded default under a real runbus: SQLite in WAL and IMMEDIATE mode, the worker thread beside
    the server. A demo.count job runs 3 s (60 steps of 0.05 s, a progress frame each, in the job's
    transaction); another user's board.add (a sync handler that writes) meanwhile takes well under 1 s.
    Before, it waited for the whole job."""
    with demo_server(tmp_path, args=("--worker-interval", "0.05")) as address:
        alice, bob = [await asyncio.to_thread(fetch_cookies, f"http://{address}/") for _ in range(2)]
        url = f"ws://{address}/ws/"
        async with BusClient(url, cookies=alice) as counter, BusClient(url, cookies=bob) as writer:
            counting = asyncio.Event()
            job = asyncio.create_task(
                counter.request(
                    "demo.count", {"to": 60}, timeout=60, on_state=lambda f: f.get("p") and counting.set()
                )
            )
            await asyncio.wait_for(counting.wait(), 30)  # the job runs, in its transaction
            slowest, writes = 0.0, 0
            while not job.done():
                start = time.monotonic()
                await writer.request("board.add", {"title": f"while counting {writes}"}, timeout=30)
                slowest = max(slowest, time.monotonic() - start)
                writes += 1
                await asyncio.sleep(0.1)
            assert await job == {"total": 60}
    assert writes >= 5  # they ran while the job did
    assert slowest < 1.0

"""Real worker processes: django_tasks_db's db_worker on SQLite and on PostgreSQL (several, with strict
ordering, and one killed mid-job), and RQ's rqworker."""

import asyncio
import contextlib
import os
import random
import sqlite3
import subprocess
import sys
import uuid

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.jobs.test_deferred import timed_out
from tests.redis_support import require_redis
from tests.servers import DEMO, ROOT, demo_env, demo_server, migrate_demo
from tests.waiting import wait_for


def require_postgres():
    """A fresh database on the PostgreSQL at 127.0.0.1:5432 (fail under CI=true, skip elsewhere)."""
    try:
        import psycopg

        conn = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True, connect_timeout=3)
    except Exception as exc:
        message = f"PostgreSQL at 127.0.0.1:5432 is needed for this test and is not reachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return conn


@pytest.fixture
def postgres_db():
    conn = require_postgres()
    name = f"channelbus_{uuid.uuid4().hex[:10]}"
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def ordered_jobs(dbname):
    """(n, status, worker ids, finished at) of every e2e.ordered job row in a demo's PostgreSQL database."""
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={dbname}", connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT args_kwargs, status, worker_ids, finished_at FROM django_tasks_database_dbtaskresult"
            " WHERE task_path = 'channelbus.jobs.deferred.run_deferred' ORDER BY enqueued_at"
        ).fetchall()
    jobs = [(a["args"][0], status, w, f) for a, status, w, f in rows]
    return [
        (job["payload"]["n"], status, w, f) for job, status, w, f in jobs if job["type_name"] == "e2e.ordered"
    ]


@pytest.fixture
def deployment(tmp_path, postgres_db):
    """The demo on PostgreSQL with Redis layer and cache, three db_worker processes, no embedded worker."""
    require_redis()
    env = {
        "DEMO_POSTGRES_DB": postgres_db,
        "DEMO_CHANNEL_LAYER": "redis",
        "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}",
        "DEMO_CACHE": "redis",
        "DEMO_EXTRA_APPS": "tests.slowapp",
        "PYTHONPATH": str(ROOT),
    }
    migrate_demo(tmp_path, env)
    workers = [start_db_worker(tmp_path, env, f"w{n}") for n in range(3)]
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            yield server
    finally:
        stop(workers)


def start_db_worker(tmp_path, env, worker_id):
    """A `manage.py db_worker` process of the demo, looking for jobs every 0.05 s."""
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--interval",
            "0.05",
            "--worker-id",
            worker_id,
        ],
        cwd=DEMO,
        env=demo_env(tmp_path, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(workers):
    """Stop the worker processes that are still running."""
    running = [w for w in workers if w is not None and w.poll() is None]
    for worker in running:
        worker.terminate()
    for worker in running:
        worker.wait(10)


@pytest.fixture
def sqlite_deployment(tmp_path):
    """The demo on its SQLite file (WAL, IMMEDIATE transactions: its settings) with the Redis layer, one
    db_worker process, no embedded worker."""
    require_redis()
    env = {"DEMO_CHANNEL_LAYER": "redis", "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}"}
    migrate_demo(tmp_path, env)
    worker = start_db_worker(tmp_path, env, "sqlite1")
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            yield server, tmp_path / "demo.sqlite3"
    finally:
        stop([worker])


async def test_a_db_worker_process_on_sqlite(sqlite_deployment):
    server, database = sqlite_deployment
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
        seen = []
        done = await bus.request_frame("demo.count", {"to": 5}, timeout=30, on_state=seen.append)
        assert done["t"] == "demo.count"
        assert done["s"] == "s"
        assert done["p"] == {"total": 5}
        assert [f["s"] for f in seen] == ["q", "r", "r", "r", "r", "r", "r"]
        assert "p" not in seen[0]
        assert "p" not in seen[1]
        assert [f["p"] for f in seen[2:]] == [
            {"done": n, "total": 5, "text": f"step {n}"} for n in range(1, 6)
        ]
        assert all(f["i"] == done["i"] for f in seen)
        # demo.fail: retry_delays (0.2, 0.5) become the retries' run_after; each attempt starts with r.
        loop = asyncio.get_running_loop()
        starts = []

        def on_state(frame):
            if frame["s"] == "r":
                starts.append(loop.time())

        with pytest.raises(RequestFailed) as exc:
            await bus.request("demo.fail", {}, timeout=30, on_state=on_state)
        assert exc.value.type == "error.job"
        assert exc.value.payload["attempts"] == 3
        assert len(starts) == 3
        # Arrival times: a little jitter allowed; without the waits the worker (every 0.05 s) is faster.
        assert starts[1] - starts[0] >= 0.15
        assert starts[2] - starts[1] >= 0.45

    def jobs():
        with contextlib.closing(sqlite3.connect(database)) as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            rows = db.execute("SELECT status, worker_ids FROM django_tasks_database_dbtaskresult").fetchall()
        return mode, rows

    async def all_recorded():
        # The job's last frame is sent from inside it, before db_worker records its end: wait for the rows.
        mode, rows = await asyncio.to_thread(jobs)
        return (mode, sorted(rows)) if rows and all(status != "RUNNING" for status, _ in rows) else None

    mode, rows = await wait_for(all_recorded, timeout=10, what="every job row recorded as ended")
    assert mode == "wal"
    # The jobs were rows of that file, run by the db_worker process (the server runs none): count, fail x3.
    assert rows == [("SUCCESSFUL", '["sqlite1"]')] * 4


async def _ordered_run(address, seed):
    """A new guest sends 10 strictly ordered jobs of random durations at once; the replies as they came."""
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{address}/")
    async with BusClient(f"ws://{address}/ws/", cookies=cookies) as bus:
        rng = random.Random(seed)
        steps = [{"n": n, "ms": rng.choice([0, 20, 80, 150])} for n in range(10)]
        replies = []

        async def one(step):
            replies.append(await bus.request("e2e.ordered", step, timeout=60))

        await asyncio.gather(*(one(step) for step in steps))
        return replies


async def test_strict_order_with_three_workers_on_postgres(deployment):
    # Two tabs at once: each one's jobs run one after another in its order, while the two chains run side
    # by side on different workers (a finished job wakes its successor, which any idle worker may take).
    runs = await asyncio.gather(_ordered_run(deployment, 7), _ordered_run(deployment, 8))
    for replies in runs:
        assert [r["n"] for r in replies] == list(range(10))
    assert len({r["worker"] for replies in runs for r in replies}) >= 2, "the jobs should spread over workers"
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{deployment}/")
    async with BusClient(f"ws://{deployment}/ws/", cookies=cookies) as bus:
        # demo.count goes through a worker process too: q, r, progress, s reach this socket over Redis.
        seen = []
        done = await bus.request_frame("demo.count", {"to": 3}, timeout=30, on_state=seen.append)
        # db_worker runs jobs in its main thread: SIGALRM cuts one time.sleep(5) short, in each attempt.
        with pytest.raises(RequestFailed) as exc:
            await bus.request("e2e.overrun", {"seconds": 5}, timeout=30)
        assert exc.value.type == "error.job"
        assert exc.value.payload == timed_out("e2e.overrun", 2)
    assert done["p"] == {"total": 3}
    assert [f["s"] for f in seen] == ["q", "r", "r", "r", "r"]


@pytest.fixture
def rq_deployment(tmp_path):
    """The demo with RQ on Redis as its task backend, a real rqworker (with scheduler) and the Redis layer."""
    require_redis()
    prefix = f"cbtest{uuid.uuid4().hex[:8]}"
    env = {
        "DEMO_TASKS": "rq",
        "DEMO_CHANNEL_LAYER": "redis",
        "DEMO_REDIS_PREFIX": prefix,
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "DEMO_EXTRA_APPS": "tests.slowapp",
        "PYTHONPATH": str(ROOT),
    }
    migrate_demo(tmp_path, env)
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            "--job-class",
            "django_tasks_rq.Job",
            "--with-scheduler",
            "default",
        ],
        cwd=DEMO,
        env=demo_env(tmp_path, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            yield server
    finally:
        worker.terminate()
        worker.wait(10)


async def test_rq_backend_with_a_real_rqworker(rq_deployment):
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{rq_deployment}/")
    async with BusClient(f"ws://{rq_deployment}/ws/", cookies=cookies) as bus:
        seen = []
        done = await bus.request_frame("demo.count", {"to": 5}, timeout=30, on_state=seen.append)
        assert done["p"] == {"total": 5}
        assert [f["s"] for f in seen] == ["q", "r", "r", "r", "r", "r", "r"]
        assert [f["p"]["done"] for f in seen[2:]] == [1, 2, 3, 4, 5]
        with pytest.raises(RequestFailed) as exc:
            await bus.request("demo.fail", {}, timeout=60)
        assert exc.value.type == "error.job"
        assert exc.value.payload["attempts"] == 3
        # In RQ's work horse, beside RQ's own SIGALRM job timeout (180 s), which stays in force.
        with pytest.raises(RequestFailed) as exc:
            await bus.request("e2e.overrun", {"seconds": 5}, timeout=60)
        assert exc.value.type == "error.job"
        assert exc.value.payload == timed_out("e2e.overrun", 2)


async def test_a_worker_killed_in_the_middle_of_a_job(tmp_path, postgres_db):
    """What docs/deferred.md says: the killed job's client gets q and r but no terminal frame (its own
    timeout tells it), the job is never run again (its row stays RUNNING, claimed by the dead worker only),
    and the connection's next strictly ordered message runs after STRICT_ORDER_TIMEOUT."""
    require_redis()
    env = {
        "DEMO_POSTGRES_DB": postgres_db,
        "DEMO_CHANNEL_LAYER": "redis",
        "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}",
        "DEMO_CACHE": "redis",
        "DEMO_EXTRA_APPS": "tests.slowapp",
        "DEMO_STRICT_ORDER_TIMEOUT": "2",
        "PYTHONPATH": str(ROOT),
    }
    job_seconds = 1.5
    await asyncio.to_thread(migrate_demo, tmp_path, env)
    first_worker = start_db_worker(tmp_path, env, "killed")
    second_worker = None
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
            async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
                running = asyncio.Event()

                def on_state(frame):
                    if frame["s"] == "r":
                        running.set()

                step = {"n": 1, "ms": int(job_seconds * 1000)}
                slow = asyncio.ensure_future(bus.request("e2e.ordered", step, timeout=60, on_state=on_state))
                await asyncio.wait_for(running.wait(), 20)
                first_worker.kill()  # SIGKILL in the middle of the job
                await asyncio.to_thread(first_worker.wait)
                second_worker = start_db_worker(tmp_path, env, "second")
                loop = asyncio.get_running_loop()
                started = loop.time()
                reply = await bus.request("e2e.ordered", {"n": 2, "ms": 0}, timeout=30)
                waited = loop.time() - started
                assert reply["n"] == 2
                assert reply["worker"] == second_worker.pid
                assert waited >= 1.5, "the successor waited for the lost job until STRICT_ORDER_TIMEOUT"
                # The second worker has run for STRICT_ORDER_TIMEOUT already; a run of the killed job
                # started then would answer within job_seconds. Wait longer than that: nothing comes.
                done, _ = await asyncio.wait({slow}, timeout=job_seconds + 1)
                assert not done, f"the killed job answered: {slow.result()}"
                slow.cancel()
        rows = await asyncio.to_thread(ordered_jobs, postgres_db)
        killed = [(status, workers, finished) for n, status, workers, finished in rows if n == 1]
        assert killed == [("RUNNING", ["killed"], None)]
        assert {(status, tuple(workers)) for n, status, workers, _ in rows if n == 2} == {
            ("SUCCESSFUL", ("second",))  # the successor's first look, its later looks
        }
    finally:
        stop([first_worker, second_worker])

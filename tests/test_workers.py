"""Real worker processes: django_tasks_db's db_worker on PostgreSQL, several of them, with strict ordering."""

import asyncio
import functools
import os
import random
import subprocess
import sys
import uuid

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies

from .redis_support import require_redis
from .servers import DEMO, ROOT, demo_env, demo_server, migrate_demo
from .test_deferred import timed_out


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
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--interval",
                "0.05",
                "--worker-id",
                f"w{n}",
            ],
            cwd=DEMO,
            env=demo_env(tmp_path, env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(3)
    ]
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            yield server
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(10)


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
        assert exc.value.type == "error.job" and exc.value.payload == timed_out("e2e.overrun", 2)
    assert done["p"] == {"total": 3} and [f["s"] for f in seen] == ["q", "r", "r", "r", "r"]


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
        assert exc.value.type == "error.job" and exc.value.payload["attempts"] == 3
        # In RQ's work horse, beside RQ's own SIGALRM job timeout (180 s), which stays in force.
        with pytest.raises(RequestFailed) as exc:
            await bus.request("e2e.overrun", {"seconds": 5}, timeout=60)
        assert exc.value.type == "error.job" and exc.value.payload == timed_out("e2e.overrun", 2)


async def test_a_worker_killed_in_the_middle_of_a_job(tmp_path, postgres_db):
    """What channelbus promises: the killed job's client gets q and r but no terminal frame (its own
    timeout tells it), and the connection's next strictly ordered message runs after STRICT_ORDER_TIMEOUT."""
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
    await asyncio.to_thread(migrate_demo, tmp_path, env)
    start = functools.partial(
        subprocess.Popen,
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--interval", "0.05"],
        cwd=DEMO,
        env=demo_env(tmp_path, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_worker = start()
    second_worker = None
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
            async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
                running = asyncio.Event()

                def on_state(frame):
                    if frame["s"] == "r":
                        running.set()

                slow = asyncio.ensure_future(
                    bus.request("e2e.ordered", {"n": 1, "ms": 10_000}, timeout=8, on_state=on_state)
                )
                await asyncio.wait_for(running.wait(), 20)
                first_worker.kill()  # SIGKILL in the middle of the job
                await asyncio.to_thread(first_worker.wait)
                second_worker = start()
                started = asyncio.get_running_loop().time()
                reply = await bus.request("e2e.ordered", {"n": 2, "ms": 0}, timeout=30)
                waited = asyncio.get_running_loop().time() - started
                assert reply["n"] == 2 and reply["worker"] == second_worker.pid
                assert waited >= 1.5, "the successor waited for the lost job until STRICT_ORDER_TIMEOUT"
                with pytest.raises(TimeoutError):
                    await slow  # the killed job never answers
    finally:
        for worker in (first_worker, second_worker):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(10)

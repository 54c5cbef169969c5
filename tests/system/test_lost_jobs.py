"""Lost deferred jobs, for real (issue 11 §4): a db_worker process SIGKILLed in the middle of a job, on
SQLite and on PostgreSQL, while ``manage.py channelbus_reap --every`` runs: the client gets the retry's
result, or error.job when no retry is left. And jobs queued for a server that was killed: after the
restart, cancel_on_disconnect ones are not started and the others run with a log line."""

import asyncio
import re
import signal
import subprocess
import sys
import uuid

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.redis_support import require_redis
from tests.servers import DEMO, ROOT, demo_env, demo_server, free_port, migrate_demo, wait_for_port
from tests.system.test_workers import postgres_db, start_db_worker, stop
from tests.waiting import wait_for

__all__ = ["postgres_db"]  # the fixture, for deployment_env

LOST_APPS = {"DEMO_EXTRA_APPS": "tests.lostapp", "PYTHONPATH": str(ROOT)}


@pytest.fixture(params=["sqlite", "postgres"])
def deployment_env(request, tmp_path):
    """The demo with the lost.* types, on SQLite or PostgreSQL, with Redis as channel layer and cache (what
    worker processes need: the frames reach the socket, the cache holds caps and claims)."""
    require_redis()
    env = {
        **LOST_APPS,
        "DEMO_CHANNEL_LAYER": "redis",
        "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}",
        "DEMO_CACHE": "redis",
    }
    if request.param == "postgres":
        env["DEMO_POSTGRES_DB"] = request.getfixturevalue("postgres_db")
    migrate_demo(tmp_path, env)
    return env


def start_reaper(tmp_path, env):
    """``manage.py channelbus_reap --every 0.2 --grace 0``: lost attempts go just after their 1 s limit."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "channelbus_reap", "--every", "0.2", "--grace", "0"],
        cwd=DEMO,
        env=demo_env(tmp_path, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def killed_while_running(bus, worker, type_name, seen):
    """Send ``type_name`` (a 60 s nap, limit 1 s) and SIGKILL ``worker`` as soon as it starts the job."""
    running = asyncio.Event()

    def on_state(frame):
        seen.append(frame["s"])
        if frame["s"] == "r":
            running.set()

    request = asyncio.ensure_future(
        bus.request_frame(type_name, {"seconds": 60}, timeout=60, on_state=on_state)
    )
    await asyncio.wait_for(running.wait(), 30)
    worker.kill()  # in the middle of the nap, well before SIGALRM ends it at 1 s
    await asyncio.to_thread(worker.wait)
    return request


def job_rows(tmp_path, env):
    """(type, attempt, status, exception class) of every lost.* job row, in the order they were queued."""
    script = (
        "from django_tasks_db.models import DBTaskResult as R\n"
        "for r in R.objects.order_by('enqueued_at'):\n"
        "    j = r.args_kwargs['args'][0]\n"
        "    print(j['type_name'], j['attempt'], r.status, r.exception_class_path or '-')\n"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
        cwd=DEMO,
        env=demo_env(tmp_path, env),
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(line.split()) for line in done.stdout.splitlines()]


async def test_a_killed_worker_s_job_is_retried_or_answered_with_error_job(tmp_path, deployment_env):
    env = deployment_env
    workers = [start_db_worker(tmp_path, env, "first")]
    reaper = start_reaper(tmp_path, env)
    try:
        with demo_server(tmp_path, env, migrate=False, args=("--no-worker",)) as server:
            cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
            async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
                seen = []
                retried = await killed_while_running(bus, workers[0], "lost.nap", seen)
                workers.append(start_db_worker(tmp_path, env, "second"))
                done = await retried
                assert done["p"] == {"attempt": 2, "pid": workers[1].pid}  # the retry, in the second worker
                assert seen == ["q", "r", "r"]  # r again when the retry starts

                seen = []
                failed = await killed_while_running(bus, workers[1], "lost.final", seen)
                workers.append(start_db_worker(tmp_path, env, "third"))
                with pytest.raises(RequestFailed) as exc:
                    await failed
                assert exc.value.frame["t"] == "error.job"
                assert exc.value.payload == {
                    "msg": "lost.final did not finish: its worker was lost: the attempt did not end within "
                    "1 s.",
                    "type_name": "lost.final",
                    "attempts": 1,
                    "reason": "worker_lost",
                }
                assert seen == ["q", "r"]
                # The places of both jobs were freed: a third one is taken and runs in the third worker.
                again = await bus.request("lost.final", {"seconds": 0}, timeout=30)
                assert again["pid"] == workers[2].pid
    finally:
        stop([*workers, reaper])
    lost = "channelbus.jobs.reaping.WorkerLost"
    assert await asyncio.to_thread(job_rows, tmp_path, env) == [
        ("lost.nap", "1", "FAILED", lost),
        ("lost.nap", "2", "SUCCESSFUL", "-"),
        ("lost.final", "1", "FAILED", lost),
        ("lost.final", "1", "SUCCESSFUL", "-"),
    ]


def start_runbus(tmp_path, port, log, *args):
    """``manage.py runbus`` of the demo (SQLite, in-memory layer) on ``port``, its output in file ``log``."""
    with open(log, "w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runbus", "--port", str(port), "--log-level", "warning", *args],
            cwd=DEMO,
            env=demo_env(tmp_path, LOST_APPS),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, proc)
    return proc


async def test_jobs_queued_for_a_killed_server_after_its_restart(tmp_path):
    """The embedded default (SQLite, in-memory layer): two jobs queued by a server running no worker, which
    is then killed. The restarted server's worker holds no socket of the old one: lost.cancellable is not
    started, lost.plain runs and says its reply has no receiver."""
    migrate_demo(tmp_path, LOST_APPS)
    port = free_port()
    first = start_runbus(tmp_path, port, tmp_path / "first.log", "--no-worker")
    try:
        cookies = await asyncio.to_thread(fetch_cookies, f"http://127.0.0.1:{port}/")
        async with BusClient(f"ws://127.0.0.1:{port}/ws/", cookies=cookies) as bus:
            queued = []
            for type_name in ("lost.cancellable", "lost.plain"):
                with pytest.raises(TimeoutError):  # no worker: q, then nothing
                    await bus.request(type_name, timeout=0.5, on_state=queued.append)
            assert [f["s"] for f in queued] == ["q", "q"]
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
    finally:
        stop([first])
    log = tmp_path / "second.log"
    second = start_runbus(tmp_path, free_port(), log, "--worker-interval", "0.05")
    try:
        lines = await wait_for(
            lambda: "lost-test: lost.plain ran" in log.read_text() and log.read_text(),
            timeout=30,
            what="the restarted server's worker ran lost.plain",
        )
    finally:
        stop([second])
    closed = r"connection local\|\w+ has closed"
    assert re.search(rf"deferred lost\.cancellable \(i=[\w-]+\) not started: its {closed}", lines)
    assert re.search(
        r"deferred lost\.plain \(i=[\w-]+\) runs for a connection that has closed .*no receiver", lines
    )
    assert "lost-test: lost.cancellable ran" not in lines

"""Two runbus processes on one SQLite database with the in-memory channel layer (issue 15 §1): the second
says at start-up that another runbus serves its job queue database; a deferred request sent to the first,
whose job the second's worker takes, gets error.job instead of a silent time-out, and both logs say why and
what to do. The first's worker looks for jobs only every 30 s, so that the second's takes the job."""

import asyncio

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.servers import demo_server, migrate_demo


async def test_a_job_taken_by_the_other_runbus_is_answered_with_error_job_and_logged(tmp_path):
    migrate_demo(tmp_path)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with (
        demo_server(tmp_path, migrate=False, args=("--worker-interval", "30"), log=first_log) as first,
        demo_server(tmp_path, migrate=False, args=("--worker-interval", "0.05"), log=second_log),
    ):
        cookies = await asyncio.to_thread(fetch_cookies, f"http://{first}/")
        async with BusClient(f"ws://{first}/ws/", cookies=cookies) as bus:
            with pytest.raises(RequestFailed) as failed:
                await bus.request("demo.count", {"to": 2}, timeout=20)
    assert failed.value.type == "error.job"
    assert failed.value.payload["reason"] == "other_process"
    assert failed.value.payload["type_name"] == "demo.count"

    first_out, second_out = first_log.read_text(), second_log.read_text()
    assert "channelbus: another runbus (pid " in second_out, second_out
    assert "serves the same job queue database, and the channel layer is in-memory" in second_out
    assert "another runbus" not in first_out.replace("another runbus, a db_worker", ""), first_out
    trace_id = failed.value.frame["i"]
    # The worker that ran it, in the second process: the cause and the fix.
    assert f"channelbus: deferred demo.count (i={trace_id}) was queued by another process" in second_out
    assert "so it runs but its reply is lost" in second_out
    # The process that holds the socket: which worker took it, and that its client got error.job.
    assert f"channelbus: deferred demo.count (i={trace_id}) of connection local|" in first_out, first_out
    assert "was taken by worker runbus-" in first_out
    for out in (first_out, second_out):
        assert "Run one runbus per database, or use channels_redis in CHANNEL_LAYERS" in out

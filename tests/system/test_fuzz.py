"""Fuzzing in CI: about 30 s of hostile frames through the demo under ``runbus`` (``bench/fuzz.py``).

The generator, the contract check and the accounting are ``bench/fuzz.py``'s, which runs 10^6 frames and
more (docs/security.md). The seed is random per run and printed; ``FUZZ_SEED=<seed>`` runs it again, and
``bench/fuzz.py --seed S --replay K`` sends one frame of it alone.
"""

import asyncio
import contextlib
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.servers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import fuzz
from servers import Server

#: Seconds of sending in the bounded run (the jobs' replies and the settling come on top).
SECONDS = float(os.environ.get("FUZZ_SECONDS", "15"))


@pytest.mark.timeout(240)
async def test_hostile_frames_crash_nothing_and_every_reply_keeps_the_contract():
    seed = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
    print(f"fuzz seed {seed} (FUZZ_SEED={seed} to run it again)")
    report = await fuzz.fuzz(10**6, seconds=SECONDS, sockets=6, seed=seed, drain_seconds=60, settle=3)
    summary = report.summary()
    print(summary)
    assert report.frames > 1000, summary
    assert not report.problems, summary
    assert report.due > 0, summary
    assert report.answered == report.due, summary
    # Every kind of frame was sent, and the replies went beyond the envelope checks to the handlers.
    assert set(report.kinds) == {kind for kind, _ in fuzz.FrameFactory.KINDS}, summary
    for reply in ("error.validation f", "error.too_large f", "error.bad_request f", "demo.echo s"):
        assert report.replies[reply] > 0, summary
    # The server's memory levels off: what one run leaves is small (about +15 MB for 10^6 frames).
    assert report.rss_end_kb - report.rss_start_kb < 64 * 1024, summary
    # The client-error log is limited per connection: a few lines and a summary a minute, not one a frame.
    assert report.log_lines < report.frames / 5, summary


@pytest.mark.timeout(120)
async def test_the_limits_as_they_are_close_a_hostile_flood_with_4429():
    """The demo's own limits (50/s, burst 100, flood close after 100): a socket that floods hostile
    frames gets errors within the contract, then ``s.closing`` and 4429; the server goes on."""
    seed = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
    settings = "fuzz_site.limits"
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        workdir = Path(tmp)
        catalog = await asyncio.to_thread(fuzz.Catalog.read, workdir, 2, settings)
        with Server.start(fuzz.fuzz_server_kind(settings), workdir) as server:
            run = fuzz.FuzzRun(f"127.0.0.1:{server.port}", catalog, seed)
            flooder = fuzz.FuzzSocket(run, 0, catalog.tokens[0])
            websocket = await flooder.connect()
            received: list[str] = []

            async def read():
                with contextlib.suppress(ConnectionClosed):
                    async for message in websocket:
                        received.append(message)

            reader = asyncio.ensure_future(read())
            for k in range(5000):  # until the server closes the socket
                frame = run.factory(k)
                if frame.kind == "large" or reader.done():
                    continue
                flooder.ledger.expect(frame)
                with contextlib.suppress(ConnectionClosed):
                    await websocket.send(frame.data)
            await asyncio.wait_for(reader, 10)
            for message in received:
                flooder.receive(message)
            summary = f"seed {seed}\n{run.report.summary()}"
            assert not run.report.problems, summary
            closing = '{"t":"s.closing","p":{"code":4429,"reason":"Too many messages."}}'
            assert received[-1] == closing, summary
            assert websocket.close_code == 4429
            assert run.report.replies["error.rate_limited f"] >= 99, summary
            # The other socket, and a new one of the flooder, are served as before.
            for token in catalog.tokens:
                other = await fuzz.FuzzSocket(run, 1, token).connect()
                await other.send('{"t":"s.ping","i":"after"}')
                assert await other.recv() == '{"t":"s.pong","i":"after","s":"s"}'
                await other.close()
            server.check_alive()
            log = server.log.read_text(errors="replace")
            logged = fuzz.Report(seed=seed, sockets=2)
            fuzz.read_log(server, logged)  # tracebacks and ERROR lines, except demo.fail's own
    assert not logged.problems, logged.summary()
    assert log.count("after a message flood") == 1
    # CLIENT_ERROR_LOG_LINES (10) lines for the flooder's refused frames, then one summary at its close.
    assert log.count("channelbus: error.") == 10, log
    assert log.count("more client errors on") == 1, log

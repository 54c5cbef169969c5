"""ErrorLogLimiter (channelbus/server/errorlog.py) on a given clock, and its use by BusConsumer.send_error."""

import logging
import re

import pytest
from django.test import override_settings

from channelbus.server.errorlog import ErrorLogLimiter, printable
from tests.waiting import wait_for


def test_the_first_lines_of_an_interval_pass_then_they_are_counted():
    log = ErrorLogLimiter("c1", lines=3, interval=60)
    assert [log.admit(100.0 + n, f"e{n}") for n in range(3)] == [["e0"], ["e1"], ["e2"]]
    assert log.admit(104.0, "e3") == []
    assert log.admit(105.0, "e4") == []
    assert log.held == 2
    assert log.interval_end == 160.0
    assert log.summary(160.0) == "2 more client errors on c1 in the last 60 s; last: e4"
    assert log.held == 0
    assert log.summary(161.0) is None  # nothing held since


def test_a_new_interval_starts_with_the_summary_of_the_last_one():
    log = ErrorLogLimiter("c1", lines=1, interval=10)
    assert log.admit(0.0, "a") == ["a"]
    assert log.admit(1.0, "b") == []
    assert log.admit(2.0, "c") == []
    # The next error after the interval: the summary of the held lines (over the interval), then the line.
    assert log.admit(30.0, "d") == ["2 more client errors on c1 in the last 10 s; last: c", "d"]
    assert log.interval_end == 40.0
    assert log.admit(31.0, "e") == []
    assert log.held == 1


def test_the_summary_at_a_close_counts_the_seconds_so_far():
    log = ErrorLogLimiter("c1", lines=1, interval=60)
    log.admit(0.0, "a")
    log.admit(0.2, "b")
    assert log.summary(2.5) == "1 more client errors on c1 in the last 3 s; last: b"
    log.admit(2.6, "c")
    assert log.summary(2.6) == "1 more client errors on c1 in the last 3 s; last: c"


def test_a_steady_flood_writes_lines_plus_one_summary_per_interval():
    log = ErrorLogLimiter("c1", lines=10, interval=60)
    written = []
    for n in range(1_000_000):  # 1000 errors a second for 1000 s
        written += log.admit(n / 1000, "x")
    tail = log.summary(1000.0)
    assert tail is not None
    written.append(tail)
    intervals = 17  # 1000 s / 60 s, the last one cut short
    assert len(written) == intervals * 11
    held = [int(line.split()[0]) for line in written if line != "x"]
    assert sum(held) + written.count("x") == 1_000_000


# ---------------------------------------------------------------- in the consumer

in_the_consumer = pytest.mark.django_db(transaction=True)


def client_error_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "channelbus" and r.levelno == logging.INFO]


@in_the_consumer
async def test_send_error_logs_the_first_lines_then_a_summary_at_the_close(bus_client, user, caplog):
    settings = {"CLIENT_ERROR_LOG_LINES": 3, "CLIENT_ERROR_LOG_INTERVAL": 60}
    with override_settings(CHANNELBUS=settings), caplog.at_level(logging.INFO, logger="channelbus"):
        client = await bus_client(user=user)
        for n in range(20):
            await client.send_raw(f'{{"t":"demo.nothing","i":"u{n}"}}')
        for n in range(20):  # every refused frame still gets its error
            frame = await client.receive()
            assert (frame["t"], frame["i"]) == ("error.msg_type", f"u{n}")
        lines = client_error_lines(caplog)
        assert len(lines) == 3
        assert lines[0].startswith("channelbus: error.msg_type to ")
        assert lines[0].endswith("(i=u0): Unknown message type 'demo.nothing'.")
        await client.close()
        summary = await wait_for(lambda: client_error_lines(caplog)[3:], what="the summary line")
    assert len(summary) == 1
    assert re.fullmatch(
        r"channelbus: 17 more client errors on (\w+) in the last \d+ s; last: error.msg_type to \1 "
        r"\(i=u19\): Unknown message type 'demo.nothing'.",
        summary[0],
    )


@in_the_consumer
async def test_the_summary_comes_at_the_end_of_the_interval(bus_client, user, caplog):
    settings = {"CLIENT_ERROR_LOG_LINES": 1, "CLIENT_ERROR_LOG_INTERVAL": 1}
    with override_settings(CHANNELBUS=settings), caplog.at_level(logging.INFO, logger="channelbus"):
        client = await bus_client(user=user)
        for _ in range(5):
            await client.send_raw("not json")
            assert (await client.receive())["t"] == "error.bad_request"
        assert len(client_error_lines(caplog)) == 1
        # The connection stays open: the summary is written by the timer, about 1 s after the first line.
        lines = await wait_for(lambda: client_error_lines(caplog)[1:], timeout=10, what="the summary line")
        assert re.fullmatch(
            r"channelbus: 4 more client errors on (\w+) in the last 1 s; last: error.bad_request to \1 "
            r"\(i=None\): The frame is not valid JSON.",
            lines[0],
        )
        await client.close()
    assert len(client_error_lines(caplog)) == 2  # nothing more held at the close


@in_the_consumer
async def test_no_lines_without_log_client_errors(bus_client, user, caplog):
    with (
        override_settings(CHANNELBUS={"LOG_CLIENT_ERRORS": False}),
        caplog.at_level(logging.INFO, logger="channelbus"),
    ):
        client = await bus_client(user=user)
        await client.send_raw("not json")
        assert (await client.receive())["t"] == "error.bad_request"
        await client.close()
    assert client_error_lines(caplog) == []


def test_printable_leaves_plain_text_and_escapes_the_rest():
    assert printable("7") == "7"
    assert printable(None) == "None"
    assert printable("é😀 ok") == "é😀 ok"
    assert printable("a\nchannelbus: forged") == "'a\\nchannelbus: forged'"
    assert printable("\x00\x1b[31m\u202e") == "'\\x00\\x1b[31m\\u202e'"


@in_the_consumer
async def test_a_client_cannot_forge_or_garble_log_lines(bus_client, user, caplog):
    with caplog.at_level(logging.INFO, logger="channelbus"):
        client = await bus_client(user=user)
        # A trace id that is not printable is refused at decode (error.bad_request, without it) ...
        await client.send_raw('{"t":"demo.nothing","i":"x\\nchannelbus: forged\\u202e"}')
        frame = await client.receive()
        assert (frame["t"], "i" in frame) == ("error.bad_request", False)
        # ... and what the client sends elsewhere (key names, type names) is escaped in the line.
        await client.send_raw('{"t":"s.ping","\\u0000\\n":1}')
        assert (await client.receive())["t"] == "error.bad_request"
        await client.close()
    lines = client_error_lines(caplog)
    assert all(line.isprintable() for line in lines)
    assert lines[0].endswith("(i=None): 'i' must be a string of 1 to 64 printable characters.")
    assert lines[1].endswith("(i=None): 'Unknown envelope keys: \\x00\\n.'")

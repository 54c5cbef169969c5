"""``manage.py runbus`` (channelbus/management/commands/runbus.py): its options and embedded worker.

Serving the demo end to end is tested in ``tests/system/``.
"""

import subprocess
import sys

import pytest

from tests.servers import DEMO, ROOT, demo_env, migrate_demo


def test_runbus_worker_interval_option():
    from django.core.management import CommandError, call_command

    from channelbus.management.commands.runbus import Command

    parser = Command().create_parser("manage.py", "runbus")
    assert parser.parse_args([]).worker_interval == 0.1
    assert parser.parse_args(["--worker-interval", "0.02"]).worker_interval == 0.02
    for bad in ("0", "-1", "soon"):
        with pytest.raises(CommandError, match="worker-interval"):
            call_command("runbus", "--worker-interval", bad)


def start_runbus(tmp_path, *args):
    """``manage.py runbus *args`` serving the demo on a fresh database; its output in ``proc.stdout``."""
    migrate_demo(tmp_path)
    return subprocess.Popen(
        [sys.executable, "manage.py", "runbus", *args],
        cwd=DEMO,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_runbus_runs_its_worker_at_the_given_interval(tmp_path):
    """The real command: the embedded worker it starts has the interval it was given."""
    proc = start_runbus(tmp_path, "--port", "0", "--worker-interval", "0.25")
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "worker beside the server" in line:
                break
        assert (
            "running a django_tasks_db worker beside the server (looking for jobs every 0.25 s)" in lines[-1]
        )
    finally:
        proc.terminate()
        proc.wait(10)


_NO_TASKS_DB_PROBE = """
from importlib.util import find_spec
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth", "django.contrib.contenttypes",
        *([] if find_spec("django.tasks") else ["django_tasks"]), "channelbus",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
django.setup()
from channelbus.management.commands.runbus import start_embedded_worker
print(start_embedded_worker())
"""


def test_runbus_starts_no_worker_when_django_tasks_db_is_not_installed():
    """An RQ (or Celery) project need not install django_tasks_db: runbus then just serves."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_TASKS_DB_PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_runbus_serves_static_files_only_with_debug_and_staticfiles(settings):
    from channelbus.management.commands.runbus import serves_static

    settings.DEBUG = True
    assert not serves_static(), "the test settings do not install django.contrib.staticfiles"
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django.contrib.staticfiles"]
    assert serves_static()
    assert not serves_static(nostatic=True)
    settings.DEBUG = False
    assert not serves_static()


# ------------------------------------------------------------------------------ tokens in the access log


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ("/ws/?token=abc~1~x", "/ws/?token=[redacted]"),
        ("/ws/?topics=t&token=abc&x=1", "/ws/?topics=t&token=[redacted]&x=1"),
        ('"GET /?token=a.b-c_d HTTP/1.1" 200', '"GET /?token=[redacted] HTTP/1.1" 200'),
        ("/ws/?topics=abc&my_token=keep", "/ws/?topics=abc&my_token=keep"),
        ("/ws/?token=", "/ws/?token=[redacted]"),
        ("no query at all", "no query at all"),
    ],
)
def test_redact_tokens(line, redacted):
    from channelbus.management.commands.runbus import redact_tokens

    assert redact_tokens(line) == redacted


def test_the_filter_redacts_uvicorn_records_and_keeps_their_shape():
    import logging

    from channelbus.management.commands.runbus import RedactTokens

    # uvicorn.access: (client, method, path, HTTP version, status), read back by its AccessFormatter.
    access = logging.LogRecord(
        "uvicorn.access",
        20,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/?token=s", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(access) is True
    assert access.args == ("1.2.3.4:5", "GET", "/?token=[redacted]", "1.1", 200)
    handshake = logging.LogRecord("uvicorn.error", 20, "", 0, "ws /ws/?token=s accepted", None, None)
    RedactTokens().filter(handshake)
    assert handshake.getMessage() == "ws /ws/?token=[redacted] accepted"


def test_log_config_is_uvicorns_with_the_filter_on_both_loggers():
    from uvicorn.config import LOGGING_CONFIG

    from channelbus.management.commands.runbus import log_config

    config = log_config()
    assert config["filters"] == {
        "channelbus_redact_tokens": {"()": "channelbus.management.commands.runbus.RedactTokens"}
    }
    assert config["loggers"]["uvicorn.access"]["filters"] == ["channelbus_redact_tokens"]
    assert config["loggers"]["uvicorn.error"]["filters"] == ["channelbus_redact_tokens"]
    assert config["handlers"] == LOGGING_CONFIG["handlers"]
    assert "filters" not in LOGGING_CONFIG  # a copy: uvicorn's own default is untouched


def test_runbus_logs_no_token_of_a_url(tmp_path):
    """The real command at --log-level info: a request and a WebSocket handshake with ?token= in the URL."""
    import asyncio
    import urllib.request

    from channelbus.client import BusClient
    from tests.servers import free_port, wait_for_port

    port = free_port()
    proc = start_runbus(tmp_path, "--port", str(port), "--log-level", "info", "--no-worker")
    try:
        wait_for_port(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token=SECRET-HTTP", timeout=10) as response:
            assert response.status == 200

        async def handshake():
            async with BusClient(f"ws://127.0.0.1:{port}/ws/?a=1&token=SECRET-WS") as bus:
                assert (await bus.receive("s.closing", timeout=10))["p"]["code"] == 4401  # a forged token

        asyncio.run(handshake())
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert "SECRET" not in output, output
    assert '"GET /?token=[redacted] HTTP/1.1" 200' in output, output
    assert '"WebSocket /ws/?a=1&token=[redacted]" [accepted]' in output, output

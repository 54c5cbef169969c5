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


def test_runbus_runs_its_worker_at_the_given_interval(tmp_path):
    """The real command: the embedded worker it starts has the interval it was given."""
    migrate_demo(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runbus", "--port", "0", "--worker-interval", "0.25"],
        cwd=DEMO,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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

"""Other runbus processes on this machine and job queue database (channelbus/jobs/neighbours.py): each holds
a lock file of its own while it lives; a live one is named by its pid, a dead one's file is removed, and this
process never counts itself. Real runbus processes: tests/system/test_two_runbus.py."""

import os
import subprocess
import sys
import tempfile

import pytest

import tests.settings
from channelbus.jobs import neighbours
from tests.jobs.test_deferred import DB_TASKS

#: A stand-in for another runbus on the database whose lock files start with ``argv[1]``: it joins as runbus
#: does, says whom it saw, then lives until killed.
ANOTHER_RUNBUS = """
import os, sys, time
from pathlib import Path
sys.path[:0] = [{root!r}, {demo!r}]
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from channelbus.jobs import neighbours
neighbours.lock_prefix = lambda: Path(sys.argv[1])
print(neighbours.join(), flush=True)
time.sleep(60)
"""


@pytest.fixture
def lock_dir(settings, tmp_path, monkeypatch):
    """The job queue in the database, the lock files in ``tmp_path``, this process not joined yet."""
    settings.TASKS = DB_TASKS
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(neighbours, "_mine", None)
    yield tmp_path
    if neighbours._mine is not None:
        neighbours._mine.close()


def another_runbus():
    """Start the stand-in on this process's job queue database; returns it once it has joined (it saw
    nobody)."""
    from tests.servers import DEMO, ROOT

    code = ANOTHER_RUNBUS.format(root=str(ROOT), demo=str(DEMO))
    prefix = str(neighbours.lock_prefix())
    proc = subprocess.Popen([sys.executable, "-c", code, prefix], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "[]\n"
    return proc


def test_the_lock_files_are_named_by_the_queue_database(lock_dir, settings):
    prefix = neighbours.lock_prefix()
    assert prefix.parent == lock_dir
    assert prefix.name.startswith("channelbus-runbus-")
    assert neighbours.lock_prefix() == prefix
    settings.TASKS = tests.settings.TASKS  # the immediate backend: no database queue, nothing to share
    assert neighbours.lock_prefix() is None
    assert neighbours.join() is None
    assert neighbours.others() is None


def test_a_live_runbus_is_named_and_a_dead_one_is_forgotten(lock_dir):
    assert neighbours.others() == []
    other = another_runbus()
    try:
        assert neighbours.others() == [other.pid]
        assert neighbours.join() == [other.pid]  # and this process joins
        assert neighbours.join() == [other.pid]  # once
        assert sorted(p.name.rpartition("-")[2] for p in lock_dir.glob("*.lock")) == sorted(
            [f"{other.pid}.lock", f"{os.getpid()}.lock"]
        )
    finally:
        other.kill()
        other.wait(10)
    # Its lock went with it, killed: its file is removed, and this process never counts itself.
    assert neighbours.others() == []
    assert [p.name for p in lock_dir.glob("*.lock")] == [
        f"{neighbours.lock_prefix().name}-{os.getpid()}.lock"
    ]

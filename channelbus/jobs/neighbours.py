"""Other ``runbus`` processes on this machine that serve the same job queue database.

Two ``runbus`` on one django_tasks_db database without a shared channel layer take each other's jobs and
cannot answer them (:mod:`channelbus.jobs.strays`). Whether another one is alive tells that mistake from
a restart, where the jobs of the process before it merely lost their connections. The database cannot
say who is connected to it, so each ``runbus`` says it on the machine: it holds an exclusive ``flock``
on a file of its own for as long as it lives, ``channelbus-runbus-<digest of the database>-<pid>.lock``
in the temporary directory. The system releases the lock when the process ends, killed or not; a file
whose lock can be taken is a dead process's, and is removed. One glob and one ``open`` per file: cheap
enough to ask at start-up and for each job of another process's connection.

Not seen: processes on other machines (a database server shared without a shared channel layer), and
servers that are not ``runbus``. Where ``fcntl`` is missing (Windows), nothing is known (None).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from django.conf import settings

__all__ = ["join", "lock_prefix", "others"]

#: This process's own lock file, open (and locked) while it lives, once it joined.
_mine: IO[str] | None = None


def lock_prefix() -> Path | None:
    """The start of the lock files' paths for this project's job queue database (the digest names it),
    or None when jobs are not rows of django_tasks_db."""
    from django.apps import apps

    if not apps.is_installed("django_tasks_db"):
        return None
    from django.db import router
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    from .serving import default_backend

    if not isinstance(default_backend(), DatabaseBackend):
        return None
    database: dict[str, Any] = settings.DATABASES.get(router.db_for_write(DBTaskResult)) or {}
    name = str(database.get("NAME", ""))
    if str(database.get("ENGINE", "")).endswith("sqlite3") and name and ":memory:" not in name:
        name = os.path.realpath(name)
    where = "|".join(str(database.get(key, "")) for key in ("ENGINE", "HOST", "PORT")) + "|" + name
    return (
        Path(tempfile.gettempdir()) / f"channelbus-runbus-{hashlib.sha256(where.encode()).hexdigest()[:16]}"
    )


def join() -> list[int] | None:
    """Say that this process serves its job queue database (``runbus`` calls it at start-up), and return
    the pids of the other live ``runbus`` on it (None: cannot tell)."""
    global _mine
    try:
        import fcntl
    except ImportError:
        return None
    prefix = lock_prefix()
    if prefix is None:
        return None
    if _mine is None:
        with contextlib.suppress(OSError):
            handle = Path(f"{prefix}-{os.getpid()}.lock").open("w")  # noqa: SIM115 - open while we live
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _mine = handle
    return _alive(prefix)


def others() -> list[int] | None:
    """The pids of the live ``runbus`` on this job queue database other than this process (None: cannot
    tell: no ``fcntl``, or jobs are not rows of django_tasks_db)."""
    try:
        import fcntl  # noqa: F401 - only where file locks exist
    except ImportError:
        return None
    prefix = lock_prefix()
    return None if prefix is None else _alive(prefix)


def _alive(prefix: Path) -> list[int]:
    import fcntl

    pids = []
    for path in sorted(prefix.parent.glob(f"{prefix.name}-*.lock")):
        pid = path.stem.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()  # its process is gone: it held the lock until it ended
        except BlockingIOError:
            pids.append(int(pid))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return pids

"""The reaper: deferred jobs whose worker was lost are retried or answered with ``error.job``.

A worker that is killed (``kill -9``, out of memory, a lost machine) in the middle of a job leaves it
``RUNNING`` for ever in django_tasks_db, and its client waits for a terminal frame that never comes.
:func:`reap` finds the ``RUNNING`` rows of :func:`~channelbus.jobs.deferred.run_deferred` that started
longer ago than their attempt's limit (the class's ``timeout``, else ``JOB_REAP_AFTER``) plus
``JOB_REAP_GRACE``. A live worker ends such an attempt itself at its ``timeout``; one that did not is
taken as lost. For each:

1. the row is marked ``FAILED`` (:class:`WorkerLost`, with the reason in its traceback) by an update
   that only succeeds while it is still ``RUNNING``: of several reapers (one per ``runbus``), one wins;
2. :func:`~channelbus.jobs.deferred.claim_end` takes the attempt's end: a worker that was only slow
   and finishes later finds it taken, and drops its outcome instead of answering twice;
3. as for any failed attempt, the job is queued again while the class's ``retries`` allow, else the
   client gets ``error.job`` with ``"reason": "worker_lost"``, its strict-order place is finished and
   its cap places freed.

Where it runs: ``manage.py runbus`` runs :class:`Reaper` every ``JOB_REAP_INTERVAL`` seconds when
the default task backend is django_tasks_db (with or without its embedded worker), and
``manage.py channelbus_reap`` runs one pass, or one every ``--every`` seconds. It works on every
database django_tasks_db does (SQLite, PostgreSQL...). Other backends have their own recovery (RQ
moves a dead horse's job to its failed registry): the reaper leaves them alone.
"""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from ..conf import settings
from ..messages import Message
from .deferred import claim_end, end, registry_named, retry_or_fail, run_deferred
from .job import DeferredJob
from .replies import Replier
from .timeouts import attempt_limit, reap_grace

__all__ = ["Reaper", "WorkerLost", "reap", "reaps_here", "start_reaper"]

logger = logging.getLogger("channelbus")

#: The task paths of deferred jobs: this release's, and channelbus 0.1's (still run through _moved).
TASK_PATHS = (run_deferred.module_path, "channelbus.tasks.run_deferred")


class WorkerLost(Exception):
    """Recorded as the exception of a job row the reaper marked ``FAILED``: its worker was lost."""


def reaps_here() -> bool:
    """True when the default task backend is django_tasks_db's: the one whose rows :func:`reap` reads."""
    from django.apps import apps

    if not apps.is_installed("django_tasks_db"):
        return False
    from django_tasks_db.backend import DatabaseBackend

    return isinstance(run_deferred.get_backend(), DatabaseBackend)


def reap(grace: float | None = None, now: datetime.datetime | None = None) -> int:
    """One pass: end every lost deferred job (see the module); returns how many it ended.

    ``grace`` replaces the ``JOB_REAP_GRACE`` setting. Does nothing (0) unless :func:`reaps_here`.
    """
    if not reaps_here():
        return 0
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    grace = reap_grace() if grace is None else grace
    now = timezone.now() if now is None else now
    rows = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING,
        task_path__in=TASK_PATHS,
        started_at__lt=now - datetime.timedelta(seconds=grace),
    )
    reaped = 0
    for row in rows:
        try:
            reaped += _reap_row(row, grace, now)
        except Exception:  # one bad row never stops the others
            logger.exception("channelbus: could not reap job row %s", row.pk)
    return reaped


def _reap_row(row: Any, grace: float, now: datetime.datetime) -> bool:
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    job = DeferredJob.from_task_args(row.args_kwargs.get("args") or ())
    cls = registry_named(job.registry).get(job.type_name)
    limit = attempt_limit(cls.timeout if cls is not None else None)
    if limit is None or row.started_at + datetime.timedelta(seconds=limit + grace) > now:
        return False
    reason = f"its worker was lost: the attempt did not end within {limit:g} s"
    marked = DBTaskResult.objects.filter(pk=row.pk, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        return_value=None,
        exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        traceback=f"{WorkerLost.__qualname__}: channelbus reaped job {job.job_id} (attempt {job.attempt}): "
        f"{reason}, started at {row.started_at.isoformat()}, worker {row.worker_ids}\n",
    )
    if not marked or not claim_end(job):
        return False  # another reaper took it, or its worker is ending it right now
    if cls is None:
        logger.error(
            "channelbus: reaped a job of the unregistered type %s (i=%s)", job.type_name, job.trace_id
        )
        end(job)
        return True
    return _lost(cls, job, reason)


def _lost(cls: type[Message], job: DeferredJob, reason: str) -> bool:
    reply = Replier(job.address, job.trace_id, job.type_name, job.repeat_key)
    if retry_or_fail(cls, job, reply, "did not finish: " + reason, None, reason="worker_lost"):
        end(job)
    return True


class Reaper:
    """:func:`reap` every ``interval`` seconds in a daemon thread, until :meth:`stop`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="channelbus-reaper", daemon=True)

    def start(self) -> Reaper:
        """Start the thread; returns the reaper."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                count = reap()
                if count:
                    logger.info("channelbus: reaped %d lost job(s)", count)
            except Exception:  # the database is down: the next pass tries again
                logger.exception("channelbus: reaping lost jobs failed")
            finally:
                close_old_connections()


def start_reaper(interval: float | None = None) -> Reaper | None:
    """Start a :class:`Reaper` every ``interval`` seconds (default: ``JOB_REAP_INTERVAL``) when the
    default task backend is django_tasks_db's; None when there is nothing to reap or it is off."""
    interval = settings.JOB_REAP_INTERVAL if interval is None else interval
    if interval is None or not reaps_here():
        return None
    return Reaper(float(interval)).start()

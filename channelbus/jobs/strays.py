"""Jobs whose connection lives in another process that no frame from here can reach: say so, loudly.

Without a shared channel layer (``InMemoryChannelLayer``, or no ``CHANNEL_LAYERS``) a connection's
address is ``local|<id>``, and only the process that holds the socket can send to it. A worker of
django_tasks_db takes any job of its database, though: a second ``runbus`` left running on the same
database, or a ``db_worker`` process, runs jobs queued by the first one, and their ``r``, progress and
``s`` frames go nowhere while the job row says SUCCESSFUL. Both sides now say so:

* **The worker that runs such a job** logs a WARNING that names the cause and the fix
  (:func:`warn_unreachable`, from :func:`~channelbus.jobs.deferred.run_deferred`), when another
  ``runbus`` serves its database (:func:`stray`; after a restart the job's process is merely gone, and an
  INFO line says its connection has closed). It still runs the job, as for a connection that has closed
  (``cancel_on_disconnect`` classes are not started).
* **The process that queued it**, which holds the socket, watches the rows of the jobs it queued
  (:func:`track`, from :func:`~channelbus.jobs.deferred.put`), once :func:`start_watch` has turned the
  watch on (``runbus`` does, for django_tasks_db without a shared channel layer). A row taken by a worker
  that is not one
  of this process's (:func:`own_worker`) gets the client ``error.job`` with ``"reason":
  "other_process"`` (its outcome cannot be known here), frees the job's strict-order place and cap
  places in this process's cache, and logs a WARNING. A job this process's own worker starts leaves
  the watch at once (:func:`started_here`).

Only django_tasks_db keeps rows that say which worker took a job; with other backends worker processes
need a shared layer anyway (system check W005). The watch costs nothing while this process's worker
takes every job within :data:`GRACE` seconds: it asks the database (one primary-key query per
:data:`INTERVAL`) only while some job has waited longer, and sleeps while no job is watched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections

from ..protocol import JobFailed
from ..transport import split_address
from ..transport.addresses import LOCAL
from . import liveness, neighbours
from .job import DeferredJob
from .replies import Replier

__all__ = [
    "GRACE",
    "INTERVAL",
    "OTHER_PROCESS",
    "check",
    "own_worker",
    "start_watch",
    "started_here",
    "stray",
    "track",
    "unreachable",
    "warn_unreachable",
    "watched",
]

logger = logging.getLogger("channelbus")

#: Seconds a watched job may wait for this process's own worker before its row is looked at.
GRACE = 1.0
#: Seconds between two looks at the rows of the jobs that waited longer.
INTERVAL = 1.0
#: A job no worker took after this many seconds (a far ``run_after``) is no longer watched.
FORGET_AFTER = 24 * 3600.0
#: The ``reason`` of the ``error.job`` a client gets when another process took its job.
OTHER_PROCESS = "other_process"

#: The fix, in the words of both WARNING lines.
_FIX = (
    "another runbus, a db_worker or a server before a restart reads the same job queue database. Run one "
    "runbus per database, or use channels_redis in CHANNEL_LAYERS for every process (docs/deployment.md)"
)


@dataclass(frozen=True, slots=True)
class _Watched:
    row: str  # the pk of its django_tasks_db row
    job: DeferredJob
    queued_at: float


_lock = threading.Lock()
_on = False  # start_watch() was called: track() records jobs
# By job_id: a job has one row waiting at a time (its next row is queued once this process's worker
# started it: a retry, a strict-order wait), and the worker's start finds it at once.
_watched: dict[str, _Watched] = {}
_own_workers: set[str] = set()
_wake = threading.Event()
_thread: threading.Thread | None = None


def unreachable(job: DeferredJob) -> bool:
    """True when ``job`` answers a ``local|`` connection of another process, which frames sent from
    this process can never reach."""
    if job.address is None or job.process is None:
        return False
    return split_address(job.address)[0] == LOCAL and job.process != liveness.process_id()


def stray(job: DeferredJob) -> bool:
    """True when ``job`` is :func:`unreachable` and its process may well be alive: another ``runbus`` serves
    this job queue database on this machine, or that cannot be known. False after a restart, when no other
    ``runbus`` is alive: the job's connection closed with its process (:mod:`.neighbours`)."""
    if not unreachable(job):
        return False
    alive = neighbours.others()
    return alive is None or bool(alive)


def warn_unreachable(type_name: str, job: DeferredJob, started: bool = True) -> None:
    """The WARNING of a worker given a job whose connection it cannot reach (see the module); ``started``
    says whether it runs the job anyway (False: ``cancel_on_disconnect``)."""
    logger.warning(
        "channelbus: deferred %s (i=%s) was queued by another process, which holds its connection %s; "
        "without a shared channel layer no frame from this one reaches it, so %s: %s.",
        type_name,
        job.trace_id,
        job.address,
        "it runs but its reply is lost" if started else "it is not started (cancel_on_disconnect)",
        _FIX,
    )


def own_worker(worker_id: str) -> None:
    """Record that the django_tasks_db worker ``worker_id`` runs in this process (runbus's thread)."""
    with _lock:
        _own_workers.add(worker_id)


def start_watch() -> bool:
    """Turn the watch on in this process, and start its thread, when jobs are rows of django_tasks_db and
    no shared channel layer carries frames between processes; True if it is on."""
    global _on
    from django.apps import apps

    from .serving import default_backend, shared_layer

    if _on or shared_layer() or not apps.is_installed("django_tasks_db"):
        return _on
    from django_tasks_db.backend import DatabaseBackend

    if not isinstance(default_backend(), DatabaseBackend):
        return False
    with _lock:
        _on = True
        _start()
    return True


def track(job: DeferredJob, result: Any, end: Callable[[DeferredJob], None]) -> None:
    """Watch ``job``, just queued as ``result`` (a django_tasks_db ``TaskResult``), when a worker of
    another process could take it and not reach its connection (only once :func:`start_watch` ran).
    ``end`` frees the job's places once it is answered (``jobs.deferred.end``, passed in: deferred
    imports this module)."""
    row = getattr(result, "db_result", None)
    if not _on or row is None or job.job_id is None or job.address is None:
        return  # not a row of django_tasks_db, a job of channelbus 0.1, or nobody to answer
    if split_address(job.address)[0] != LOCAL:
        return  # a connection any process can reach
    if job.process != liveness.process_id():
        return  # queued again by another process (a retry there): not this process's socket
    global _end
    _end = end
    with _lock:
        _watched[job.job_id] = _Watched(str(row.pk), job, time.monotonic())
    _wake.set()


def started_here(job: DeferredJob) -> None:
    """This process's own worker starts ``job``: it leaves the watch."""
    if job.job_id is not None and _watched:
        with _lock:
            _watched.pop(job.job_id, None)


def watched() -> int:
    """How many queued jobs are watched now."""
    return len(_watched)


def check(now: float | None = None) -> int:
    """One look (the watch's thread calls it): every watched job that waited more than :data:`GRACE`
    and that a worker of another process took is answered with ``error.job``. Returns how many."""
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    now = time.monotonic() if now is None else now
    with _lock:
        for job_id in [j for j, w in _watched.items() if now - w.queued_at > FORGET_AFTER]:
            del _watched[job_id]
        due = {w.row: w for w in _watched.values() if now - w.queued_at >= GRACE}
        own = set(_own_workers)
    if not due:
        return 0
    rows = {
        str(pk): (status, workers)
        for pk, status, workers in DBTaskResult.objects.filter(pk__in=list(due)).values_list(
            "pk", "status", "worker_ids"
        )
    }
    stray = []
    with _lock:
        for pk, looked_at in due.items():
            status, workers = rows.get(pk, (None, None))
            if status == TaskResultStatus.READY or _watched.get(looked_at.job.job_id or "") is not looked_at:
                continue  # not taken yet (looked at again next time), or started here meanwhile
            del _watched[looked_at.job.job_id or ""]  # taken, or gone (pruned, its enqueue rolled back)
            if workers and workers[-1] not in own:
                stray.append((looked_at.job, workers[-1]))
    for job, worker in stray:
        _answer(job, worker)
    return len(stray)


#: How a job's places are freed (``jobs.deferred.end``), given by :func:`track`.
_end: Callable[[DeferredJob], None] | None = None


def _answer(job: DeferredJob, worker: str) -> None:
    logger.warning(
        "channelbus: deferred %s (i=%s) of connection %s was taken by worker %s of another process, "
        "whose frames cannot reach the connection; its client gets error.job: %s.",
        job.type_name,
        job.trace_id,
        job.address,
        worker,
        _FIX,
    )
    failed = JobFailed(
        f"{job.type_name} was taken by a worker in another process, which cannot answer this connection.",
        type_name=job.type_name,
        attempts=job.attempt,
        reason=OTHER_PROCESS,
    )
    Replier(job.address, job.trace_id, job.type_name, job.repeat_key).error(failed)
    if _end is not None:
        _end(job)  # its places in this process's cache: the other worker freed them in its own


def _start() -> None:
    """Start the watch's daemon thread (called under the lock)."""
    global _thread
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_watch_forever, name="channelbus-stray-jobs", daemon=True)
        _thread.start()


def _watch_forever() -> None:
    while True:
        if not _watched:
            _wake.wait()  # nothing to watch: sleep until a job is queued
        _wake.clear()
        time.sleep(INTERVAL)
        try:
            check()
        except Exception:  # the database is down: the next look tries again
            logger.warning("channelbus: could not look at the rows of queued jobs", exc_info=True)
        finally:
            close_old_connections()

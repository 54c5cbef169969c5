"""Deferred handlers on a real job queue, through Django's Tasks API.

A message class with ``deferred = True`` is validated and permission-checked
in the consumer, then queued as the task :func:`run_deferred` on the
project's task backend (``TASKS`` setting: ``django.tasks`` on Django 6, the
``django-tasks`` backport on 5.2), carrying a :class:`~channelbus.jobs.job.DeferredJob`.
The client gets ``q``. In the worker: ``r`` when the handler starts, ``r`` with
``{"done", "total", "text"}`` for each ``self.progress(...)``, then ``s`` with
the result, or ``error.job`` after the last retry. A
:class:`~channelbus.protocol.BusError` raised on purpose is sent as it is,
without retries.

The job carries who asked: the user's pk, the connection's address and the
trace id, so the worker answers the right tab, in whatever process it lives.
Retries are carried out here (queued again with ``run_after``), so they work on
every backend. Strictly ordered messages wait for their turn through
:mod:`channelbus.jobs.ordering`. A job holds its places under the job caps
(:mod:`channelbus.jobs.caps`) until it ends; a job whose connection has closed is
not started if its class says ``cancel_on_disconnect`` (:mod:`channelbus.jobs.liveness`);
an attempt whose worker was lost is ended by the reaper (:mod:`channelbus.jobs.reaping`),
and :func:`claim_end` lets only one of the two end it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone

from ..messages import Message, Metadata, Registry, all_registries, incoming, repeats
from ..protocol import BusError, JobFailed, ServerError, states
from ..publishing.api import hold_publishes, publish
from . import caps, liveness, ordering, strays
from .backend import task
from .job import DeferredJob
from .replies import Replier
from .timeouts import JobTimeout, attempt_limit, time_limit
from .transactions import job_atomic

__all__ = [
    "claim_end",
    "end",
    "enqueue",
    "finish_place",
    "new_job_id",
    "put",
    "registry_named",
    "retry_or_fail",
    "run_deferred",
    "user_pk",
]

logger = logging.getLogger("channelbus")


def registry_named(name: str) -> Registry:
    """The registry called ``name`` (a job names the one of its type); ``incoming`` if none is."""
    for registry in all_registries():
        if registry.name == name:
            return registry
    return incoming


def user_pk(user: Any) -> str | None:
    """The pk a job carries for ``user`` (None for a signed-out user or none)."""
    return str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else None


def new_job_id() -> str:
    """A new ``job_id``: names a job across its attempts (caps, the reaper)."""
    return secrets.token_hex(8)


def enqueue(
    cls: type[Message],
    payload: Any,
    meta: Metadata,
    *,
    attempt: int = 1,
    delay: float | None = None,
    seq: int | None = None,
    job_id: str | None = None,
    slots: tuple[str, ...] = (),
    repeat_key: str | None = None,
) -> None:
    """Put one deferred message on the queue (sync: the backend may write to a database or Redis).

    ``seq`` is its place among the strictly ordered messages of its connection; ``job_id`` and
    ``slots`` are the id and the cap places that :func:`channelbus.jobs.caps.take` gave it;
    ``repeat_key`` the request's entry in :mod:`channelbus.messages.repeats`, where its frames are kept.
    """
    job = DeferredJob(
        type_name=cls.name,
        payload=payload,
        trace_id=meta.trace_id,
        user_pk=user_pk(meta.user),
        address=meta.channel_name,
        attempt=attempt,
        received_at=meta.received_at,
        registry=meta.registry.name if meta.registry is not None else incoming.name,
        seq=seq,
        job_id=job_id or new_job_id(),
        slots=slots,
        process=liveness.process_id(),
        repeat_key=repeat_key,
    )
    put(job, cls.queue_name, cls.priority, cls.delay if delay is None else delay)


def put(job: DeferredJob, queue_name: str, priority: int, delay: float | None) -> None:
    """Queue :func:`run_deferred` for ``job``, to run after ``delay`` seconds."""
    options: dict[str, Any] = {"queue_name": queue_name, "priority": priority}
    if delay:
        if run_deferred.get_backend().supports_defer:
            options["run_after"] = timezone.now() + timedelta(seconds=delay)
        else:  # e.g. the immediate backend: wait here, then run
            time.sleep(delay)
    strays.track(job, run_deferred.using(**options).enqueue(job.to_json()), end)


@task()
def run_deferred(*args: Any) -> None:
    """The job: run a deferred message's handler in a worker and answer the connection that sent it.

    Takes one :meth:`DeferredJob.to_json` dict (or channelbus 0.1's positional arguments).
    """
    job = DeferredJob.from_task_args(args)
    strays.started_here(job)
    cls = registry_named(job.registry).get(job.type_name)
    reply = Replier(job.address, job.trace_id, job.type_name, job.repeat_key)
    if cls is None:
        logger.error("channelbus: deferred job for unregistered type %s (i=%s)", job.type_name, job.trace_id)
        reply.error(ServerError(trace_id=job.trace_id))
        caps.release(job.slots, job.job_id)
        return  # its place stays open: successors go ahead after STRICT_ORDER_TIMEOUT
    if job.seq is not None and job.address is not None:
        if not ordering.is_my_turn(job.address, job.seq, job.waiting_since):
            # An earlier message of this connection has not finished: wait for it, in any worker.
            waiting = job if job.waiting_since is not None else job.but(waiting_since=time.time())
            put(waiting, cls.queue_name, cls.priority, ordering.park(waiting, cls.queue_name, cls.priority))
            return
        if job.waiting_since is not None and not ordering.claim_run(job.address, job.seq, job.attempt):
            return  # another copy of this waiting job runs it
    if job.address is not None and liveness.connection_gone(job.address, job.process):
        if cls.cancel_on_disconnect:
            _log_gone(cls, job, started=False)
            if job.repeat_key is not None:  # never answered: a repeat from its next connection runs it
                repeats.forget(job.repeat_key)
            end(job)
            return
        _log_gone(cls, job, started=True)
    done: bool | None = True
    try:
        done = _run(cls, job, reply)
    finally:
        if done:  # else retried (its places stay taken), or ended by the reaper
            end(job)


def _log_gone(cls: type[Message], job: DeferredJob, started: bool) -> None:
    """Say that ``job``'s connection cannot get its frames: at INFO when it has closed, at WARNING when
    it lives in a live process that frames from this one cannot reach (a set-up mistake, :mod:`.strays`)."""
    if strays.stray(job):
        strays.warn_unreachable(cls.name, job, started)
    elif started:
        logger.info(
            "channelbus: deferred %s (i=%s) runs for a connection that has closed (%s): its reply has no "
            "receiver",
            cls.name,
            job.trace_id,
            job.address,
        )
    else:
        logger.info(
            "channelbus: deferred %s (i=%s) not started: its connection %s has closed",
            cls.name,
            job.trace_id,
            job.address,
        )


def end(job: DeferredJob) -> None:
    """A job is over: its strict-order place is finished and its cap places are freed."""
    finish_place(job.address, job.seq)
    caps.release(job.slots, job.job_id)


def claim_end(job: DeferredJob) -> bool:
    """Whether the caller may end this attempt of ``job`` (send its terminal frame or queue its retry):
    True for the first of the worker and the reaper to ask, False for the other."""
    key = f"channelbus:job:{job.job_id}:{job.attempt}:end"
    return job.job_id is None or bool(cache.add(key, True, 24 * 3600))


def finish_place(address: str | None, seq: int | None) -> None:
    """Record that the strictly ordered job at place ``seq`` of a connection is over, and queue the
    job at the next place at once if it is parked."""
    if seq is None or address is None:
        return
    parked = ordering.finish(address, seq)
    if parked is None:
        return
    data, queue_name, priority = parked
    try:
        job = DeferredJob.from_json(data) if isinstance(data, Mapping) else DeferredJob.from_task_args(data)
        put(job, queue_name, priority, None)
    except Exception:  # its next look, already queued, finds the turn instead
        logger.warning("channelbus: could not wake job %d of %s", seq + 1, address, exc_info=True)


def _run(cls: type[Message], job: DeferredJob, reply: Replier) -> bool | None:
    """Run one attempt; False when it failed and was queued again (its places stay taken), None
    when it overran its limit and the reaper has ended it meanwhile."""
    user: Any = AnonymousUser()
    if job.user_pk is not None:
        user = get_user_model()._default_manager.filter(pk=job.user_pk).first() or AnonymousUser()
    meta = Metadata(
        trace_id=job.trace_id,
        user=user,
        channel_name=job.address,
        received_at=job.received_at,
        registry=registry_named(job.registry),
        attempt=job.attempt,
        reporter=reply,
    )
    try:
        message = cls.from_payload(job.payload, meta)
    except BusError as exc:  # the schema changed between enqueue and run
        reply.error(exc)
        return True
    reply.state(states.RUNNING)
    started = time.monotonic()
    try:
        if cls.atomic:
            with job_atomic():  # SQLite's write lock from the first write on, not for the whole run
                result = _call(message)
        else:
            result = _call(message)
    except BusError as exc:
        if _reaped(cls, job, started):
            return None
        reply.error(exc)
        return True
    except (Exception, JobTimeout) as exc:
        if _reaped(cls, job, started):
            return None
        if isinstance(exc, JobTimeout):
            failed = f"timed out after {cls.timeout:g} s"
            return retry_or_fail(cls, job, reply, failed, exc, timeout=cls.timeout)
        return retry_or_fail(cls, job, reply, "failed", exc)
    if _reaped(cls, job, started):
        return None
    reply.result(cls, result)
    return True


def _reaped(cls: type[Message], job: DeferredJob, started: float) -> bool:
    """After an attempt that ran past its limit, the reaper may have ended it: True if it has.
    (A shorter attempt cannot have been reaped: the reaper waits for the limit and a grace.)"""
    limit = attempt_limit(cls.timeout)
    if limit is None or time.monotonic() - started < limit or claim_end(job):
        return False
    logger.warning(
        "channelbus: deferred %s (i=%s, attempt %d) ended after the reaper gave it up; outcome dropped",
        cls.name,
        job.trace_id,
        job.attempt,
    )
    return True


def retry_or_fail(
    cls: type[Message],
    job: DeferredJob,
    reply: Replier,
    failed: str,
    exc: BaseException | None,
    **details: Any,
) -> bool:
    """An attempt ``failed`` (how, in words: "failed", "timed out after 2 s"; its transaction was
    rolled back). Queue the next attempt and return False, or, after the last, send ``error.job``
    with ``details`` and return True."""
    if job.attempt <= cls.retries:
        delay = cls.retry_delay(job.attempt)
        logger.warning(
            "channelbus: deferred %s %s (i=%s, attempt %d); retrying in %.1fs",
            cls.name,
            failed,
            job.trace_id,
            job.attempt,
            delay,
            exc_info=exc,
        )
        put(job.but(attempt=job.attempt + 1, waiting_since=None), cls.queue_name, cls.priority, delay)
        return False
    logger.error(
        "channelbus: deferred %s %s after %d attempts (i=%s)",
        cls.name,
        failed,
        job.attempt,
        job.trace_id,
        exc_info=exc,
    )
    reply.error(JobFailed(f"{cls.name} {failed}.", type_name=cls.name, attempts=job.attempt, **details))
    return True


def _call(message: Message) -> Any:
    """Run the handler within its class's ``timeout``.

    An ``async def`` handler of an ``atomic`` class publishes through :func:`hold_publishes`: what it
    published is handed to ``publish()`` here, in the job's transaction, so it goes out after the
    commit, and not at all when the handler raised.
    """
    cls = type(message)
    if cls._sync_handle:
        with time_limit(cls.timeout):
            return message.handle()
    if not cls.atomic:
        return async_to_sync(_handle_in_time)(message)
    with hold_publishes() as held:
        result = async_to_sync(_handle_in_time)(message)
    for item, to, exclude in held:
        publish(item, to, exclude=exclude)
    return result


async def _handle_in_time(message: Message) -> Any:
    """An ``async def`` handler, cancelled at its class's ``timeout`` (raises :class:`JobTimeout`)."""
    limit = asyncio.timeout(type(message).timeout)
    try:
        async with limit:
            return await message.handle()
    except TimeoutError:
        if limit.expired():
            raise JobTimeout from None
        raise

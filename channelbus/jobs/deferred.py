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
:mod:`channelbus.jobs.ordering`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from ..messages import Message, Metadata, Registry, all_registries, incoming
from ..protocol import BusError, JobFailed, ServerError, states
from ..publishing.api import hold_publishes, publish
from . import ordering
from .backend import task
from .job import DeferredJob
from .replies import Replier
from .timeouts import JobTimeout, time_limit
from .transactions import job_atomic

__all__ = ["enqueue", "finish_place", "put", "run_deferred", "user_pk"]

logger = logging.getLogger("channelbus")


def _registry(name: str) -> Registry:
    for registry in all_registries():
        if registry.name == name:
            return registry
    return incoming


def user_pk(user: Any) -> str | None:
    """The pk a job carries for ``user`` (None for a signed-out user or none)."""
    return str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else None


def enqueue(
    cls: type[Message],
    payload: Any,
    meta: Metadata,
    *,
    attempt: int = 1,
    delay: float | None = None,
    seq: int | None = None,
) -> None:
    """Put one deferred message on the queue (sync: the backend may write to a database or Redis).

    ``seq`` is its place among the strictly ordered messages of its connection.
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
    run_deferred.using(**options).enqueue(job.to_json())


@task()
def run_deferred(*args: Any) -> None:
    """The job: run a deferred message's handler in a worker and answer the connection that sent it.

    Takes one :meth:`DeferredJob.to_json` dict (or channelbus 0.1's positional arguments).
    """
    job = DeferredJob.from_task_args(args)
    cls = _registry(job.registry).get(job.type_name)
    reply = Replier(job.address, job.trace_id, job.type_name)
    if cls is None:
        logger.error("channelbus: deferred job for unregistered type %s (i=%s)", job.type_name, job.trace_id)
        reply.error(ServerError(trace_id=job.trace_id))
        return  # its place stays open: successors go ahead after STRICT_ORDER_TIMEOUT
    if job.seq is not None and job.address is not None:
        if not ordering.is_my_turn(job.address, job.seq, job.waiting_since):
            # An earlier message of this connection has not finished: wait for it, in any worker.
            waiting = job if job.waiting_since is not None else job.but(waiting_since=time.time())
            put(waiting, cls.queue_name, cls.priority, ordering.park(waiting, cls.queue_name, cls.priority))
            return
        if job.waiting_since is not None and not ordering.claim_run(job.address, job.seq, job.attempt):
            return  # another copy of this waiting job runs it
    done = True
    try:
        done = _run(cls, job, reply)
    finally:
        if done:  # else retried: its place stays taken
            finish_place(job.address, job.seq)


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


def _run(cls: type[Message], job: DeferredJob, reply: Replier) -> bool:
    """Run one attempt; False when it failed and was queued again (its place stays taken)."""
    user: Any = AnonymousUser()
    if job.user_pk is not None:
        user = get_user_model()._default_manager.filter(pk=job.user_pk).first() or AnonymousUser()
    meta = Metadata(
        trace_id=job.trace_id,
        user=user,
        channel_name=job.address,
        received_at=job.received_at,
        registry=_registry(job.registry),
        attempt=job.attempt,
        reporter=reply,
    )
    try:
        message = cls.from_payload(job.payload, meta)
    except BusError as exc:  # the schema changed between enqueue and run
        reply.error(exc)
        return True
    reply.state(states.RUNNING)
    try:
        if cls.atomic:
            with job_atomic():  # SQLite's write lock from the first write on, not for the whole run
                result = _call(message)
        else:
            result = _call(message)
    except BusError as exc:
        reply.error(exc)
        return True
    except (Exception, JobTimeout) as exc:
        return _failed(cls, job, reply, exc)
    reply.result(cls, result)
    return True


def _failed(cls: type[Message], job: DeferredJob, reply: Replier, exc: BaseException) -> bool:
    """An attempt raised (or timed out: its transaction was rolled back like any other). Queue the
    next attempt and return False, or, after the last, send ``error.job`` and return True."""
    failed = f"timed out after {cls.timeout:g} s" if isinstance(exc, JobTimeout) else "failed"
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
    details: dict[str, Any] = {"type_name": cls.name, "attempts": job.attempt}
    if isinstance(exc, JobTimeout):
        details["timeout"] = cls.timeout
    reply.error(JobFailed(f"{cls.name} {failed}.", **details))
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

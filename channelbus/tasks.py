"""Deferred handlers on a real job queue, through Django's Tasks API.

A message class with ``deferred = True`` is validated and permission-checked
in the consumer, then enqueued as the task :func:`run_deferred` on the
project's task backend (``TASKS`` setting: ``django.tasks`` on Django 6, the
``django-tasks`` backport on 5.2). The client gets ``q``. In the worker:
``r`` when the handler starts, ``r`` with ``{"done", "total", "text"}`` for each
``self.progress(...)``, then ``s`` with the result, or ``error.job`` after the
last retry. A :class:`~channelbus.protocol.BusError` raised on purpose is sent
as it is, without retries.

The job carries who asked: the user's pk, the connection's address and the
trace id, so the worker answers the right tab, in whatever process it lives.
Retries are carried out here (re-enqueued with ``run_after``), so they work on
every backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .conf import settings
from .messages import Message, Metadata, reply_frame
from .protocol import BusError, JobFailed, ServerError, encode, error_frame, states
from .publishing import FrameSender, hold_publishes, publish
from .registry import Registry, all_registries, incoming
from .timeouts import JobTimeout, time_limit

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # Django 5.2 with the django-tasks backport
    from django_tasks import task

__all__ = ["JobTimeout", "enqueue", "run_deferred", "trigger"]

logger = logging.getLogger("channelbus")


def _registry(name: str) -> Registry:
    for registry in all_registries():
        if registry.name == name:
            return registry
    return incoming


def enqueue(
    cls: type[Message],
    payload: Any,
    meta: Metadata,
    attempt: int = 1,
    delay: float | None = None,
    seq: int | None = None,
    waiting_since: float | None = None,
) -> None:
    """Put one deferred message on the queue (sync: the backend may write to a database or Redis).

    ``seq`` is its place among the strictly ordered messages of its connection.
    """
    args = (
        cls.name,
        payload,
        meta.trace_id,
        _pk(meta.user),
        meta.channel_name,
        attempt,
        meta.received_at,
        meta.registry.name if meta.registry is not None else "incoming",
        seq,
        waiting_since,
    )
    _put(args, cls.queue_name, cls.priority, cls.delay if delay is None else delay)


def _put(args: tuple[Any, ...], queue_name: str, priority: int, delay: float | None) -> None:
    """Enqueue :func:`run_deferred` with ``args``, to run after ``delay`` seconds."""
    options: dict[str, Any] = {"queue_name": queue_name, "priority": priority}
    if delay:
        if run_deferred.get_backend().supports_defer:
            options["run_after"] = timezone.now() + timedelta(seconds=delay)
        else:  # e.g. the immediate backend: wait here, then run
            time.sleep(delay)
    run_deferred.using(**options).enqueue(*args)


@task()
def run_deferred(
    type_name: str,
    payload: Any,
    trace_id: str | None,
    user_pk: str | None,
    address: str | None,
    attempt: int,
    received_at: float,
    registry_name: str = "incoming",
    seq: int | None = None,
    waiting_since: float | None = None,
) -> None:
    """The job: run a deferred message's handler in a worker and answer the connection that sent it."""
    cls = _registry(registry_name).get(type_name)
    reply = _Replier(address, trace_id, type_name)
    if cls is None:
        logger.error("channelbus: deferred job for unregistered type %s (i=%s)", type_name, trace_id)
        reply.error(ServerError(trace_id=trace_id))
        return  # its place stays open: successors go ahead after STRICT_ORDER_TIMEOUT
    if seq is not None and address is not None:
        if not _my_turn(address, seq, waiting_since):
            # An earlier message of this connection has not finished: wait for it, in any worker.
            since = waiting_since or time.time()
            _park(
                (
                    type_name,
                    payload,
                    trace_id,
                    user_pk,
                    address,
                    attempt,
                    received_at,
                    registry_name,
                    seq,
                    since,
                ),
                cls,
            )
            return
        if waiting_since is not None:  # a job that waited has copies (a wake-up, looks): one runs it
            if not cache.add(_order_key(address, f"run:{seq}:{attempt}"), True, ORDER_STATE_SECONDS):
                return
            cache.delete(_order_key(address, f"parked:{seq}"))
    user: Any = AnonymousUser()
    if user_pk is not None:
        user = get_user_model()._default_manager.filter(pk=user_pk).first() or AnonymousUser()
    meta = Metadata(trace_id, user, None, address, received_at, _registry(registry_name), None)
    try:
        message = cls.from_payload(payload, meta)
    except BusError as exc:  # the schema changed between enqueue and run
        reply.error(exc)
        finish_place(address, seq)
        return
    try:
        _run(cls, message, payload, meta, attempt, reply, seq)
    finally:
        if not getattr(message, "_retrying", False):
            finish_place(address, seq)


def finish_place(address: str | None, seq: int | None) -> None:
    """Record that the strictly ordered job at place ``seq`` of a connection is over (never going back),
    and wake the job at the next place if it is parked."""
    if seq is None or address is None:
        return
    key = _order_key(address)
    if cache.get(key, 0) < seq:
        cache.set(key, seq, ORDER_STATE_SECONDS)
    parked_key = _order_key(address, f"parked:{seq + 1}")
    parked = cache.get(parked_key)
    if parked is None:
        return
    cache.delete(parked_key)
    args, queue_name, priority = parked
    try:
        _put(tuple(args), queue_name, priority, None)
    except Exception:  # its next look, already queued, finds the turn instead
        logger.warning("channelbus: could not wake job %d of %s", seq + 1, address, exc_info=True)


def _park(args: tuple[Any, ...], cls: type[Message]) -> None:
    """Let a strictly ordered job wait for its turn without a queued look every few milliseconds.

    It leaves its arguments in the cache for the predecessor, which queues it at once when it
    finishes (:func:`finish_place`), and queues one look of its own, later and later while it waits
    (``ORDER_POLL_SECONDS`` doubling up to ``ORDER_POLL_MAX_SECONDS``, and at the latest just after
    ``STRICT_ORDER_TIMEOUT``): a predecessor that is lost, or that finished before the arguments
    were there, is not waited for in vain. Whichever copy finds the turn first runs the job; the
    others find it taken (``cache.add``) and end.
    """
    address, seq, since = args[4], args[8], args[9]
    timeout = settings.STRICT_ORDER_TIMEOUT
    cache.set(_order_key(address, f"parked:{seq}"), (args, cls.queue_name, cls.priority), timeout + 3600)
    waited = time.time() - since
    delay = min(ORDER_POLL_MAX_SECONDS, max(ORDER_POLL_SECONDS, waited))
    if waited < timeout:
        delay = min(delay, timeout - waited + ORDER_POLL_SECONDS / 4)
    if cache.get(_order_key(address), 0) >= seq - 1:
        delay = 0  # the predecessor finished meanwhile, maybe before the arguments were there
    _put(args, cls.queue_name, cls.priority, delay)


def _run(
    cls: type[Message],
    message: Message,
    payload: Any,
    meta: Metadata,
    attempt: int,
    reply: _Replier,
    seq: int | None,
) -> None:
    type_name, trace_id = cls.name, meta.trace_id
    message.attempt = attempt  # type: ignore[misc]
    message._replier = reply  # type: ignore[attr-defined]
    reply.state(states.RUNNING)
    try:
        if cls.atomic:
            with transaction.atomic():
                result = _call(message)
        else:
            result = _call(message)
    except BusError as exc:
        reply.error(exc)
        return
    except (Exception, JobTimeout) as exc:
        # A timed-out attempt is a failed one; its transaction was rolled back like any other.
        failed = f"timed out after {cls.timeout:g} s" if isinstance(exc, JobTimeout) else "failed"
        attempts_left = cls.retries + 1 - attempt
        if attempts_left > 0:
            delay = cls.retry_delay(attempt)
            logger.warning(
                "channelbus: deferred %s %s (i=%s, attempt %d); retrying in %.1fs",
                type_name,
                failed,
                trace_id,
                attempt,
                delay,
                exc_info=True,
            )
            message._retrying = True  # type: ignore[attr-defined]
            enqueue(cls, payload, meta, attempt + 1, delay, seq)
            return
        logger.exception(
            "channelbus: deferred %s %s after %d attempts (i=%s)", type_name, failed, attempt, trace_id
        )
        details: dict[str, Any] = {"type_name": type_name, "attempts": attempt}
        if isinstance(exc, JobTimeout):
            details["timeout"] = cls.timeout
        reply.error(JobFailed(f"{type_name} {failed}.", **details))
        return
    reply.result(cls, result)


#: Seconds before the first look of a parked strictly ordered job at whether its turn has come; each
#: next look waits as long as the job has waited so far, at most ``ORDER_POLL_MAX_SECONDS``.
ORDER_POLL_SECONDS = 0.2
ORDER_POLL_MAX_SECONDS = 5.0
#: How long the last finished place of a connection is remembered.
ORDER_STATE_SECONDS = 24 * 3600


def _order_key(address: str, what: str = "") -> str:
    """The cache key of a connection's last finished place, or of ``what`` about one of its places."""
    return f"channelbus:order:{address}:{what}" if what else f"channelbus:order:{address}"


def _my_turn(address: str, seq: int, waiting_since: float | None) -> bool:
    """True when every earlier strictly ordered message of the connection has finished.

    A job that waited longer than the ``STRICT_ORDER_TIMEOUT`` setting goes ahead anyway (its
    predecessor was lost, e.g. with a killed worker), with a warning.
    """
    done = cache.get(_order_key(address), 0)
    if done >= seq - 1:
        return True
    if waiting_since is not None and time.time() - waiting_since > settings.STRICT_ORDER_TIMEOUT:
        logger.warning(
            "channelbus: job %d of %s waited too long for job %d; running it", seq, address, done + 1
        )
        return True
    return False


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


class _Replier:
    """Sends a deferred message's states, progress and result to the connection that asked."""

    def __init__(self, address: str | None, trace_id: str | None, type_name: str) -> None:
        self.address = address
        self.trace_id = trace_id
        self.type_name = type_name
        self._sender = FrameSender(address) if address is not None else None

    def _send(self, text: str) -> None:
        if self._sender is not None:  # the job's frames arrive in the order they were sent
            self._sender.send(text)

    def state(self, state: str, payload: Any = None) -> None:
        if self.trace_id is not None:
            self._send(encode(self.type_name, payload, i=self.trace_id, s=state))

    def result(self, cls: type[Message], result: Any) -> None:
        if self.trace_id is None:
            return
        self._send(reply_frame(cls, self.trace_id, result))

    def error(self, error: BusError) -> None:
        if error.trace_id is None:
            error.trace_id = self.trace_id
        self._send(error_frame(error))


def progress(message: Message, done: float, total: float | None = None, text: str | None = None) -> None:
    """Send an ``r`` frame with ``{"done", "total", "text"}`` to the connection that sent ``message``."""
    replier: _Replier | None = getattr(message, "_replier", None)
    if replier is None:
        return  # not running as a deferred job (e.g. called from a test): nothing to tell
    payload: dict[str, Any] = {"done": done}
    if total is not None:
        payload["total"] = total
    if text is not None:
        payload["text"] = text
    replier.state(states.RUNNING, payload)


def trigger(
    cls: type[Message] | str,
    payload: Any = None,
    *,
    request: Any = None,
    user: Any = None,
    reply_to: str | None = None,
    trace_id: str | None = None,
) -> None:
    """Run a server-side handler from Python code (a view, the shell, another job), as df_websockets'
    ``trigger(..., to=[SERVER])``: deferred types go on the queue, others run now in this thread.

    ``request`` is a view's ``HttpRequest``: the handler sees its user. ``user`` is whom the
    handler sees otherwise (None: an anonymous user; it wins over ``request.user``). ``reply_to``
    is an optional connection address that gets the states and the result (with ``trace_id``).
    """
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if isinstance(cls, str):
        found = incoming.get(cls)
        if found is None:
            raise LookupError(f"{cls!r} is not a registered incoming message type.")
        cls = found
    meta = Metadata(
        trace_id, user if user is not None else AnonymousUser(), None, reply_to, time.time(), incoming
    )
    if cls.deferred:
        cls.from_payload(payload, meta)  # fail here, in the caller, on a bad payload
        enqueue(cls, payload, meta)
        return
    run_deferred.call(cls.name, payload, trace_id, _pk(user), reply_to, 1, meta.received_at, "incoming")


def _pk(user: Any) -> str | None:
    return str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else None

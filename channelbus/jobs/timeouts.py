"""Time limits for deferred handlers (``Message.timeout``), enforced by channelbus on every backend.

:func:`time_limit` raises :class:`JobTimeout` in the code it guards once ``seconds`` have passed:

* in the **main thread** (``db_worker``, RQ's work horse, ``trigger()`` from a script) on Unix, with
  ``signal.setitimer(ITIMER_REAL)`` and a ``SIGALRM`` handler. The signal interrupts
  ``time.sleep`` and other blocking calls that Python retries after a signal. A timer that is
  already running (RQ's own job timeout uses ``SIGALRM`` too) is kept: if it ends first, it fires
  as it would have; otherwise it is started again with the time it had left;
* in **any other thread** (the worker thread of ``runbus``, the immediate backend in a thread),
  with a watchdog thread that raises the exception in the guarded thread through
  ``PyThreadState_SetAsyncExc``. Python code is interrupted at once; a blocking C call (a sleep, a
  socket read, a database query) only when it returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from ..conf import settings

__all__ = ["JobTimeout", "attempt_limit", "reap_grace", "time_limit"]


class JobTimeout(BaseException):
    """Raised in a deferred handler that ran longer than its class's ``timeout``.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that a handler's ``except Exception`` does
    not swallow it. The worker counts it as a failed attempt.
    """


def attempt_limit(timeout: float | None) -> float | None:
    """Seconds one attempt of a class with this ``timeout`` may run before its worker counts as lost:
    the ``timeout``, else the ``JOB_REAP_AFTER`` setting (None: never; see :mod:`channelbus.jobs.reaping`)."""
    if timeout is not None:
        return float(timeout)
    after = settings.JOB_REAP_AFTER
    return None if after is None else float(after)


def reap_grace() -> float:
    """The ``JOB_REAP_GRACE`` setting: seconds an attempt may overrun :func:`attempt_limit` before it
    is reaped (a blocking call that the timer could not interrupt, clocks of two machines apart)."""
    return float(settings.JOB_REAP_GRACE)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`JobTimeout` in the guarded block after ``seconds`` (None: no limit)."""
    if seconds is None:
        yield
    elif threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:
        yield  # an outer timer (RQ's job timeout) ends first: let it fire as it would have
        return
    started = time.monotonic()

    def expired(signum: int, frame: FrameType | None) -> None:
        raise JobTimeout

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 0.001))


# Own prototypes: ctypes.pythonapi's shared function object is left as other code set it.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    lock = threading.Lock()
    state = {"active": True, "fired": False}

    def expire() -> None:
        with lock:
            if state["active"]:
                state["fired"] = True
                _set_async_exc(target, JobTimeout)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.name = "channelbus-job-timeout"
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
            fired = state["fired"]
        timer.cancel()
        if fired:
            # The block ended just as the timer fired: drop the exception if it is still pending,
            # so that it never lands in the code after this block.
            _clear_async_exc(target, None)  # NULL: no pending exception

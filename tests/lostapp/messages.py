"""Deferred types whose jobs stay queued, get lost with their worker, or are cancelled with their socket.

Used in-process by ``tests/jobs/test_caps.py``, ``test_liveness.py``, ``test_reaping.py``, and in the demo
(``DEMO_EXTRA_APPS=tests.lostapp``) by ``tests/system/test_lost_jobs.py``.
"""

import logging
import os
import time

from pydantic import BaseModel

from channelbus import Message, incoming

logger = logging.getLogger("channelbus")


class Nap(BaseModel):
    seconds: float = 0.0
    first_only: bool = True


class _Napping(Message):
    """Naps ``seconds`` (in its first attempt only, with ``first_only``); says which attempt ran where."""

    schema = Nap
    deferred = True
    atomic = False
    timeout = 1.0
    retry_delays = ()

    def handle(self):
        if self.attempt == 1 or not self.data.first_only:
            logger.info("lost-test: %s attempt %d starts napping in %d", self.name, self.attempt, os.getpid())
            time.sleep(self.data.seconds)
        return {"attempt": self.attempt, "pid": os.getpid()}


@incoming.register
class NapRetried(_Napping):
    """One retry: a lost first attempt is run again."""

    name = "lost.nap"
    retries = 1


@incoming.register
class NapFinal(_Napping):
    """No retry: a lost attempt ends with error.job."""

    name = "lost.final"


@incoming.register
class Plain(Message):
    """Runs even when its connection has closed; logs when it runs."""

    name = "lost.plain"
    deferred = True

    def handle(self):
        logger.info("lost-test: %s ran (i=%s)", self.name, self.trace_id)
        return {"ran": True}


@incoming.register
class Cancellable(Plain):
    """Not started once its connection has closed."""

    name = "lost.cancellable"
    cancel_on_disconnect = True

"""Jobs: work that runs in task workers through Django's Tasks API.

``deferred`` (the job that runs a ``deferred = True`` handler, with retries), ``job`` (the
named, versioned data it carries), ``ordering`` (strictly ordered messages of a connection),
``replies`` (its states, progress and result), ``timeouts``, ``trigger`` (running a handler
from Python code) and ``tracking`` (the jobs that keep a row per connection); ``serving`` (which
backend and worker serve deferred work), ``strays`` (jobs whose connection lives in a process no frame
from here reaches) and ``neighbours`` (other ``runbus`` processes on the same job queue database).
"""

from __future__ import annotations

from .deferred import enqueue, run_deferred
from .job import DeferredJob
from .timeouts import JobTimeout
from .trigger import trigger

__all__ = ["DeferredJob", "JobTimeout", "enqueue", "run_deferred", "trigger"]

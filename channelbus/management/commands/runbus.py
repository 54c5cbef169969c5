"""``python manage.py runbus``: serve the project's ASGI application (HTTP and channelbus) with uvicorn.

uvicorn logs each request and WebSocket handshake with its URL; runbus removes the value of a
``token=`` query parameter (a connection token) from those lines (:class:`RedactTokens`).

At start-up it says where deferred messages run (:func:`channelbus.jobs.serving.describe`), and warns
when another runbus on this machine serves the same job queue database without a shared channel layer
(:mod:`channelbus.jobs.neighbours`): each one's worker would take the other's jobs and lose their replies.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import re
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

if TYPE_CHECKING:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django_tasks_db.management.commands.db_worker import Worker


class Command(BaseCommand):
    """Run uvicorn on ``settings.ASGI_APPLICATION``."""

    help = "Serve the project (HTTP and the channelbus WebSocket) with uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        """Options: ``--host``, ``--port``, ``--reload``, ``--log-level``, ``--no-worker``,
        ``--ws-deflate``, ``--nostatic``, ``--worker-interval``."""
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--reload", action="store_true", help="Restart when code changes.")
        parser.add_argument("--log-level", default="info")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Do not run a task worker beside the server (the default runs one for django_tasks_db).",
        )
        parser.add_argument(
            "--ws-deflate",
            action="store_true",
            help="Accept permessage-deflate (WebSocket compression). Off by default: small JSON frames gain "
            "little, and each delivery would be compressed per socket instead of framed once for all.",
        )
        parser.add_argument(
            "--nostatic",
            action="store_true",
            help="Do not serve STATIC_URL (served by default with DEBUG and django.contrib.staticfiles, "
            "as runserver does).",
        )
        parser.add_argument(
            "--worker-interval",
            type=_positive_seconds,
            default=DEFAULT_WORKER_INTERVAL,
            metavar="SECONDS",
            help="How often the embedded django_tasks_db worker looks for jobs, in seconds "
            f"(default {DEFAULT_WORKER_INTERVAL}). Shorter: less latency, more CPU and queries while idle.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Start uvicorn; stops on Ctrl-C."""
        if find_spec("uvicorn") is None:
            raise CommandError("runbus needs uvicorn: pip install 'channelbus[server]'.")
        target = getattr(settings, "ASGI_APPLICATION", None)
        if not target or "." not in target:
            raise CommandError("Set ASGI_APPLICATION = 'project.asgi.application' in your settings.")
        module, _, attr = target.rpartition(".")
        self.stdout.write(f"channelbus: serving {target} on http://{options['host']}:{options['port']}/")
        if options["reload"] and not options["no_worker"]:
            # uvicorn serves from a child process then; a worker thread here could not reach its sockets.
            self.stderr.write(
                "channelbus: no embedded task worker with --reload: deferred messages then need a worker "
                "process and a shared channel layer (docs/deferred.md)"
            )
            options["no_worker"] = True
        worker = None if options["no_worker"] else start_embedded_worker(options["worker_interval"])
        if worker is not None:
            self.stdout.write(
                "channelbus: running a django_tasks_db worker beside the server "
                f"(looking for jobs every {worker.interval:g} s)"
            )
        self._say_who_serves_deferred_work(worker is not None)
        from channelbus.jobs.strays import start_watch

        start_watch()  # error.job for this process's jobs that another process's worker takes
        from channelbus.jobs.reaping import start_reaper

        reaper = start_reaper()  # lost jobs of django_tasks_db (JOB_REAP_INTERVAL), with or without a worker
        if reaper is not None:
            self.stdout.write(f"channelbus: reaping lost deferred jobs every {reaper.interval:g} s")
        try:
            self._serve(module, attr, options)
        finally:
            if worker is not None:
                worker.running = False
            if reaper is not None:
                reaper.stop()

    def _say_who_serves_deferred_work(self, worker_here: bool) -> None:
        """Start-up lines: which backend and worker run deferred messages, and another runbus on the
        same job queue database when no shared channel layer connects the two (issue 15)."""
        from channelbus.jobs import neighbours
        from channelbus.jobs.serving import describe, shared_layer

        described = describe(worker_here)
        if described is not None:
            line, warns = described
            (self.stderr if warns else self.stdout).write(line)
        others = neighbours.join()
        if others and not shared_layer():
            self.stderr.write(
                f"channelbus: another runbus (pid {', '.join(map(str, others))}) serves the same job queue "
                "database, and the channel layer is in-memory: each one's worker takes the other's deferred "
                "jobs, whose replies then cannot reach their sockets (the client gets error.job, and both "
                "log a WARNING). Stop the other, or use channels_redis in CHANNEL_LAYERS for both "
                "(docs/deployment.md)"
            )

    def _serve(self, module: str, attr: str, options: dict[str, Any]) -> None:
        import uvicorn

        app, factory = f"{module}:{attr}", False
        if serves_static(options["nostatic"]):
            # A factory, so that uvicorn's --reload child processes build the same wrapped application.
            os.environ[APPLICATION_ENV] = f"{module}.{attr}"
            app, factory = f"{__name__}:static_application", True
            self.stdout.write(f"channelbus: serving static files at {settings.STATIC_URL} (DEBUG)")
        uvicorn.run(
            app,
            factory=factory,
            host=options["host"],
            port=options["port"],
            reload=options["reload"],
            log_level=options["log_level"],
            ws_max_size=max(settings_max_frame() * 2, 1 << 20),
            lifespan="off",
            ws_per_message_deflate=options["ws_deflate"],
            log_config=log_config(),
        )


#: A ``token=`` query parameter's value in a logged URL.
_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]*")


def redact_tokens(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced by ``[redacted]``."""
    return _TOKEN_IN_URL.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """A filter for uvicorn's loggers: the access log (``uvicorn.access``) and the WebSocket handshake
    lines (``uvicorn.error``) name URLs, and a ``?token=`` there is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message and string arguments; never drops a record."""
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = redact_tokens(record.msg)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration, with :class:`RedactTokens` on its two loggers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["channelbus_redact_tokens"] = {"()": f"{__name__}.RedactTokens"}
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = config["loggers"].setdefault(name, {})
        logger["filters"] = [*logger.get("filters", []), "channelbus_redact_tokens"]
    return config


#: The environment variable that tells :func:`static_application` which application to wrap.
APPLICATION_ENV = "CHANNELBUS_RUNBUS_APPLICATION"


def serves_static(nostatic: bool = False) -> bool:
    """Whether runbus serves ``STATIC_URL`` itself: with DEBUG and ``django.contrib.staticfiles``, like
    ``runserver``, unless ``--nostatic``."""
    from django.apps import apps

    return bool(settings.DEBUG and not nostatic and apps.is_installed("django.contrib.staticfiles"))


def static_application() -> ASGIStaticFilesHandler:
    """uvicorn factory: the ``ASGI_APPLICATION`` named in :data:`APPLICATION_ENV`, wrapped in Django's
    ``ASGIStaticFilesHandler`` (static files over HTTP; everything else, WebSockets included, passes)."""
    from importlib import import_module

    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    module, _, attr = os.environ[APPLICATION_ENV].rpartition(".")
    return ASGIStaticFilesHandler(getattr(import_module(module), attr))


def settings_max_frame() -> int:
    """The channelbus frame limit; the server reads frames up to twice it, so error.too_large can answer."""
    from channelbus.conf import settings as bus_settings

    return int(bus_settings.MAX_FRAME_BYTES)


#: Seconds between two looks of the embedded worker for jobs (``runbus --worker-interval``).
DEFAULT_WORKER_INTERVAL = 0.1


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {value}")
    return seconds


def start_embedded_worker(interval: float = DEFAULT_WORKER_INTERVAL) -> Worker | None:
    """Run a django_tasks_db worker in a thread of this process, when that is the default task backend.

    It looks for jobs every ``interval`` seconds. In one process the worker reaches the sockets
    without a shared channel layer: the embedded default needs no other server. Returns the worker
    (``worker.running = False`` stops it) or None.
    """
    import threading

    from django.apps import apps

    from channelbus.jobs.serving import default_backend
    from channelbus.jobs.strays import own_worker

    if not apps.is_installed("django_tasks_db"):  # RQ, Celery...: importing its models would fail
        return None
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.management.commands.db_worker import Worker
    except ImportError:
        return None
    if not isinstance(default_backend(), DatabaseBackend):
        return None
    worker = Worker(
        queue_names=["*"],
        interval=interval,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"runbus-{os.getpid()}",
        excluded_queue_names=[],
    )
    own_worker(worker.worker_id)  # its jobs are this process's: no stray-job error.job for them
    threading.Thread(target=worker.run, name="channelbus-task-worker", daemon=True).start()
    return worker

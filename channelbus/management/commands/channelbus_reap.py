"""``python manage.py channelbus_reap``: retry or fail the deferred jobs whose worker was lost."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from channelbus.jobs.reaping import reap, reaps_here


class Command(BaseCommand):
    """One pass of the reaper (``channelbus.jobs.reaping``), or one every ``--every`` seconds."""

    help = (
        "Retry, or answer with error.job, the deferred jobs that stay RUNNING in django_tasks_db longer than "
        "their time limit: their worker was lost."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--grace SECONDS`` (instead of JOB_REAP_GRACE) and ``--every SECONDS`` (keep going)."""
        parser.add_argument(
            "--grace", type=float, default=None, help="seconds past a job's limit (JOB_REAP_GRACE)"
        )
        parser.add_argument(
            "--every", type=float, default=None, help="reap again every SECONDS until stopped"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Reap and say how many jobs were ended."""
        if not reaps_here():
            raise CommandError("The default task backend is not django_tasks_db's: there is nothing to reap.")
        every = options["every"]
        while True:
            count = reap(grace=options["grace"])
            self.stdout.write(f"reaped {count} lost job(s)")
            if every is None:
                return
            close_old_connections()
            time.sleep(every)

"""``manage.py channelbus_reap`` (channelbus/management/commands/channelbus_reap.py): one pass of the reaper,
with ``--grace``; refused when the task backend is not django_tasks_db."""

import io

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from tests.jobs.test_deferred import DB_TASKS
from tests.jobs.test_reaping import started_and_lost

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_pass_reaps_the_lost_jobs_and_says_how_many(settings):
    from django_tasks_db.models import DBTaskResult

    cache.clear()
    settings.TASKS = DB_TASKS
    row = started_and_lost("lost.final", {"seconds": 30}, "t.hub|cmd", seconds_ago=5)
    out = io.StringIO()
    call_command("channelbus_reap", stdout=out)  # JOB_REAP_GRACE (30 s) has not passed
    assert out.getvalue() == "reaped 0 lost job(s)\n"
    call_command("channelbus_reap", "--grace", "2", stdout=out)
    assert out.getvalue().splitlines()[-1] == "reaped 1 lost job(s)"
    assert DBTaskResult.objects.get(pk=row.pk).status == "FAILED"


def test_it_refuses_a_backend_it_cannot_read():
    with pytest.raises(CommandError, match="not django_tasks_db"):
        call_command("channelbus_reap")  # the tests' immediate backend

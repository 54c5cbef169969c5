"""The task shim (channelbus/jobs/backend.py): Django's own ``task`` on Django 6, the django-tasks backport's
on Django 5.2, and channelbus's jobs are tasks of that API."""

from importlib import import_module
from importlib.util import find_spec

import django

from channelbus.jobs import backend
from channelbus.jobs.deferred import run_deferred


def expected_module():
    return "django.tasks" if find_spec("django.tasks") else "django_tasks"


def test_task_is_djangos_on_6_and_the_backports_on_5_2():
    if django.VERSION >= (6, 0):
        assert expected_module() == "django.tasks"
    else:
        assert expected_module() == "django_tasks"
    assert backend.task is import_module(expected_module()).task
    assert backend.__all__ == ["task"]


def test_channelbus_jobs_are_tasks_of_that_api():
    assert isinstance(run_deferred, import_module(f"{expected_module()}.base").Task)
    assert run_deferred.module_path == "channelbus.jobs.deferred.run_deferred"

"""trigger() (channelbus/jobs/trigger.py): running a handler from Python code. A plain type runs now, in this
thread, as the given user, the request's user or an anonymous one; a deferred type goes on the queue; an
unknown name or a deferred type's bad payload fails in the caller; ``reply_to`` gets the frames."""

import threading

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from channelbus.jobs import trigger
from channelbus.protocol import ValidationFailed
from channelbus.testing import capture_published
from tests.testapp.messages import DeferredOriginReport, OriginReport

pytestmark = pytest.mark.django_db(transaction=True)

#: django_tasks_db as the task backend: a queued job stays in the database until a worker takes it.
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def seen_by_handler(sent):
    """What test.origin published about who ran it and where (one message per run)."""
    [published] = sent
    assert published.message.name == "test.origin_seen"
    assert published.topics == ["broadcast"]
    return published.message.payload()


def request_of(user):
    request = RequestFactory().post("/rebuild/")
    request.user = user
    return request


@pytest.mark.parametrize(
    ("how", "expected"),
    [("user", "alice"), ("request", "alice"), ("request_anonymous", ""), ("nobody", "")],
)
def test_a_plain_type_runs_now_in_this_thread_as_whoever_asked(user, settings, how, expected):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS  # a plain type is not queued, whatever the backend
    kwargs = {
        "user": {"user": user},
        "request": {"request": request_of(user)},
        "request_anonymous": {"request": request_of(AnonymousUser())},
        "nobody": {},
    }[how]
    with capture_published() as sent:
        assert trigger("test.origin", {"text": how}, **kwargs) is None
    seen = seen_by_handler(sent)
    assert (seen["text"], seen["user"], seen["anonymous"]) == (how, expected, expected == "")
    assert seen["thread"] == threading.get_ident()
    assert seen["address"] is None
    assert seen["attempt"] == 1
    assert DBTaskResult.objects.count() == 0


def test_an_explicit_user_wins_over_the_requests(user):
    with capture_published() as sent:
        trigger(OriginReport, {"text": "x"}, request=request_of(AnonymousUser()), user=user)
    assert seen_by_handler(sent)["user"] == "alice"


def test_a_deferred_type_is_queued_not_run(user, settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS
    with capture_published() as sent:
        assert trigger("test.deferred_origin", {"text": "later"}, user=user, trace_id="d1") is None
    assert sent == []
    row = DBTaskResult.objects.get()
    assert (row.task_path, row.status) == ("channelbus.jobs.deferred.run_deferred", "READY")
    [job] = row.args_kwargs["args"]
    assert (job["type_name"], job["payload"], job["trace_id"], job["user_pk"], job["address"]) == (
        "test.deferred_origin",
        {"text": "later"},
        "d1",
        str(user.pk),
        None,
    )


def test_an_unknown_type_name_raises_lookup_error():
    with pytest.raises(LookupError, match=r"'test\.no_such_type' is not a registered incoming message type"):
        trigger("test.no_such_type", {})


def test_a_bad_payload_of_a_deferred_type_raises_in_the_caller_and_queues_nothing(settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS
    with pytest.raises(ValidationFailed) as exc:
        trigger(DeferredOriginReport, {"fail": "maybe"})
    assert exc.value.details["type_name"] == "test.deferred_origin"
    assert DBTaskResult.objects.count() == 0


async def test_reply_to_gets_the_frames_of_a_plain_and_of_a_deferred_type(bus_client, user):
    from channelbus.transport import get_hub

    client = await bus_client(user=user)
    [connection] = get_hub().connections.values()
    address = connection.channel_name
    for type_name, trace_id in (("test.origin", "p1"), ("test.deferred_origin", "d1")):
        # The immediate backend (tests/settings.py) runs the deferred one inside its enqueue.
        await database_sync_to_async(trigger)(
            type_name, {"text": "tab"}, user=user, reply_to=address, trace_id=trace_id
        )
        frames = [await client.receive(type_name, timeout=3) for _ in range(2)]
        # No q: no client sent it, so the consumer said nothing.
        assert [(f["i"], f["s"]) for f in frames] == [(trace_id, "r"), (trace_id, "s")]
        assert frames[1]["p"]["user"] == "alice"
        assert frames[1]["p"]["address"] == address
    await database_sync_to_async(trigger)("test.origin", {"fail": "maybe"}, reply_to=address, trace_id="p2")
    error = await client.receive("error.validation", timeout=3)
    assert (error["i"], error["s"], error["p"]["type_name"]) == ("p2", "f", "test.origin")

"""Message types used by the tests: slow, concurrent, sync (ORM), permission-checked, failing."""

import asyncio
import threading

from django.contrib.auth import get_user_model
from pydantic import BaseModel

from channelbus import Message, NotFound, incoming, outgoing


class Delay(BaseModel):
    seconds: float = 0.0
    tag: str = ""


@incoming.register
class Slow(Message):
    """Sleeps, then replies with its tag (in order by default)."""

    name = "test.slow"
    schema = Delay

    async def handle(self):
        await asyncio.sleep(self.data.seconds)
        return {"tag": self.data.tag}


@incoming.register
class SlowConcurrent(Slow):
    """Like test.slow, but handled concurrently."""

    name = "test.slow_concurrent"
    concurrent = True


@incoming.register
class CountUsers(Message):
    """A sync handler that queries the database in a thread."""

    name = "test.count_users"

    def handle(self):
        return {"count": get_user_model().objects.count(), "username": self.user.get_username()}


@incoming.register
class StaffOnly(Message):
    """Only staff may send it (a sync permission hook that reads the user)."""

    name = "test.staff_only"

    @classmethod
    def allowed(cls, user, connection):
        return user.is_staff

    async def handle(self):
        return {"ok": True}


@incoming.register
class AsyncPermission(Message):
    """An async permission hook."""

    name = "test.async_perm"

    @classmethod
    async def allowed(cls, user, connection):
        return user.username == "alice"


@incoming.register
class Boom(Message):
    """Raises an unexpected error."""

    name = "test.boom"

    async def handle(self):
        raise RuntimeError("secret internal detail")


@incoming.register
class SyncBoom(Message):
    """A sync handler that raises."""

    name = "test.sync_boom"

    def handle(self):
        raise ValueError("secret sync detail")


@incoming.register
class Missing(Message):
    """Raises a domain error."""

    name = "test.missing"

    async def handle(self):
        raise NotFound("No such thing.", thing=7)


@incoming.register
class Public(Message):
    """Signed-out users may send it."""

    name = "test.public"
    allow_anonymous = True

    async def handle(self):
        return {"anonymous": not self.user.is_authenticated}


class Greeting(BaseModel):
    text: str


@outgoing.register
class Greet(Message):
    """An outgoing message used as a reply."""

    name = "test.greeting"
    schema = Greeting


@incoming.register
class Hello(Message):
    """Replies with another message type."""

    name = "test.hello"

    async def handle(self):
        return Greet(text="hello")


@incoming.register
class SyncStaffOnly(Message):
    """A sync handler behind a sync permission hook (both in one thread)."""

    name = "test.sync_staff_only"

    @classmethod
    def allowed(cls, user, connection):
        return user.is_staff

    def handle(self):
        return {"users": get_user_model().objects.count()}


@incoming.register
class SyncAsyncPermission(Message):
    """A sync handler behind an async permission hook."""

    name = "test.sync_async_perm"

    @classmethod
    async def allowed(cls, user, connection):
        return user.username == "alice"

    def handle(self):
        return {"users": get_user_model().objects.count()}


@incoming.register
class TimesOut(Message):
    """Enters asyncio.timeout before its first wait; the timeout must hit the handler, not the socket."""

    name = "test.times_out"

    async def handle(self):
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(1)
        except TimeoutError:
            return {"timed_out": True}
        return {"timed_out": False}


class NoteText(BaseModel):
    text: str


@incoming.register
class WriteThenRefuse(Message):
    """Deferred: writes a note and publishes, then refuses: the write and the publish are undone."""

    name = "test.write_then_refuse"
    schema = NoteText
    deferred = True

    def handle(self):
        from channelbus import publish

        from .models import Note

        Note.objects.create(owner=self.user, text=self.data.text)
        publish(Greet(text="never sent"), to="broadcast")
        raise NotFound("Changed my mind.")


@incoming.register
class WhoAsked(Message):
    """Deferred: reports what the worker knows about who asked."""

    name = "test.who_asked"
    deferred = True

    def handle(self):
        return {"user": self.user.get_username(), "address": self.meta.channel_name, "attempt": self.attempt}


class NoteAndNap(BaseModel):
    text: str
    seconds: float = 5.0


@incoming.register
class WriteThenOverrun(Message):
    """Deferred with a 0.5 s limit: writes a note and publishes, then naps in slices (Python code,
    so that a watchdog in a worker thread interrupts it too): each attempt times out and is undone."""

    name = "test.write_then_overrun"
    schema = NoteAndNap
    deferred = True
    timeout = 0.5
    retries = 1
    retry_delays = ()

    def handle(self):
        import time

        from channelbus import publish

        from .models import Note

        Note.objects.create(owner=self.user, text=self.data.text)
        publish(Greet(text="never sent"), to="broadcast")
        deadline = time.monotonic() + self.data.seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return {"overran": False}


class AsyncWrite(BaseModel):
    text: str
    fail: bool = False
    nap: float = 0.0


@incoming.register
class AsyncWriteAndPublish(Message):
    """Deferred, async, 0.5 s limit: writes a note, publishes it to ``broadcast`` (with publish() and
    apublish()), naps if asked to, then fails if asked to."""

    name = "test.async_write_and_publish"
    schema = AsyncWrite
    deferred = True
    timeout = 0.5

    async def handle(self):
        from channelbus import apublish, publish

        from .models import Note

        note = await Note.objects.acreate(owner=self.user, text=self.data.text)
        publish(Greet(text=f"publish {note.text}"), to="broadcast")
        await apublish(Greet(text=f"apublish {note.text}"), to="broadcast")
        await asyncio.sleep(self.data.nap)
        if self.data.fail:
            raise RuntimeError("failing after the publishes")
        return {"id": note.pk}


@incoming.register
class StrictNote(Message):
    """Deferred and strictly ordered: writes a note."""

    name = "test.strict_note"
    schema = NoteText
    deferred = True
    ordering = "strict"

    def handle(self):
        from .models import Note

        Note.objects.create(owner=self.user, text=self.data.text)


@incoming.register
class QueuedOptions(Message):
    """Deferred on its own queue, with a priority and a delay (tests set a backend whose QUEUES has it)."""

    name = "test.queued_options"
    deferred = True
    queue_name = "slow"
    priority = 7
    delay = 0.3

    def handle(self):
        return {"ran": True}


class Failures(BaseModel):
    fail_times: int = 1


@incoming.register
class RetryTiming(Message):
    """Deferred, two retries 0.2 s and 0.4 s apart: fails its first ``fail_times`` attempts. Each attempt
    notes when it started and its ``self.attempt`` in the connection's session."""

    name = "test.retry_timing"
    schema = Failures
    deferred = True
    retries = 2
    retry_delays = (0.2, 0.4)

    def handle(self):
        import time

        session = self.session
        starts = [*session.get("starts", []), time.time()]
        attempts = [*session.get("attempts", []), self.attempt]
        session["starts"], session["attempts"] = starts, attempts
        if self.attempt <= self.data.fail_times:
            raise RuntimeError(f"attempt {self.attempt} fails")
        return {"attempt": self.attempt, "attempts": attempts, "starts": starts}


@incoming.register
class RefuseWithRetries(Message):
    """Deferred with 3 retries, but refuses on purpose (a BusError): counts its runs in the session."""

    name = "test.refuse_with_retries"
    deferred = True
    retries = 3
    retry_delays = ()

    def handle(self):
        runs = self.session.get("refusals", 0) + 1
        self.session["refusals"] = runs
        raise NotFound("Not today.", runs=runs)


#: Set by a test to let test.wait_for_release finish.
RELEASE = threading.Event()


@incoming.register
class WaitForRelease(Message):
    """Deferred: blocks its job until a test sets :data:`RELEASE` (at most 5 s)."""

    name = "test.wait_for_release"
    deferred = True

    def handle(self):
        return {"released": RELEASE.wait(5)}


@incoming.register
class StrictSeesConnection(Message):
    """Deferred and strictly ordered: whether the connection's row (written by its set-up job) exists."""

    name = "test.strict_sees_connection"
    deferred = True
    ordering = "strict"

    def handle(self):
        from channelbus.models import Connection

        return {"row": Connection.objects.filter(address=self.meta.channel_name).exists()}


class Origin(BaseModel):
    text: str = ""
    fail: bool = False


class OriginSeenSchema(BaseModel):
    text: str
    user: str
    anonymous: bool
    address: str | None
    thread: int
    atomic: bool
    attempt: int


@outgoing.register
class OriginSeen(Message):
    """What test.origin saw, published to ``broadcast``."""

    name = "test.origin_seen"
    schema = OriginSeenSchema


@incoming.register
class OriginReport(Message):
    """Not deferred, sync: publishes and returns who asked, the thread, whether it runs in a transaction
    and its attempt; then fails if asked to."""

    name = "test.origin"
    schema = Origin

    def handle(self):
        from django.db import connection

        from channelbus import publish

        seen = OriginSeen(
            text=self.data.text,
            user=self.user.get_username(),
            anonymous=not self.user.is_authenticated,
            address=self.meta.channel_name,
            thread=threading.get_ident(),
            atomic=connection.in_atomic_block,
            attempt=self.attempt,
        )
        publish(seen, to="broadcast")
        if self.data.fail:
            raise RuntimeError("failing after the publish")
        return seen.payload()


@incoming.register
class DeferredOriginReport(OriginReport):
    """test.origin, deferred."""

    name = "test.deferred_origin"
    deferred = True


class Shout(BaseModel):
    topic: str
    text: str


@incoming.register
class PublishTo(Message):
    """Publishes a greeting to a topic with ``apublish()`` (for tests of a publish that cannot be sent)."""

    name = "test.publish_to"
    schema = Shout

    async def handle(self):
        from channelbus import apublish

        await apublish(Greet(text=self.data.text), to=self.data.topic)
        return {"sent": True}


@incoming.register
class SyncPublishTo(PublishTo):
    """test.publish_to from a sync handler, with ``publish()`` outside a transaction."""

    name = "test.sync_publish_to"

    def handle(self):
        from channelbus import publish

        publish(Greet(text=self.data.text), to=self.data.topic)
        return {"sent": True}


# Repeated requests (tests/messages/test_repeats.py, tests/system/test_repeats.py): each counts its runs, in
# notes or in RUNS, so that a test can tell whether a repeated i ran the handler again.

#: Runs of the handlers below that write no note (a guest has no user to own one), by tag.
RUNS: dict[str, int] = {}


class NoteSteps(BaseModel):
    text: str
    steps: int = 0
    seconds: float = 0.0


@incoming.register
class NoteAsync(Message):
    """Writes a note (async ORM) and answers with its id and how many notes there are."""

    name = "test.note_async"
    schema = NoteText

    async def handle(self):
        from .models import Note

        note = await Note.objects.acreate(owner=self.user, text=self.data.text)
        return {"id": note.pk, "notes": await Note.objects.acount()}


@incoming.register
class NoteSync(Message):
    """Writes a note from a sync handler (in a thread) and answers with its id and the notes' count."""

    name = "test.note_sync"
    schema = NoteText

    def handle(self):
        from .models import Note

        note = Note.objects.create(owner=self.user, text=self.data.text)
        return {"id": note.pk, "notes": Note.objects.count()}


#: Set by a test to let test.note_when_released write its note.
NOTE_RELEASE = threading.Event()


@incoming.register
class NoteWhenReleased(NoteSync):
    """Sync: waits until a test sets :data:`NOTE_RELEASE` (at most 5 s), then writes a note."""

    name = "test.note_when_released"

    def handle(self):
        NOTE_RELEASE.wait(5)
        return super().handle()


@incoming.register
class NoteAgain(NoteAsync):
    """test.note_async, but not idempotent: a repeated i writes another note."""

    name = "test.note_again"
    idempotent = False


@incoming.register
class NoteThenRefuse(NoteAsync):
    """Writes a note, then refuses with error.not_found carrying the notes' count."""

    name = "test.note_then_refuse"

    async def handle(self):
        written = await super().handle()
        raise NotFound("Written, then refused.", notes=written["notes"])


@incoming.register
class NoteDeferred(NoteSync):
    """Deferred: reports ``steps`` progress steps ``seconds`` apart, then writes a note."""

    name = "test.note_deferred"
    schema = NoteSteps
    deferred = True

    def handle(self):
        import time

        for step in range(1, self.data.steps + 1):
            time.sleep(self.data.seconds)
            self.progress(step, self.data.steps)
        return super().handle()


@incoming.register
class NoteDeferredOnlyConnected(NoteDeferred):
    """test.note_deferred, dropped unstarted when its connection has closed (cancel_on_disconnect)."""

    name = "test.note_deferred_connected"
    cancel_on_disconnect = True


class Tag(BaseModel):
    tag: str


@incoming.register
class GuestTally(Message):
    """Signed-out users may send it: counts its runs per tag in :data:`RUNS`."""

    name = "test.guest_tally"
    schema = Tag
    allow_anonymous = True

    async def handle(self):
        RUNS[self.data.tag] = RUNS.get(self.data.tag, 0) + 1
        return {"runs": RUNS[self.data.tag]}


@incoming.register
class BusyOnce(GuestTally):
    """Counts its runs per tag; the first run answers error.rate_limited (try again later)."""

    name = "test.busy_once"

    async def handle(self):
        from channelbus import RateLimited

        runs = (await super().handle())["runs"]
        if runs == 1:
            raise RateLimited("Busy; try again.", retry_after=0.1)
        return {"runs": runs}

"""The declarative :class:`Message` class and the metadata each instance carries.

A message class is a type name, an optional pydantic schema for its payload,
an optional permission hook and a handler::

    class Echo(Message):
        name = "demo.echo"
        schema = EchoSchema

        async def handle(self):
            return {"text": self.data.text}

Building a message validates its payload at once (``Echo(text="hi")``), so a
bad outgoing payload fails in the code that built it, not on the socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..protocol import ValidationFailed, encode, states, valid_type_name
from ..session import ConnectionSession
from .adapters import InvalidPayload, SchemaAdapter
from .schemas import adapter_for

__all__ = [
    "REPLIED",
    "Message",
    "MessageLookup",
    "Metadata",
    "ProgressReporter",
    "reply_frame",
    "validation_errors",
]


class MessageLookup(Protocol):
    """What a message keeps of the registry it came through (a :class:`~channelbus.messages.Registry`)."""

    name: str

    def get(self, name: str) -> type[Message] | None:
        """The class registered under ``name``, or None."""


class ProgressReporter(Protocol):
    """Where :meth:`Message.progress` goes: set by the worker that runs a deferred handler."""

    def progress(self, done: float, total: float | None, text: str | None) -> None:
        """Tell the connection that asked how far the handler is."""


@dataclass(slots=True, kw_only=True)
class Metadata:
    """Where a message came from (built by keyword: ``Metadata(trace_id=..., user=...)``).

    ``trace_id`` is the envelope's ``i``; ``user`` the connection's user (or
    None outside a connection); ``connection_id`` a random id of the
    connection; ``channel_name`` the connection's address, for
    ``publish(to=...)`` (None outside a connection); ``received_at`` a Unix timestamp;
    ``registry`` the registry the message came through (None for messages
    built in code); ``connection`` the :class:`~channelbus.server.BusConsumer`
    it came through (None outside a connection). In a deferred handler, ``attempt``
    is the attempt running (1 for the first) and ``reporter`` takes its progress.
    """

    trace_id: str | None = None
    user: Any = None
    connection_id: str | None = None
    channel_name: str | None = None
    received_at: float = 0.0
    registry: MessageLookup | None = None
    connection: Any = None
    attempt: int = 1
    reporter: ProgressReporter | None = None


def validation_errors(exc: PydanticValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors reduced to the wire form ``{loc, msg, type}`` (no input echoed back)."""
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)
    ]


_NO_DATA = object()


class Message:
    """Base class of every message type, incoming and outgoing.

    Class attributes (configuration):

    ``name``
        The wire type ``t``: lower-case dotted, e.g. ``"chat.send"``. Required.
    ``schema``
        A pydantic model for the payload ``p``, or a Django form or DRF serializer class
        (``docs/schema.md``); None accepts no payload for incoming messages (``p`` must be
        absent or null) and any JSON for outgoing ones.
    ``allow_anonymous``
        True lets signed-out users send this type (see ``docs/messages.md``).
    ``concurrent``
        True runs this type's handler beside others of the same connection
        instead of in arrival order.
    ``exclude_none``
        True leaves payload fields that are None out of frames.
    ``volatile``
        Outgoing only: True marks frames of this type as replaceable by the next one (a cursor
        position, a typing indicator). A connection whose outbox is over its limit drops them
        instead of being closed (``docs/protocol.md``, "Slow clients").
    ``deferred``, ``queue_name``, ``priority``, ``delay``, ``retries``, ``retry_delays``,
    ``atomic``, ``ordering``
        Running the handler in a task worker (``docs/deferred.md``).
    ``idempotent``
        True (the default): a request of this type sent again with the same ``i`` (a client re-sending
        after a reconnect) within ``IDEMPOTENCY_WINDOW`` does not run the handler again; it gets the
        first run's terminal reply, or the states that follow (``docs/messages.md``, "Repeated
        requests"). False for types whose repeat must run again (the control messages, ``topic.*``).
    ``cancel_on_disconnect``
        Deferred only: True drops a queued job of this type, unstarted, when the connection that sent
        it has closed by the time a worker takes it (``docs/deferred.md``). False (the default) runs it
        anyway; its reply then has no receiver.
    ``timeout``
        Deferred only: seconds one attempt of the handler may run (None: no limit). An attempt
        that runs longer is interrupted with :class:`~channelbus.timeouts.JobTimeout`, its
        transaction rolled back, and it counts as a failed attempt (retried per ``retries``; then
        ``error.job`` says it timed out). In a worker's main thread on Unix a ``SIGALRM`` timer
        also interrupts ``time.sleep`` and blocking calls; in other threads, a blocking C call
        (a sleep, a socket read, a query) is only interrupted when it returns.

    Hooks:

    ``allowed(cls, user, connection)``
        A classmethod, sync or async, that returns whether ``user`` may send this
        type. Called before the payload is validated. A sync hook runs in a thread,
        so it may query the database.
    ``handle(self)``
        ``async def`` runs on the event loop; a plain ``def`` runs in a thread
        (``database_sync_to_async``) so it may use the ORM. It returns the result
        payload (a dict, a pydantic model, None) or another :class:`Message` as the reply.
    """

    name: ClassVar[str] = ""
    schema: ClassVar[type[Any] | None] = None
    allow_anonymous: ClassVar[bool] = False
    concurrent: ClassVar[bool] = False
    #: Leave fields that are None out of the payload this message sends.
    exclude_none: ClassVar[bool] = False
    #: Outgoing only: a slow connection may drop frames of this type (the next one replaces them).
    volatile: ClassVar[bool] = False
    #: Run the handler in a worker, through Django's Tasks API (``docs/deferred.md``).
    deferred: ClassVar[bool] = False
    #: Deferred only: the task queue, priority (-100..100) and delay in seconds before it runs.
    queue_name: ClassVar[str] = "default"
    priority: ClassVar[int] = 0
    delay: ClassVar[float | None] = None
    #: Deferred only: retries after an unexpected error, and the seconds to wait before each.
    retries: ClassVar[int] = 0
    retry_delays: ClassVar[tuple[float, ...]] = (1.0, 5.0, 30.0)
    #: Deferred only: seconds one attempt may run before it is interrupted (None: no limit).
    timeout: ClassVar[float | None] = None
    #: Deferred only: a job whose connection has closed before a worker takes it is not started.
    cancel_on_disconnect: ClassVar[bool] = False
    #: Deferred only: run the handler in ``transaction.atomic()`` (publishes go out after commit).
    atomic: ClassVar[bool] = True
    #: Deferred only: ``"strict"`` runs the strictly ordered messages of one connection (of every
    #: strict type) one after another, in arrival order, whatever the number of workers (needs a
    #: cache shared by the workers).
    ordering: ClassVar[str | None] = None
    #: Built-in control messages (``s.ping``) are handled at once, never queued behind handlers.
    control: ClassVar[bool] = False
    #: A repeated ``i`` of this type gets the first run's reply instead of running again.
    idempotent: ClassVar[bool] = True

    # Derived once per class in __init_subclass__ (the consumer reads them per frame).
    _sync_handle: ClassVar[bool] = False
    _allowed_kind: ClassVar[str | None] = None  # None: not overridden; "sync" or "async"
    _schema_adapter: ClassVar[SchemaAdapter | None] = None  # a form's or serializer's; None for pydantic

    __slots__ = ("data", "meta")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and not valid_type_name(cls.name):
            raise TypeError(
                f"{cls.__qualname__}.name = {cls.name!r} is not a valid message type: "
                "use a lower-case dotted name such as 'chat.send' (at most 100 characters)."
            )
        if "schema" in cls.__dict__:  # anything but pydantic, a form or a serializer fails check E007
            cls._schema_adapter = adapter_for(cls.__dict__["schema"])
        if cls.__dict__.get("ordering") not in (None, "strict"):
            raise TypeError(f"{cls.__qualname__}.ordering must be None or 'strict', not {cls.ordering!r}.")
        cls._sync_handle = not inspect.iscoroutinefunction(cls.handle)
        allowed = inspect.getattr_static(cls, "allowed")
        if allowed is inspect.getattr_static(Message, "allowed"):
            cls._allowed_kind = None
        else:
            func = getattr(allowed, "__func__", allowed)
            if not isinstance(allowed, classmethod | staticmethod):
                raise TypeError(f"{cls.__qualname__}.allowed must be a @classmethod (user, connection).")
            cls._allowed_kind = "async" if inspect.iscoroutinefunction(func) else "sync"

    def __init__(self, data: Any = _NO_DATA, /, *, meta: Metadata | None = None, **fields: Any) -> None:
        """Build a message and validate its payload now.

        Pass the payload's fields as keyword arguments (``Echo(text="hi")``), or
        one positional value: a dict or model instance for the schema, or any
        JSON value for a message without schema. Raises pydantic's
        ``ValidationError`` when the payload does not match the schema.
        """
        if not self.name:
            raise TypeError(f"{type(self).__qualname__} has no 'name'; set name = 'app.type' on the class.")
        if data is _NO_DATA:
            data = fields if (fields or self.schema is not None) else None
        elif fields:
            raise TypeError("Pass the payload either as one positional value or as keyword arguments.")
        schema = self.schema
        if self._schema_adapter is not None:
            data = self._schema_adapter.validate(data)  # InvalidPayload is a ValueError, as pydantic's
        elif schema is not None and not isinstance(data, schema):
            data = schema.model_validate(data)
        self.data: Any = data
        self.meta: Metadata = meta if meta is not None else Metadata()

    @classmethod
    def from_payload(cls, payload: Any, meta: Metadata) -> Message:
        """Build an incoming message from a decoded ``p``; raises :class:`ValidationFailed`."""
        schema = cls.schema
        self = cls.__new__(cls)
        if schema is None:
            if payload is not None:
                raise ValidationFailed(
                    f"{cls.name} takes no payload.",
                    trace_id=meta.trace_id,
                    type_name=cls.name,
                    errors=[{"loc": ["p"], "msg": "No payload is accepted", "type": "extra_forbidden"}],
                )
            self.data = None
        else:
            try:
                if cls._schema_adapter is None:
                    self.data = schema.__pydantic_validator__.validate_python(payload)
                else:
                    self.data = cls._schema_adapter.validate(payload)
            except (PydanticValidationError, InvalidPayload) as exc:
                raise ValidationFailed(
                    f"Invalid payload for {cls.name}.",
                    trace_id=meta.trace_id,
                    type_name=cls.name,
                    errors=exc.errors if isinstance(exc, InvalidPayload) else validation_errors(exc),
                ) from None
        self.meta = meta
        return self

    @classmethod
    def allowed(cls, user: Any, connection: Any) -> bool | Awaitable[bool]:
        """Whether ``user`` may send this message type on ``connection``. Default: yes."""
        return True

    async def handle(self) -> Any:
        """Handle an incoming message. Override it; the default does nothing and replies with no payload."""
        return None

    @classmethod
    def retry_delay(cls, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (the last delay repeats)."""
        delays = cls.retry_delays or (0.0,)
        return float(delays[min(attempt, len(delays)) - 1])

    def progress(self, done: float, total: float | None = None, text: str | None = None) -> None:
        """In a deferred handler: tell the client how far it is (``r`` with ``{"done", "total", "text"}``).

        Outside a deferred job (a test calling the handler) there is nobody to tell: it does nothing.
        """
        reporter = self.meta.reporter
        if reporter is not None:
            reporter.progress(done, total, text)

    @property
    def attempt(self) -> int:
        """In a deferred handler: which attempt this is (1 for the first run, and outside a job)."""
        return self.meta.attempt

    @property
    def trace_id(self) -> str | None:
        """The trace id ``i`` of the envelope this message came in (None if it had none)."""
        return self.meta.trace_id

    @property
    def session(self) -> ConnectionSession | None:
        """The sending connection's :class:`~channelbus.session.ConnectionSession` (None outside one)."""
        address = self.meta.channel_name
        return ConnectionSession(address) if address else None

    @property
    def user(self) -> Any:
        """The user of the connection the message came from."""
        return self.meta.user

    def payload(self) -> Any:
        """The payload as JSON-ready data (the schema's fields, or the raw value)."""
        data = self.data
        if isinstance(data, BaseModel):
            return data.model_dump(mode="json", exclude_none=self.exclude_none)
        if self._schema_adapter is not None:
            return self._schema_adapter.dump(data)
        return data

    def encode(self, *, i: str | None = None, s: str | None = None, c: str | None = None) -> str:
        """The message as the text of one frame."""
        return encode(self.name, self.payload(), i=i, s=s, c=c)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.data!r}>"


class _Replied:
    """The type of :data:`REPLIED`."""

    def __repr__(self) -> str:
        return "REPLIED"


#: What a handler returns when it sent its terminal reply itself (``topic.subscribe`` does, so that the
#: frames it replays come after the reply): the connection sends nothing more.
REPLIED: Any = _Replied()


def reply_frame(cls: type[Message], trace_id: str, result: Any) -> str:
    """The ``s`` frame answering a request of type ``cls`` with a handler's ``result``.

    ``None`` gives a frame without ``p``; a :class:`Message` is encoded as itself; a pydantic
    model is dumped in JSON mode; anything else is encoded as the payload.
    """
    if result is None:
        return encode(cls.name, i=trace_id, s=states.SUCCESS)
    if isinstance(result, Message):
        return result.encode(i=trace_id, s=states.SUCCESS)
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    return encode(cls.name, result, i=trace_id, s=states.SUCCESS)

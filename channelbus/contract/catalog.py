"""What the contract is made of, read from the code: the message types both ways, what each request's
reply carries, the built-in frames and errors, and the topic kinds.

Every payload is named by a *source* that :mod:`~channelbus.contract.jsonschema` turns into JSON
Schema: :data:`NO_PAYLOAD` (no ``p``), :data:`ANY` (any JSON value), a pydantic model or any type
pydantic can describe (``list[Item]``, ``int | None``), or the adapter of a Django form or DRF
serializer (:mod:`~channelbus.messages.schemas`).

A request's reply is read from the return annotation of its ``handle`` (``async def handle(self) ->
AddResult``): a pydantic model or type, ``None`` (a reply without ``p``), or another
:class:`~channelbus.messages.Message` class (the reply is that message). Without an annotation (or with
``Any``) the reply may be any JSON value. The built-in requests' replies are known here.
"""

from __future__ import annotations

import inspect
import os
import typing
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from ..conf import settings
from ..messages import Message, Registry, incoming, outgoing
from ..messages.control import Ping, Pong
from ..messages.schemas import adapter_for
from ..topics import Topic, topic_kinds
from ..topics.control import (
    TopicLeave,
    TopicLeft,
    TopicList,
    TopicSubscribe,
    TopicSubscribed,
    TopicSubscriptions,
)
from . import builtin

__all__ = [
    "ANY",
    "NO_PAYLOAD",
    "Catalog",
    "ErrorType",
    "Incoming",
    "Outgoing",
    "TopicKind",
    "catalog",
    "default_title",
    "summary_of",
]

#: The source of a frame without ``p``.
NO_PAYLOAD: Any = type(None)
#: The source of a payload that may be any JSON value (``Any``).
ANY: Any = Any

#: The built-in requests, whose handlers are annotated ``Any``: what each replies with.
BUILTIN_REPLIES: dict[type[Message], type[Message]] = {
    Ping: Pong,
    TopicSubscribe: TopicSubscribed,
    TopicLeave: TopicLeft,
    TopicList: TopicSubscriptions,
}


@dataclass(frozen=True)
class Incoming:
    """A type clients may send: its payload and, as a request, its reply."""

    cls: type[Message]
    #: The payload's source (see the module's docstring).
    payload: Any
    #: The reply frame's type ``t``: the request's own, or that of the Message class the handler returns.
    reply_type: str
    #: The reply's source: ``p`` of the ``s`` frame.
    reply: Any
    #: Errors a request of this type may get besides any ``error.*`` its handler raises.
    errors: tuple[str, ...]

    @property
    def name(self) -> str:
        """The wire type ``t``."""
        return self.cls.name


@dataclass(frozen=True)
class Outgoing:
    """A type the server sends: its payload, and the topic kinds it is published to (where known)."""

    cls: type[Message]
    payload: Any
    kinds: tuple[str, ...]

    @property
    def name(self) -> str:
        """The wire type ``t``."""
        return self.cls.name


@dataclass(frozen=True)
class ErrorType:
    """A built-in ``error.*`` frame (``s`` = ``f``), or another frame of the protocol (``s.closing``)."""

    name: str
    summary: str
    payload: Any


@dataclass(frozen=True)
class TopicKind:
    """A topic kind: its name, its key, what is published to it and how it keeps its frames."""

    cls: type[Topic]
    #: What the key is, for a person (None: the kind takes no key).
    key: str | None
    #: The outgoing types published to it, as the kind (or its model binding) says.
    messages: tuple[str, ...]

    @property
    def name(self) -> str:
        """The kind, the part of a topic name before ``:``."""
        return self.cls.kind


@dataclass(frozen=True)
class Catalog:
    """The whole contract of the project, each list sorted by name."""

    incoming: list[Incoming]
    outgoing: list[Outgoing]
    errors: list[ErrorType]
    frames: list[ErrorType]
    topics: list[TopicKind]
    #: The socket's path, ``/ws/``.
    url: str

    def sent(self) -> list[tuple[str, str, Any, bool]]:
        """``(type, summary, payload source, is an error)`` of every frame the server sends on its own:
        the outgoing types, the errors, ``s.closing``."""
        return [
            *((out.name, summary_of(out.cls), out.payload, False) for out in self.outgoing),
            *((err.name, err.summary, err.payload, True) for err in self.errors),
            *((frame.name, frame.summary, frame.payload, False) for frame in self.frames),
        ]


def summary_of(obj: Any) -> str:
    """The first paragraph of ``obj``'s own docstring, on one line ("" without one: a class's docstring
    is its own, never its base's)."""
    doc = obj.__doc__
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()) if doc else ""


def payload_of(cls: type[Message], direction: str) -> Any:
    """The source of a type's ``p``: its schema; without one, none in and any JSON out."""
    schema = cls.schema
    if schema is None:
        return NO_PAYLOAD if direction == "incoming" else ANY
    adapter = adapter_for(schema)
    return schema if adapter is None else adapter


def reply_of(cls: type[Message]) -> tuple[str, Any]:
    """``(reply type, reply source)`` of a request of ``cls``, from its handler's return annotation."""
    builtin_reply = BUILTIN_REPLIES.get(cls)
    if builtin_reply is not None:
        return builtin_reply.name, payload_of(builtin_reply, "outgoing")
    try:
        annotation = typing.get_type_hints(cls.handle).get("return", Any)
    except Exception:  # a name the module cannot resolve: say nothing rather than fail the contract
        annotation = Any
    if isinstance(annotation, type) and issubclass(annotation, Message) and annotation.name:
        return annotation.name, payload_of(annotation, "outgoing")
    return cls.name, annotation


def _errors_of(cls: type[Message]) -> tuple[str, ...]:
    errors = list(builtin.REQUEST_ERRORS)
    if cls.deferred:
        errors.append("error.job")
    if cls is TopicSubscribe:
        errors.append("error.subscribe")
    return tuple(sorted(errors))


def _published_to(kinds: list[TopicKind]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for kind in kinds:
        for name in kind.messages:
            found.setdefault(name, []).append(kind.name)
    return {name: tuple(sorted(k)) for name, k in found.items()}


def _key_of(cls: type[Topic]) -> str | None:
    spec = cls.key_type
    if spec is None:
        # A kind with its own resolve() may read a key anyway (a model binding's collection: its groups).
        return "optional: what the kind's resolve() accepts" if "resolve" in cls.__dict__ else None
    if spec is int:
        return "a whole number"
    if spec == "slug":
        pattern = getattr(cls.key_pattern, "pattern", cls.key_pattern) or "[a-z0-9][a-z0-9_-]{0,63}"
        return f"a slug: {pattern}"
    meta = spec._meta
    return f"the primary key of a {meta.app_label}.{meta.model_name}"


def _topic_kinds() -> list[TopicKind]:
    kinds = []
    for kind in sorted(topic_kinds):
        cls = topic_kinds.get(kind)
        if cls is not None:
            kinds.append(TopicKind(cls, _key_of(cls), tuple(cls.messages)))
    return kinds


def _classes(registry: Registry) -> list[type[Message]]:
    return sorted(registry.classes(), key=lambda c: c.name)


def default_title() -> str:
    """The contract's title: the project's package (the settings module's first part) and "messages"."""
    # override_settings() hides SETTINGS_MODULE (None); the environment still names it.
    module = getattr(django_settings, "SETTINGS_MODULE", None) or os.environ.get("DJANGO_SETTINGS_MODULE")
    module = module or "channelbus"
    return f"{module.split('.')[0]} messages"


def catalog(
    incoming_registry: Registry = incoming, outgoing_registry: Registry = outgoing, url: str | None = None
) -> Catalog:
    """The contract of the project as it is registered now (after Django's start-up imported it).

    ``url`` is the socket's path; by default the ``URL`` setting's.
    """
    kinds = _topic_kinds()
    published = _published_to(kinds)
    return Catalog(
        incoming=[
            Incoming(cls, payload_of(cls, "incoming"), *reply_of(cls), _errors_of(cls))
            for cls in _classes(incoming_registry)
        ],
        outgoing=[
            Outgoing(cls, payload_of(cls, "outgoing"), published.get(cls.name, ()))
            for cls in _classes(outgoing_registry)
        ],
        errors=[ErrorType(name, summary, payload) for name, (summary, payload) in builtin.ERRORS.items()],
        frames=[ErrorType(name, summary, payload) for name, (summary, payload) in builtin.FRAMES.items()],
        topics=kinds,
        url=url if url is not None else "/" + str(settings.URL).lstrip("/"),
    )

"""Topic kinds: who may follow which stream of messages.

A topic name is ``<kind>`` or ``<kind>:<key>`` (``user:42``, ``chat.room:lobby``,
``broadcast``). A :class:`Topic` subclass declares a kind, the type of its
key and who may subscribe::

    @topic_kinds.register
    class ChatRoom(Topic):
        kind = "chat.room"
        key_type = "slug"                 # None, int, "slug", or a model class

        def allowed(self, user):          # sync; runs in a thread, may query the database
            return user.is_authenticated

        def initial_state(self, user):    # what topic.subscribed carries
            return [m.as_dict() for m in self.key.messages.order_by("-id")[:50]]

A model-keyed kind looks the instance up by pk and, by default, allows users
for whom ``user.has_perm(<app>.view_<model>, obj)`` is true, so
object-permission backends (django-guardian, django-rules) work unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from django.db import models

from ..conf import settings
from ..protocol import SubscribeRefused, valid_type_name

__all__ = [
    "BroadcastTopic",
    "Topic",
    "TopicRegistry",
    "UserTopic",
    "topic_kinds",
    "topic_name",
]

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
MAX_TOPIC_LENGTH = 200


class Topic:
    """Base class of topic kinds; an instance is one topic (a kind with a resolved key).

    Class attributes: ``kind`` (dotted name), ``key_type`` (None for a kind without
    key, ``int``, ``"slug"`` for ``[a-z0-9][a-z0-9_-]{0,63}``, or a model class
    looked up by pk), ``permission`` (for model keys: the permission checked
    with ``user.has_perm(permission, obj)``; default ``<app>.view_<model>``),
    ``auto_join`` (True: every connection joins it without asking; the kind
    decides which key with :meth:`auto_key`), ``key_pattern`` (for ``"slug"``
    keys: a regular expression the whole key must match, used instead of the
    default slug pattern, e.g. ``r"[a-z0-9-]{1,32}"``), ``history_size`` and
    ``history_ttl`` (the last ``history_size`` frames published to each topic of
    the kind, each kept ``history_ttl`` seconds, for clients that resubscribe with
    ``since``; None: the settings ``TOPIC_HISTORY_SIZE`` and ``TOPIC_HISTORY_TTL``;
    a size of 0: no history, see ``docs/topics.md``), ``presence`` (False: none; True: the topic
    keeps who follows it, each signed-in user one member whose info is their display name; or a function
    of the user that returns the member's public info, a dict; see ``docs/presence.md``), ``messages``
    (the outgoing types published to topics of the kind, for the contract ``manage.py channelbus_schema``
    writes; nothing checks them at publish time, see ``docs/schema.md``).
    """

    kind: ClassVar[str] = ""
    key_type: ClassVar[Any] = None
    permission: ClassVar[str | None] = None
    auto_join: ClassVar[bool] = False
    key_pattern: ClassVar[str | re.Pattern[str] | None] = None
    history_size: ClassVar[int | None] = None
    history_ttl: ClassVar[float | None] = None
    presence: ClassVar[Any] = False
    messages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, key: Any = None, raw_key: str | None = None) -> None:
        #: The resolved key: None, an int, a slug string or a model instance.
        self.key = key
        self.raw_key = raw_key if raw_key is not None else (None if key is None else _key_text(key))

    @property
    def name(self) -> str:
        """The topic's wire name, ``kind`` or ``kind:key``."""
        return self.kind if self.raw_key is None else f"{self.kind}:{self.raw_key}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @classmethod
    def resolve(cls, raw_key: str | None) -> Topic:
        """Parse and look up ``raw_key``; raises :class:`SubscribeRefused`. Sync (may query the database)."""
        spec = cls.key_type
        if spec is None:
            if raw_key is not None:
                raise SubscribeRefused(
                    f"Topic kind {cls.kind!r} takes no key.", topic=f"{cls.kind}:{raw_key}"
                )
            return cls(None, None)
        name = f"{cls.kind}:{raw_key}"
        if raw_key is None or raw_key == "":
            raise SubscribeRefused(f"Topic kind {cls.kind!r} needs a key: {cls.kind}:<key>.", topic=cls.kind)
        if spec is int:
            if not (raw_key.isascii() and raw_key.isdigit()) or len(raw_key) > 19:
                raise SubscribeRefused(f"The key of {cls.kind!r} must be a number.", topic=name)
            return cls(int(raw_key))  # "007" and "7" name one topic: "7"
        if spec == "slug":
            if cls.key_pattern is not None:
                if not re.fullmatch(cls.key_pattern, raw_key):
                    pattern = getattr(cls.key_pattern, "pattern", cls.key_pattern)
                    raise SubscribeRefused(f"The key of {cls.kind!r} must match {pattern}.", topic=name)
            elif not SLUG_PATTERN.match(raw_key):
                raise SubscribeRefused(
                    f"The key of {cls.kind!r} must be a slug: lower-case letters, digits, '-' and '_'.",
                    topic=name,
                )
            return cls(raw_key, raw_key)
        if isinstance(spec, type) and issubclass(spec, models.Model):
            model: Any = spec
            try:
                obj = model._default_manager.get(pk=model._meta.pk.to_python(raw_key))
            except Exception:  # a malformed pk or no such row: the answer of a refusal, nothing leaks
                raise SubscribeRefused(f"You may not subscribe to {name}.", topic=name) from None
            return cls(obj)  # the name uses the object's own pk, as publish(to=obj) does
        raise TypeError(
            f"{cls.__qualname__}.key_type must be None, int, 'slug' or a model class, not {spec!r}."
        )

    def allowed(self, user: Any) -> bool:
        """Whether ``user`` may subscribe. Sync; runs in a thread.

        Default: signed-in users; for model keys, users with the permission on
        the model (``user.has_perm(permission)``) or on this object
        (``user.has_perm(permission, obj)``, answered by object-permission backends).
        """
        if isinstance(self.key, models.Model):
            permission = self.permission or _view_permission(self.key)
            return bool(user.has_perm(permission) or user.has_perm(permission, self.key))
        return bool(getattr(user, "is_authenticated", False))

    def initial_state(self, user: Any) -> Any:
        """What ``topic.subscribed`` carries in ``state`` for ``user`` (JSON-ready). Sync, in a thread."""
        return None

    @classmethod
    def auto_key(cls, user: Any) -> str | bool | None:
        """For ``auto_join`` kinds: the raw key this user's connections join (``None`` for no key,
        ``False`` to join nothing)."""
        return None


def _view_permission(obj: models.Model) -> str:
    meta = obj._meta
    return f"{meta.app_label}.view_{meta.model_name}"


def _key_text(key: Any) -> str:
    if isinstance(key, models.Model):
        return str(key.pk)
    return str(key)


class TopicRegistry:
    """The topic kinds of the project, by kind name."""

    def __init__(self) -> None:
        self._kinds: dict[str, type[Topic]] = {}
        #: ``(kind, registered class, refused class)`` for each duplicate (system check ``channelbus.E004``).
        self.conflicts: list[tuple[str, type[Topic], type[Topic]]] = []

    def register(self, cls: type[Topic] | None = None, *, replace: bool = False) -> Any:
        """Add a topic kind; usable as a decorator, with or without ``replace=True``."""
        if cls is None:
            return lambda c: self.register(c, replace=replace)
        if not (isinstance(cls, type) and issubclass(cls, Topic)) or not valid_type_name(cls.kind):
            raise TypeError(f"{cls!r} must be a Topic subclass with a lower-case dotted 'kind'.")
        current = self._kinds.get(cls.kind)
        same = current is not None and (current.__module__, current.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if current is not None and not same and not replace:
            self.conflicts.append((cls.kind, current, cls))
            return cls
        self._kinds[cls.kind] = cls
        return cls

    def unregister(self, kind: str) -> type[Topic] | None:
        """Remove a kind; returns it."""
        return self._kinds.pop(kind, None)

    def get(self, kind: str) -> type[Topic] | None:
        """The class of ``kind``, or None."""
        return self._kinds.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds

    def __iter__(self) -> Iterator[str]:
        """The names of the registered kinds."""
        return iter(self._kinds)

    def require_kind(self, name: str, caller: str) -> str:
        """``name``, if its kind is registered; else ``ValueError``: nobody could ever follow it (a typo,
        or a model nobody bound). ``caller`` starts the message (``"publish(to=...)"``)."""
        kind = name.partition(":")[0]
        if kind not in self._kinds:
            raise ValueError(
                f"{caller}: no topic kind {kind!r} is registered, so nobody can follow {name!r}. "
                f"Register a Topic with kind = {kind!r} (or bind the model), or fix the name."
            )
        return name

    def history_of(self, name: str) -> tuple[int, float]:
        """``(size, ttl)`` of the history of topic ``name``: its kind's, else the settings' (size 0: none)."""
        cls = self._kinds.get(name.partition(":")[0])
        size = cls.history_size if cls is not None else None
        ttl = cls.history_ttl if cls is not None else None
        return (
            int(settings.TOPIC_HISTORY_SIZE if size is None else size),
            float(settings.TOPIC_HISTORY_TTL if ttl is None else ttl),
        )

    def presence_of(self, name: str) -> Any:
        """The ``presence`` of topic ``name``'s kind: False (none, or no such kind), True, or a function of
        the user returning the member's info."""
        cls = self._kinds.get(name.partition(":")[0])
        return False if cls is None else cls.presence

    def auto_join_kinds(self) -> list[type[Topic]]:
        """Kinds every connection joins by itself."""
        return [c for c in self._kinds.values() if c.auto_join]

    def parse(self, name: Any) -> tuple[type[Topic], str | None]:
        """Split a topic name into its kind class and raw key; raises :class:`SubscribeRefused`."""
        if not isinstance(name, str) or not 0 < len(name) <= MAX_TOPIC_LENGTH:
            raise SubscribeRefused(
                f"A topic name is a string of 1 to {MAX_TOPIC_LENGTH} characters.", topic=str(name)[:200]
            )
        kind, sep, raw_key = name.partition(":")
        cls = self._kinds.get(kind)
        if cls is None:
            raise SubscribeRefused(f"Unknown topic kind {kind!r}.", topic=name)
        return cls, (raw_key if sep else None)

    def resolve(self, name: Any) -> Topic:
        """Parse ``name`` and look its key up. Sync (may query the database)."""
        cls, raw_key = self.parse(name)
        return cls.resolve(raw_key)


def topic_name(target: Any) -> str:
    """The topic name of ``target``: a :class:`Topic`, a name string, a user (``user:<pk>``) or
    another model instance (``<app_label>.<model>:<pk>``, the topic of a model-keyed kind)."""
    if isinstance(target, Topic):
        return target.name
    if isinstance(target, str):
        return target
    if isinstance(target, models.Model):
        from django.contrib.auth import get_user_model

        if isinstance(target, get_user_model()):
            return f"user:{target.pk}"
        meta = target._meta
        return f"{meta.app_label}.{meta.model_name}:{target.pk}"
    raise TypeError(f"Cannot tell the topic of {target!r}.")


#: The project's topic kinds.
topic_kinds = TopicRegistry()


@topic_kinds.register
class UserTopic(Topic):
    """``user:<pk>``: every connection of a signed-in user joins its own; nobody else may subscribe."""

    kind = "user"
    key_type = int
    auto_join = True

    def allowed(self, user: Any) -> bool:
        """Only the user themself."""
        return bool(getattr(user, "is_authenticated", False)) and user.pk == self.key

    @classmethod
    def auto_key(cls, user: Any) -> str | bool | None:
        """The signed-in user's pk; signed-out connections join no user topic."""
        if getattr(user, "is_authenticated", False):
            return str(user.pk)
        return False


@topic_kinds.register
class BroadcastTopic(Topic):
    """``broadcast``: every connection is in it."""

    kind = "broadcast"
    key_type = None
    auto_join = True

    def allowed(self, user: Any) -> bool:
        """Everyone connected."""
        return True

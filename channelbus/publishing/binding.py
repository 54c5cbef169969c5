"""Model binding: a model's creates, updates and deletes published to topics after commit.

::

    @bind
    class CardBinding(ModelBinding):
        model = Card
        name = "board.card"                 # the outgoing message type
        fields = ["id", "title", "done"]    # or: schema = CardSchema (from_attributes)
        actions = ("create", "update", "delete")

        def collection_allowed(self, user, key):
            return user.is_authenticated

Each change is one ``board.card`` message, ``{"action", "pk", "data"}``
(``data`` is None for a delete), sent to the instance's own topic
(``<app>.<model>:<pk>``, which checks ``view`` permission on the object) and
to its collection topic (``<app>.<model>.all``, or ``<app>.<model>.all:<key>``
when :meth:`ModelBinding.collection_key` groups the collection). Subscribing
to the collection returns its current list in pages (``initial_state``).

Django signals do not see ``QuerySet.update()`` or ``bulk_update()``: call
:func:`notify_changed` after them.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from pydantic import BaseModel

from ..messages import Message, outgoing
from ..protocol import SubscribeRefused
from ..topics import Topic, topic_kinds
from ..topics.kinds import SLUG_PATTERN
from .api import publish
from .recheck import recheck

__all__ = ["ModelBinding", "bind", "notify_changed"]

ACTIONS = ("create", "update", "delete")


class ChangePayload(BaseModel):
    """``{"action", "pk", "data"}`` of a model change."""

    action: str
    pk: Any
    data: dict[str, Any] | None = None


class ModelBinding:
    """Declares how one model's changes are published. Register with :func:`bind`.

    Class attributes: ``model``; ``name`` (the outgoing message type);
    ``fields`` (names sent in ``data``; FKs as their pk) or ``schema`` (a
    pydantic model validated from the instance's attributes); ``actions``
    (which of create/update/delete to send); ``page_size`` (items per page of
    the collection's initial state); ``permission`` (checked on the instance
    topic; default ``<app>.view_<model>``).
    """

    model: ClassVar[type[models.Model]]
    name: ClassVar[str] = ""
    fields: ClassVar[list[str] | None] = None
    schema: ClassVar[type[BaseModel] | None] = None
    actions: ClassVar[tuple[str, ...]] = ACTIONS
    page_size: ClassVar[int] = 100
    permission: ClassVar[str | None] = None

    # Set by bind().
    message_class: ClassVar[type[Message]]
    instance_kind: ClassVar[str]
    collection_kind: ClassVar[str]

    def data(self, obj: models.Model) -> dict[str, Any]:
        """What ``data`` carries for ``obj`` (JSON-ready)."""
        if self.schema is not None:
            return self.schema.model_validate(obj, from_attributes=True).model_dump(mode="json")
        names = self.fields or [f.name for f in self.model._meta.concrete_fields]
        result: dict[str, Any] = {}
        for name in names:
            field = self.model._meta.get_field(name)
            if isinstance(field, models.ForeignObjectRel):  # it used to fail on value_from_object
                raise ImproperlyConfigured(
                    f"{type(self).__name__}.fields: {name!r} is a reverse relation, it has no value to send."
                )
            value = field.value_from_object(obj)
            result[name] = str(value) if isinstance(value, decimal.Decimal) else value
        return result

    def instance_allowed(self, user: Any, obj: models.Model) -> bool:
        """Whether ``user`` may follow ``obj``'s own topic. Default: the view permission on the model or
        on the object (object-permission backends answer the latter)."""
        permission = self.permission or _view_permission(self.model)
        return bool(user.has_perm(permission) or user.has_perm(permission, obj))

    def collection_key(self, obj: models.Model) -> str | None:
        """The key of the collection ``obj`` belongs to (None: one collection for the whole model)."""
        return None

    def collection_allowed(self, user: Any, key: str | None) -> bool:
        """Whether ``user`` may follow the collection (and so see every item of it). Default: the
        model-level view permission."""
        return bool(user.has_perm(self.permission or _view_permission(self.model)))

    def queryset(self, user: Any, key: str | None) -> models.QuerySet[Any]:
        """The items of a collection, in the order clients show them. Default: all, by pk."""
        return self.model._default_manager.order_by("pk")

    def collection_topic(self, obj: models.Model) -> str:
        """The collection topic of ``obj``."""
        key = self.collection_key(obj)
        return self.collection_kind if key is None else f"{self.collection_kind}:{key}"

    def instance_topic(self, obj: models.Model) -> str:
        """The topic of ``obj`` itself."""
        return f"{self.instance_kind}:{obj.pk}"

    def page(self, user: Any, key: str | None, offset: int = 0) -> dict[str, Any]:
        """One page of the collection: ``{"items", "offset", "count", "more"}``."""
        qs = self.queryset(user, key)
        count = qs.count()
        items = [self.data(obj) for obj in qs[offset : offset + self.page_size]]
        return {"items": items, "offset": offset, "count": count, "more": offset + len(items) < count}

    def changed(self, obj: models.Model, action: str, old_collection: str | None = None) -> None:
        """Publish one change of ``obj`` (after the current transaction commits).

        ``old_collection`` is the collection topic ``obj`` belonged to before an update that
        moved it: that collection gets a ``delete`` and the new one a ``create``.
        """
        if action not in self.actions:
            return
        data = None if action == "delete" else self.data(obj)
        instance_topic = self.instance_topic(obj)
        collection_topic = self.collection_topic(obj)
        if action == "update":
            recheck(instance_topic)  # followers who lost access leave before the change goes out
            if old_collection is not None and old_collection != collection_topic:
                publish(self.message_class(action="delete", pk=obj.pk), to=old_collection)
                publish(self.message_class(action="create", pk=obj.pk, data=data), to=collection_topic)
                publish(self.message_class(action="update", pk=obj.pk, data=data), to=instance_topic)
                return
        publish(
            self.message_class(action=action, pk=obj.pk, data=data), to=[instance_topic, collection_topic]
        )

    @classmethod
    def recheck_collection(cls, key: str | None = None) -> None:
        """Ask every follower of the collection ``key`` (None: the whole model's) again whether
        :meth:`collection_allowed` still lets them follow it; those it no longer does leave it.

        Call it when what ``collection_allowed`` reads changes (a membership, say). Changes of users'
        groups and permissions recheck every topic of their connections by themselves, collections
        included (:func:`~channelbus.publishing.recheck.recheck_user`). Runs after the commit, as
        :func:`~channelbus.publishing.recheck.recheck`.
        """
        recheck(cls.collection_kind if key is None else f"{cls.collection_kind}:{key}")

    def groups_collections(self) -> bool:
        """True if this binding splits its collection by :meth:`collection_key`."""
        return type(self).collection_key is not ModelBinding.collection_key


def _view_permission(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.view_{model._meta.model_name}"


_bindings: dict[type[models.Model], ModelBinding] = {}


def bind(cls: type[ModelBinding]) -> type[ModelBinding]:
    """Register a :class:`ModelBinding`: its message type, its two topic kinds and the model's signals."""
    model = cls.model
    if not cls.name:
        raise TypeError(f"{cls.__qualname__}.name must be the outgoing message type, e.g. 'board.card'.")
    binding = cls()
    meta = model._meta
    cls.instance_kind = f"{meta.app_label}.{meta.model_name}"
    cls.collection_kind = f"{cls.instance_kind}.all"
    cls.message_class = type(
        f"{model.__name__}Change",
        (Message,),
        {
            "name": cls.name,
            "schema": ChangePayload,
            "__doc__": f"A change of {meta.verbose_name}.",
            "__module__": cls.__module__,
        },
    )
    outgoing.register(cls.message_class, replace=True)

    class InstanceTopic(Topic):
        kind = cls.instance_kind
        key_type = model
        messages = (cls.name,)  # for the contract (docs/schema.md)

        def allowed(self, user: Any) -> bool:
            return binding.instance_allowed(user, self.key)

    class CollectionTopic(Topic):
        kind = cls.collection_kind
        key_type = None
        messages = (cls.name,)

        @classmethod
        def resolve(cls_, raw_key: str | None) -> Topic:
            if raw_key is not None and not SLUG_PATTERN.match(raw_key):
                raise SubscribeRefused(
                    f"The key of {cls_.kind!r} must be a slug.", topic=f"{cls_.kind}:{raw_key}"
                )
            return cls_(raw_key, raw_key)

        def allowed(self, user: Any) -> bool:
            return binding.collection_allowed(user, self.key)

        def initial_state(self, user: Any) -> Any:
            return binding.page(user, self.key)

    for topic_cls, label in ((InstanceTopic, "Instance"), (CollectionTopic, "Collection")):
        topic_cls.__name__ = topic_cls.__qualname__ = f"{model.__name__}{label}Topic"
        topic_cls.__module__ = cls.__module__
        topic_kinds.register(topic_cls, replace=True)

    pre_save.connect(
        _on_pre_save, sender=model, dispatch_uid=f"channelbus.binding.pre_save.{cls.instance_kind}"
    )
    post_save.connect(_on_save, sender=model, dispatch_uid=f"channelbus.binding.save.{cls.instance_kind}")
    post_delete.connect(
        _on_delete, sender=model, dispatch_uid=f"channelbus.binding.delete.{cls.instance_kind}"
    )
    _bindings[model] = binding
    return cls


def _on_pre_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    """Remember which collection an existing row was in, in case the save moves it."""
    binding = _bindings.get(sender)
    if binding is None or kwargs.get("raw") or instance.pk is None or not binding.groups_collections():
        return
    old = sender._default_manager.filter(pk=instance.pk).first()
    instance.__dict__["_channelbus_old_collection"] = (
        binding.collection_topic(old) if old is not None else None
    )


def _on_save(sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any) -> None:
    binding = _bindings.get(sender)
    if binding is not None and not kwargs.get("raw"):
        old_collection = instance.__dict__.pop("_channelbus_old_collection", None)
        binding.changed(instance, "create" if created else "update", old_collection)


def _on_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    binding = _bindings.get(sender)
    if binding is not None:
        binding.changed(instance, "delete")


def notify_changed(objects: models.QuerySet[Any] | Iterable[models.Model], action: str = "update") -> None:
    """Publish changes signals do not see: ``QuerySet.update()``, ``bulk_update()``, ``bulk_create()``.

    ``objects`` is a queryset (evaluated now, so call it after the update) or
    instances of a bound model.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}.")
    for obj in objects:
        binding = _bindings.get(type(obj))
        if binding is None:
            raise TypeError(f"{type(obj).__name__} has no ModelBinding; register one with @bind.")
        binding.changed(obj, action)

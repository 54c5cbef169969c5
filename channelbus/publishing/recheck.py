"""``recheck()`` and ``arecheck()``: ask again whether each follower of a topic may still follow it.

``recheck_user()`` asks again about every topic a user's connections follow; it runs by itself, after
the commit, when Django's ``m2m_changed`` says that users' groups or permissions changed
(``User.groups``, ``User.user_permissions``, ``Group.permissions``, from either side), and when a group
is deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models.signals import m2m_changed, pre_delete

from ..topics.access import check_access
from ..transport import get_hub
from .sender import in_event_loop, run_async
from .targets import resolve_targets

__all__ = [
    "PERMISSION_CACHES",
    "arecheck",
    "arecheck_user",
    "check_access_again",
    "forget_cached_permissions",
    "recheck",
    "recheck_user",
]

#: The attributes where Django's ``ModelBackend`` keeps a user's permissions once asked (a connection
#: keeps its user object for its whole life).
PERMISSION_CACHES = ("_perm_cache", "_user_perm_cache", "_group_perm_cache")


async def arecheck(target: Any) -> None:
    """Ask again, in every process, whether each follower of a topic may still follow it.

    Those who may not are removed and get ``topic.left`` with the reason.
    ``target`` is anything ``publish(to=...)`` takes that names topics.
    """
    topics, _ = resolve_targets(target)
    hub = get_hub()
    for topic in topics:
        await hub.recheck(topic)


def recheck(target: Any) -> None:
    """Sync :func:`arecheck`, run after the current transaction commits."""
    topics, _ = resolve_targets(target)
    if in_event_loop():
        run_async(arecheck(topics))
    else:
        transaction.on_commit(lambda: run_async(arecheck(topics)), robust=True)


def forget_cached_permissions(user: Any) -> None:
    """Drop the permissions Django's ``ModelBackend`` cached on ``user``, so the next check reads them."""
    for name in PERMISSION_CACHES:
        with contextlib.suppress(AttributeError):
            delattr(user, name)


def check_access_again(topic: str, user: Any) -> None:
    """``check_access(topic, user)`` with the user's permissions read again (sync: it may query).

    What a connection calls when asked to recheck: its user object lives as long as the connection,
    and Django caches permissions on it at the first check.
    """
    forget_cached_permissions(user)
    check_access(topic, user)


def _user_pks(users: Any) -> list[Any]:
    """The pks of ``users`` (a user, a pk, or an iterable of them), each once, in order."""
    single = isinstance(users, str | models.Model) or not isinstance(users, Iterable)
    items = [users] if single else users
    return list(dict.fromkeys(user.pk if isinstance(user, models.Model) else user for user in items))


async def arecheck_user(users: Any) -> None:
    """Ask again, in every process, about every topic the connections of ``users`` follow.

    ``users`` is a user, a user's pk, or an iterable of them. Each connection of each user rechecks
    each of its topics (``Topic.allowed`` with fresh permissions) and leaves with ``topic.left`` those
    it may no longer follow. One channel-layer message per user, through their ``user:<pk>`` topic.
    """
    hub = get_hub()
    for pk in _user_pks(users):
        await hub.recheck_followed(f"user:{pk}")


def recheck_user(users: Any) -> None:
    """Sync :func:`arecheck_user`, run after the current transaction commits."""
    pks = _user_pks(users)
    if not pks:
        return
    if in_event_loop():
        run_async(arecheck_user(pks))
    else:
        transaction.on_commit(lambda: run_async(arecheck_user(pks)), robust=True)


# -- users whose groups or permissions changed -----------------------------------------------------------

#: Where a reverse ``clear()`` keeps, between ``pre_clear`` and ``post_clear``, the users it touches.
_CLEARED = "_channelbus_cleared_users"


def _relation(sender: Any) -> str | None:
    """Which relation the m2m table ``sender`` is: ``groups``, ``user_permissions``,
    ``group_permissions`` (``Group.permissions``), or None for any other table."""
    user_model = get_user_model()
    groups = getattr(user_model, "groups", None)
    user_permissions = getattr(user_model, "user_permissions", None)
    if groups is not None and sender is groups.through:
        return "groups"
    if user_permissions is not None and sender is user_permissions.through:
        return "user_permissions"
    group_permissions = (
        getattr(groups.field.related_model, "permissions", None) if groups is not None else None
    )
    if group_permissions is not None and sender is group_permissions.through:
        return "group_permissions"
    return None


def _users(**lookup: Any) -> list[Any]:
    """The pks of the users that match ``lookup``."""
    return list(get_user_model()._default_manager.filter(**lookup).values_list("pk", flat=True).distinct())


#: For a reverse ``clear()`` (``group.user_set.clear()``, ``permission.user_set.clear()``,
#: ``permission.group_set.clear()``): the users related to the instance, found before the rows go.
_CLEARED_LOOKUP = {
    "groups": "groups",
    "user_permissions": "user_permissions",
    "group_permissions": "groups__permissions",
}


def _affected_users(relation: str, instance: Any, reverse: bool, pk_set: set[Any] | None) -> list[Any]:
    """The users whose permissions an add or remove (or a forward clear) through ``relation`` changes."""
    if not reverse:
        # user.groups.add(...), user.user_permissions.remove(...): the user; group.permissions.add(...):
        # its members.
        return _users(groups=instance.pk) if relation == "group_permissions" else [instance.pk]
    # group.user_set.add(...), permission.user_set.remove(...): the users in pk_set;
    # permission.group_set.add(...): the members of the groups in pk_set.
    return _users(groups__in=list(pk_set or ())) if relation == "group_permissions" else list(pk_set or ())


def _on_m2m_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    """After the commit, recheck the topics of the users whose groups or permissions changed."""
    if action not in ("post_add", "post_remove", "pre_clear", "post_clear"):
        return
    relation = _relation(sender)
    if relation is None:
        return
    if action == "pre_clear":
        if reverse:
            instance.__dict__[_CLEARED] = _users(**{_CLEARED_LOOKUP[relation]: instance.pk})
        return
    if action == "post_clear" and reverse:
        users = instance.__dict__.pop(_CLEARED, [])
    else:
        users = _affected_users(relation, instance, reverse, pk_set)
    recheck_user(users)


def _on_pre_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted group takes its permissions from its members: recheck their topics after the commit."""
    groups = getattr(get_user_model(), "groups", None)
    if groups is not None and sender is groups.field.related_model:
        recheck_user(_users(groups=instance.pk))


m2m_changed.connect(_on_m2m_changed, dispatch_uid="channelbus.recheck.m2m_changed")
pre_delete.connect(_on_pre_delete, dispatch_uid="channelbus.recheck.group_deleted")

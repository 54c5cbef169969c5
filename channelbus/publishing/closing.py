"""Closing every socket of a user: ``close_user()`` and ``aclose_user()``, and the receivers that call
them when the user signs out, is deactivated or deleted, or changes password.

Each connection of a signed-in user follows its ``user:<pk>`` topic (auto-joined), so the hub closes
them all, in every process, with ``Hub.close_topic``: each gets ``s.closing`` with code 4401
(``CloseCode.NOT_SIGNED_IN``) and the reason, then the close. A password change, a deactivation and a
deletion are seen in the user model's ``pre_save``/``post_save``/``post_delete``, and close after the
transaction commits; Django's ``user_logged_out`` closes them too (setting ``CLOSE_ON_LOGOUT``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from ..conf import settings
from ..protocol import CloseCode
from ..topics import topic_name
from ..transport import get_hub
from .sender import in_event_loop, run_async

__all__ = [
    "REASON_DEACTIVATED",
    "REASON_DELETED",
    "REASON_PASSWORD",
    "REASON_SIGNED_OUT",
    "aclose_user",
    "close_user",
]

#: The reasons ``s.closing`` carries (with code 4401).
REASON_SIGNED_OUT = "Signed out."
REASON_PASSWORD = "Password changed."
REASON_DEACTIVATED = "Account deactivated."
REASON_DELETED = "Account deleted."

#: The user fields whose change closes the user's sockets, and the attribute keeping their old values.
_WATCHED = ("password", "is_active")
_OLD = "_channelbus_auth_before_save"


def _user_topic(user: Any) -> str:
    """``user:<pk>`` of a user instance or of a pk (a ``user:<pk>`` name is taken as it is)."""
    if isinstance(user, int) or (isinstance(user, str) and not user.startswith("user:")):
        return f"user:{user}"
    return topic_name(user)


async def aclose_user(user: Any, reason: str, code: int = CloseCode.NOT_SIGNED_IN) -> None:
    """Close every connection of ``user`` (an instance or its pk), in every process, at once.

    Each gets ``s.closing`` with ``code`` (4401 by default) and ``reason``, then the close.
    """
    await get_hub().close_topic(_user_topic(user), code, reason)


def close_user(
    user: Any, reason: str, code: int = CloseCode.NOT_SIGNED_IN, *, using: str | None = None
) -> None:
    """Sync :func:`aclose_user`, run after the current transaction (of database ``using``) commits.

    On the event loop's thread (a sync function called from async code) it runs at once, as a task.
    """
    topic = _user_topic(user)
    if in_event_loop():
        run_async(aclose_user(topic, reason, code))
    else:
        transaction.on_commit(lambda: run_async(aclose_user(topic, reason, code)), using=using, robust=True)


def _watched_fields(model: Any) -> list[str]:
    names = []
    for name in _WATCHED:
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        names.append(name)
    return names


def _remember_auth_fields(
    sender: Any,
    instance: Any,
    raw: bool = False,
    using: str | None = None,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    """``pre_save`` of the user model: keep the stored password and ``is_active`` of a user being updated."""
    instance.__dict__.pop(_OLD, None)
    if raw or instance._state.adding or instance.pk is None:
        return
    fields = _watched_fields(sender)
    if update_fields is not None:
        fields = [name for name in fields if name in update_fields]
    if not fields:
        return
    old = sender._base_manager.using(using).filter(pk=instance.pk).values(*fields).first()
    if old is not None:
        instance.__dict__[_OLD] = old


def _close_if_revoked(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    """``post_save`` of the user model: a deactivation or a new password closes the user's sockets."""
    old = instance.__dict__.pop(_OLD, None)
    if not old:
        return
    if old.get("is_active") and not getattr(instance, "is_active", True):
        close_user(instance, REASON_DEACTIVATED, using=using)
    elif "password" in old and old["password"] != getattr(instance, "password", None):
        close_user(instance, REASON_PASSWORD, using=using)


def _close_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    """``post_delete`` of the user model: a deleted user's sockets close."""
    if instance.pk is not None:
        close_user(instance, REASON_DELETED, using=using)


def _close_on_logout(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """``user_logged_out``: the user's sockets close (every one, not only this session's)."""
    if user is not None and getattr(user, "pk", None) is not None and settings.CLOSE_ON_LOGOUT:
        close_user(user, REASON_SIGNED_OUT)


_UID = "channelbus.publishing.closing"
pre_save.connect(_remember_auth_fields, sender=django_settings.AUTH_USER_MODEL, dispatch_uid=_UID)
post_save.connect(_close_if_revoked, sender=django_settings.AUTH_USER_MODEL, dispatch_uid=_UID)
post_delete.connect(_close_deleted, sender=django_settings.AUTH_USER_MODEL, dispatch_uid=_UID)
user_logged_out.connect(_close_on_logout, dispatch_uid=_UID)

"""Who serves deferred work here: the deferred message types, the default task backend, and one line that
says where their jobs run (``manage.py runbus`` prints it at start-up; system check W007 reads the same).

A project set up without ``TASKS`` gets Django's immediate backend, which runs each job inside the
enqueue: in the server, that is the shared thread of sync handlers, for tests only. Nothing failed, so
nothing said so. :func:`describe` says it, as it says which worker takes the jobs of the other backends
and whether their frames can reach this server's sockets.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ..messages import all_registries

__all__ = ["backend_path", "default_backend", "deferred_types", "describe", "is_immediate", "shared_layer"]


def deferred_types() -> list[str]:
    """The names of the registered message types with ``deferred = True``, sorted, each once."""
    return sorted({cls.name for registry in all_registries() for cls in registry.classes() if cls.deferred})


def default_backend() -> Any:
    """The default task backend (an instance), or None when it cannot be built (Django's own task checks
    say why)."""
    try:
        from django.tasks import task_backends
    except ImportError:  # Django 5.2: the backport's handler, the same API under another class
        from django_tasks import task_backends  # type: ignore[assignment,unused-ignore]
    try:
        return task_backends["default"]
    except Exception:
        return None


def backend_path(backend: Any) -> str:
    """The dotted path of ``backend``'s class, as ``TASKS`` names it."""
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def is_immediate(backend: Any) -> bool:
    """True for the immediate backend (Django's default when ``TASKS`` is not set), of either API."""
    return type(backend).__name__ == "ImmediateBackend" and type(backend).__module__.endswith(
        "backends.immediate"
    )


def shared_layer() -> bool:
    """True when the default channel layer reaches other processes (anything but the in-memory one)."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    backend = str((layers.get("default") or {}).get("BACKEND", ""))
    return bool(backend) and not backend.endswith("InMemoryChannelLayer")


def describe(worker_here: bool) -> tuple[str, bool] | None:
    """The start-up line on deferred work, and whether it warns; None when no type is deferred.

    ``worker_here``: a worker of the default backend runs in this process (runbus's thread).
    """
    names = deferred_types()
    if not names:
        return None
    backend = default_backend()
    if backend is None:
        return None
    path = backend_path(backend)
    types = f"{len(names)} deferred message type{'' if len(names) == 1 else 's'} ({', '.join(names[:3])}"
    types += ", ...)" if len(names) > 3 else ")"
    if is_immediate(backend):
        return (
            f"channelbus: {types} run on the immediate task backend, inside this server's shared sync "
            "thread, one at a time, while every connection waits: for tests only. Set TASKS (system check "
            "channelbus.W007; docs/install.md)",
            True,
        )
    if type(backend).__name__ == "DummyBackend":
        return f"channelbus: {types} are queued on {path}, which never runs them", True
    if worker_here:
        return f"channelbus: {types} run on {path}, by the worker beside the server", False
    line = f"channelbus: {types} run on {path}, by worker processes that runbus does not start"
    if shared_layer():
        return line + " (their frames reach this server through the channel layer)", False
    return (
        line + ": without a shared channel layer their frames never reach this server's sockets "
        "(CHANNEL_LAYERS is in-memory; system check channelbus.W005; docs/deployment.md)",
        True,
    )

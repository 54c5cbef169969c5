"""Message registries, one per direction: :data:`incoming` and :data:`outgoing`.

Any installed app adds its message classes, with the decorator::

    @incoming.register
    class Echo(Message): ...

or by calling ``incoming.register(Echo)``. channelbus imports a ``messages``
module of every installed app at start-up, so that is the place for them.
Registering a *different* class under a name already taken is recorded as a
conflict and reported by the system check ``channelbus.E002``; pass
``replace=True`` to replace on purpose (for example a built-in message), or
call :meth:`Registry.unregister` to remove one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

from .message import Message

__all__ = ["Registry", "all_registries", "incoming", "outgoing"]

M = TypeVar("M", bound=type[Message])


class Registry:
    """A mapping of message type names to :class:`Message` classes for one direction."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._classes: dict[str, type[Message]] = {}
        #: ``(type name, registered class, refused class)`` for each duplicate registration.
        self.conflicts: list[tuple[str, type[Message], type[Message]]] = []
        #: Faster than a method call on the per-frame path.
        self.get: Callable[[str], type[Message] | None] = self._classes.get  # type: ignore[assignment]
        _all_registries.add(self)

    @overload
    def register(self, cls: M, *, replace: bool = ...) -> M: ...
    @overload
    def register(self, cls: None = ..., *, replace: bool = ...) -> Callable[[M], M]: ...

    def register(self, cls: M | None = None, *, replace: bool = False) -> M | Callable[[M], M]:
        """Add a message class; usable as ``@registry.register`` or ``@registry.register(replace=True)``."""
        if cls is None:
            return lambda c: self.register(c, replace=replace)
        if not (isinstance(cls, type) and issubclass(cls, Message)):
            raise TypeError(f"Only Message subclasses can be registered, not {cls!r}.")
        if not cls.name:
            raise TypeError(f"{cls.__qualname__} has no 'name' and cannot be registered.")
        current = self._classes.get(cls.name)
        if current is not None and not replace and not _same_class(current, cls):
            self.conflicts.append((cls.name, current, cls))
            return cls
        self._classes[cls.name] = cls
        return cls

    def unregister(self, name: str) -> type[Message] | None:
        """Remove the class registered under ``name``; returns it (None if there was none)."""
        return self._classes.pop(name, None)

    def get(self, name: str) -> type[Message] | None:  # replaced per instance by dict.get
        """The class registered under ``name``, or None."""
        return self._classes.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def classes(self) -> list[type[Message]]:
        """The registered classes, in registration order."""
        return list(self._classes.values())

    def allows_anonymous(self) -> bool:
        """True if any registered non-control class lets signed-out users send it."""
        return any(c.allow_anonymous and not c.control for c in self._classes.values())

    def __repr__(self) -> str:
        return f"<Registry {self.name}: {len(self)} types>"


def _same_class(a: Any, b: Any) -> bool:
    # A module imported twice (e.g. by autoreload) defines an equal class again.
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


_all_registries: weakref.WeakSet[Registry] = weakref.WeakSet()


def all_registries() -> list[Registry]:
    """Every registry that exists, ``incoming`` and ``outgoing`` first (the system check reads them all)."""
    rest = sorted(
        (r for r in _all_registries if r is not incoming and r is not outgoing), key=lambda r: r.name
    )
    return [incoming, outgoing, *rest]


#: Messages clients may send to the server.
incoming = Registry("incoming")
#: Messages the server sends to clients.
outgoing = Registry("outgoing")

"""A small dict-like store per connection (Channels 1's ``channel_session``), in Django's cache.

Readable and writable from the consumer (``await session.aget(...)``) and from workers
(``session["k"]``), dropped when the connection closes. A handler reaches it as ``self.session``.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

__all__ = ["SESSION_SECONDS", "ConnectionSession"]

#: How long a session outlives its connection's last write (a connection that was never cleaned up).
SESSION_SECONDS = 24 * 3600


class ConnectionSession:
    """A dict-like store for one connection, in Django's cache (``channel_session`` of Channels 1).

    Sync methods (``session["k"]``, ``get``, ``set``, ``delete``, ``clear``) are for workers and
    sync code; use the ``a``-prefixed ones (``await session.aget("k")``) on the event loop. Each
    write reads and writes the whole dict: keep it small, and do not write one key from two
    places at once.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.key = f"channelbus:session:{address}"

    def _load(self) -> dict[str, Any]:
        return dict(cache.get(self.key) or {})

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default``."""
        return self._load().get(name, default)

    def set(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``."""
        data = self._load()
        data[name] = value
        cache.set(self.key, data, SESSION_SECONDS)

    def delete(self, name: str) -> None:
        """Remove ``name`` if present."""
        data = self._load()
        if name in data:
            del data[name]
            cache.set(self.key, data, SESSION_SECONDS)

    def clear(self) -> None:
        """Drop the whole session."""
        cache.delete(self.key)

    def __getitem__(self, name: str) -> Any:
        data = self._load()
        return data[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    async def aget(self, name: str, default: Any = None) -> Any:
        """Async :meth:`get`."""
        return dict(await cache.aget(self.key) or {}).get(name, default)

    async def aset(self, name: str, value: Any) -> None:
        """Async :meth:`set`."""
        data = dict(await cache.aget(self.key) or {})
        data[name] = value
        await cache.aset(self.key, data, SESSION_SECONDS)

    async def adelete(self, name: str) -> None:
        """Async :meth:`delete`."""
        data = dict(await cache.aget(self.key) or {})
        if name in data:
            del data[name]
            await cache.aset(self.key, data, SESSION_SECONDS)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await cache.adelete(self.key)

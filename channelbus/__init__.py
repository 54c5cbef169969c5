"""channelbus: typed real-time messaging for Django over one WebSocket.

The public API, importable from the package root::

    from channelbus import Message, incoming, outgoing, BusError

The names below are its one list. They are imported lazily (on first use), so
``channelbus.protocol`` and ``channelbus.client`` work without Django being
configured; at run time :func:`__getattr__` reads this list from the source.
"""

from __future__ import annotations

import ast
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _moved

__version__ = "0.2.0.dev0"

if TYPE_CHECKING:  # the public API, listed once (read at run time by _public_names())
    from .jobs import trigger as trigger
    from .messages import Message as Message
    from .messages import Metadata as Metadata
    from .messages import Registry as Registry
    from .messages import dom as dom
    from .messages import incoming as incoming
    from .messages import outgoing as outgoing
    from .protocol import BadRequest as BadRequest
    from .protocol import BusError as BusError
    from .protocol import CloseCode as CloseCode
    from .protocol import JobFailed as JobFailed
    from .protocol import NotFound as NotFound
    from .protocol import RateLimited as RateLimited
    from .protocol import ServerError as ServerError
    from .protocol import SubscribeRefused as SubscribeRefused
    from .protocol import TooLarge as TooLarge
    from .protocol import Unauthorized as Unauthorized
    from .protocol import Unavailable as Unavailable
    from .protocol import UnknownMessageType as UnknownMessageType
    from .protocol import ValidationFailed as ValidationFailed
    from .publishing import aclose_user as aclose_user
    from .publishing import apresence as apresence
    from .publishing import apublish as apublish
    from .publishing import arecheck as arecheck
    from .publishing import close_user as close_user
    from .publishing import presence as presence
    from .publishing import publish as publish
    from .publishing import recheck as recheck
    from .publishing.binding import ModelBinding as ModelBinding
    from .publishing.binding import bind as bind
    from .publishing.binding import notify_changed as notify_changed
    from .routing import bus_application as bus_application
    from .routing import websocket_urlpatterns as websocket_urlpatterns
    from .server import BusConsumer as BusConsumer
    from .session import ConnectionSession as ConnectionSession
    from .topics import Topic as Topic
    from .topics import topic_kinds as topic_kinds
    from .topics import topic_token as topic_token


def _public_names() -> dict[str, str]:
    """``{name: module}`` of the ``if TYPE_CHECKING:`` block above, read from this file's source."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    return {
        alias.asname or alias.name: f"{__name__}.{node.module}"
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }


_PUBLIC = _public_names()
__all__ = sorted(_PUBLIC)
_moved.install()


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'channelbus' has no attribute {name!r}")
    owner = import_module(module)
    value = getattr(owner, name) if hasattr(owner, name) else import_module(f"{module}.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

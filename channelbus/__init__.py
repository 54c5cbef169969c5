"""channelbus: typed real-time messaging for Django over one WebSocket.

The public API, importable from the package root::

    from channelbus import Message, incoming, outgoing, BusError

Names are imported lazily, so ``channelbus.protocol`` and ``channelbus.client``
work without Django being configured.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Message": "channelbus.messages",
    "Metadata": "channelbus.messages",
    "Registry": "channelbus.registry",
    "incoming": "channelbus.registry",
    "outgoing": "channelbus.registry",
    "BusConsumer": "channelbus.consumer",
    "publish": "channelbus.publishing",
    "apublish": "channelbus.publishing",
    "recheck": "channelbus.publishing",
    "arecheck": "channelbus.publishing",
    "Topic": "channelbus.topics",
    "topic_kinds": "channelbus.topics",
    "topic_token": "channelbus.topics",
    "bus_application": "channelbus.routing",
    "websocket_urlpatterns": "channelbus.routing",
    "BusError": "channelbus.protocol",
    "BadRequest": "channelbus.protocol",
    "CloseCode": "channelbus.protocol",
    "JobFailed": "channelbus.protocol",
    "NotFound": "channelbus.protocol",
    "RateLimited": "channelbus.protocol",
    "ServerError": "channelbus.protocol",
    "SubscribeRefused": "channelbus.protocol",
    "TooLarge": "channelbus.protocol",
    "Unauthorized": "channelbus.protocol",
    "UnknownMessageType": "channelbus.protocol",
    "ValidationFailed": "channelbus.protocol",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .consumer import BusConsumer
    from .messages import Message, Metadata
    from .protocol import (
        BadRequest,
        BusError,
        CloseCode,
        JobFailed,
        NotFound,
        RateLimited,
        ServerError,
        SubscribeRefused,
        TooLarge,
        Unauthorized,
        UnknownMessageType,
        ValidationFailed,
    )
    from .publishing import apublish, arecheck, publish, recheck
    from .registry import Registry, incoming, outgoing
    from .routing import bus_application, websocket_urlpatterns
    from .topics import Topic, topic_kinds, topic_token


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'channelbus' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

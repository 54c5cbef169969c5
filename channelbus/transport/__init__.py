"""Transport: delivering encoded frames to sockets, in this process and in others.

``hub`` (one :class:`Hub` per event loop: topic membership, fan-out, the channel layer),
``addresses`` (how a connection is named across processes), ``layer_health`` (whether the layer answers
and still holds our groups; :class:`DeliveryFailed`) and ``raw_frames`` (a published
frame framed once and written to every uvicorn socket).
"""

from __future__ import annotations

from .addresses import ADDRESS_SEPARATOR, is_address, make_address, split_address
from .history import Recovery
from .hub import Endpoint, Hub, get_hub, group_name
from .layer_health import DeliveryFailed

__all__ = [
    "ADDRESS_SEPARATOR",
    "DeliveryFailed",
    "Endpoint",
    "Hub",
    "Recovery",
    "get_hub",
    "group_name",
    "is_address",
    "make_address",
    "split_address",
]

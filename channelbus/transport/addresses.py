"""Connection addresses: ``<hub channel>|<connection id>``, the one way to name a connection.

A connection's address (``BusConsumer.channel_name``) names the process that holds it (its hub's
layer channel, or ``local`` when delivery is in-process only) and the connection in it, so a
worker in any process can answer it. This module only makes and reads them.
"""

from __future__ import annotations

__all__ = ["ADDRESS_SEPARATOR", "LOCAL", "is_address", "make_address", "split_address"]

#: Separates the hub channel from the connection id (it never appears in a topic name).
ADDRESS_SEPARATOR = "|"
#: The hub channel of a process without a shared channel layer.
LOCAL = "local"


def make_address(channel: str, connection_id: str) -> str:
    """The address of connection ``connection_id`` held by the hub reading ``channel``."""
    return f"{channel}{ADDRESS_SEPARATOR}{connection_id}"


def split_address(address: str) -> tuple[str, str]:
    """``(hub channel, connection id)`` of an address."""
    channel, _, connection_id = address.rpartition(ADDRESS_SEPARATOR)
    return channel, connection_id


def is_address(target: object) -> bool:
    """True if ``target`` is a connection address rather than a topic name."""
    return isinstance(target, str) and ADDRESS_SEPARATOR in target

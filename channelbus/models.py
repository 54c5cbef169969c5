"""The ``Connection`` model: one row per WebSocket connection, when ``TRACK_CONNECTIONS`` is on.

Rows are written by deferred jobs (``channelbus.connections``), never by the
socket's event loop.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["Connection"]


class Connection(models.Model):
    """A WebSocket connection: who, from where, when it opened, closed and was last active."""

    address = models.CharField(
        max_length=255, unique=True, help_text="The connection's address (publish to it)."
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_activity = models.DateTimeField()
    user_agent = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"{self.address} ({'closed' if self.closed_at else 'open'})"

    @property
    def is_open(self) -> bool:
        """True until the connection's close was recorded."""
        return self.closed_at is None

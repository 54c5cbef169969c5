"""Admin page of tracked connections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from .models import Connection

if TYPE_CHECKING:  # ModelAdmin is generic in django-stubs only: subscripting it at run time fails
    _ConnectionModelAdmin = admin.ModelAdmin[Connection]
else:
    _ConnectionModelAdmin = admin.ModelAdmin


@admin.register(Connection)
class ConnectionAdmin(_ConnectionModelAdmin):
    """Read-only list of connections, newest first."""

    list_display = ("address", "user", "opened_at", "last_activity", "closed_at", "ip")
    list_filter = ("closed_at",)
    search_fields = ("address", "user__username", "ip", "user_agent")
    readonly_fields = ("address", "user", "opened_at", "closed_at", "last_activity", "user_agent", "ip")

"""The URLs of the schema views: ``path("channelbus/", include("channelbus.urls"))`` in the project's.

They answer only when ``CHANNELBUS["SCHEMA_VIEW"]`` is on, and only to staff (:mod:`channelbus.views`).
"""

from __future__ import annotations

from django.urls import path

from .views import asyncapi_json, asyncapi_page

__all__ = ["app_name", "urlpatterns"]

app_name = "channelbus"

urlpatterns = [
    path("asyncapi.json", asyncapi_json, name="asyncapi"),
    path("asyncapi/", asyncapi_page, name="asyncapi-page"),
]

"""The contract served over HTTP, for staff only and only when ``SCHEMA_VIEW`` is on (``docs/schema.md``).

``asyncapi_json`` answers the AsyncAPI 3.0 document, ``asyncapi_page`` a page that shows it to people,
rendered here with no script and nothing from elsewhere (it works offline). With the setting off both
answer 404, as if they did not exist; a visitor who is not a signed-in staff user is sent to
``LOGIN_URL``, to sign in as one (as Django's admin does).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import user_passes_test
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .conf import settings
from .contract import asyncapi_document, catalog
from .contract.catalog import default_title
from .contract.page import page

__all__ = ["asyncapi_json", "asyncapi_page"]


def _is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def _served(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """``view`` behind the setting (404 when off) and for staff only (others go to ``LOGIN_URL``, to sign
    in as staff, as Django's admin does)."""
    staff_only = user_passes_test(_is_staff)(view)

    @wraps(view)
    def served(request: HttpRequest) -> HttpResponse:
        if not settings.SCHEMA_VIEW:
            raise Http404("The schema is not served (CHANNELBUS['SCHEMA_VIEW'] is off).")
        return staff_only(request)

    return served


def _document(request: HttpRequest) -> dict[str, Any]:
    document = asyncapi_document(catalog(), default_title())
    # Served, it can say where the socket is: the host this request came to, with its scheme.
    scheme = "wss" if request.is_secure() else "ws"
    document["servers"] = {"this": {"host": request.get_host(), "protocol": scheme}}
    return document


@require_GET
@_served
def asyncapi_json(request: HttpRequest) -> HttpResponse:
    """The AsyncAPI 3.0 document, as JSON."""
    return JsonResponse(_document(request), json_dumps_params={"indent": 2})


@require_GET
@_served
def asyncapi_page(request: HttpRequest) -> HttpResponse:
    """The document as a page for people."""
    shown = page(catalog(), default_title(), "1")
    return render(request, "channelbus/asyncapi.html", {"page": shown, "host": request.get_host()})

"""The demo page: signs every visitor in as a fresh guest user, then serves the page.

Guests are made for visitors without a session, at most ``DEMO_GUESTS_PER_MINUTE`` per client address
and minute (in Django's cache): a client that loops on ``GET /`` without keeping its cookie gets 429.
"""

import secrets
import time

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .forms import ProfileForm

#: The window of ``DEMO_GUESTS_PER_MINUTE``, in seconds.
GUEST_WINDOW = 60


def guest_allowed(address: str) -> int:
    """0 if one more guest may be made for ``address`` now, else the seconds until the next window."""
    limit = getattr(settings, "DEMO_GUESTS_PER_MINUTE", 10)
    now = time.time()
    window = int(now // GUEST_WINDOW)
    key = f"demo:guests:{address}:{window}"
    cache.add(key, 0, GUEST_WINDOW * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, count := 1, GUEST_WINDOW * 2)
    if count <= limit:
        return 0
    return max(1, int((window + 1) * GUEST_WINDOW - now))


def index(request: HttpRequest) -> HttpResponse:
    """Sign the visitor in as a new guest (session cookie) if needed and render the page."""
    if not request.user.is_authenticated:
        retry_after = guest_allowed(request.META.get("REMOTE_ADDR") or "unknown")
        if retry_after:
            context = {"limit": getattr(settings, "DEMO_GUESTS_PER_MINUTE", 10), "retry_after": retry_after}
            response = render(request, "demoapp/too_many_guests.html", context, status=429)
            response["Retry-After"] = str(retry_after)
            return response
        user = get_user_model().objects.create_user(username=f"guest-{secrets.token_hex(6)}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    context = {"username": request.user.get_username(), "profile_form": ProfileForm()}
    return render(request, "demoapp/index.html", context)

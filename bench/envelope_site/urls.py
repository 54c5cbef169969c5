"""``/``: sign the visitor in as a new user (a session cookie), as the channelbus demo's page does."""

import secrets

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse
from django.urls import path


def index(request: HttpRequest) -> HttpResponse:
    """Create a user and log the visitor in, unless already signed in."""
    if not request.user.is_authenticated:
        user = get_user_model().objects.create_user(username=f"bench-{secrets.token_hex(6)}")
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("", index)]

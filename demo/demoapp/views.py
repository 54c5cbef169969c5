"""The demo page: signs every visitor in as a fresh guest user, then serves the page."""

import secrets

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .forms import ProfileForm


def index(request: HttpRequest) -> HttpResponse:
    """Sign the visitor in as a new guest (session cookie) if needed and render the page."""
    if not request.user.is_authenticated:
        user = get_user_model().objects.create_user(username=f"guest-{secrets.token_hex(6)}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    context = {"username": request.user.get_username(), "profile_form": ProfileForm()}
    return render(request, "demoapp/index.html", context)

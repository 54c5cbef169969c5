"""URLs of the demo: the page, and the message contract for staff (sign in at /login/ as a superuser made
with ``manage.py createsuperuser``; docs/schema.md)."""

from demoapp.views import index
from django.contrib.auth.views import LoginView
from django.urls import include, path

urlpatterns = [
    path("", index, name="index"),
    path("channelbus/", include("channelbus.urls")),  # /channelbus/asyncapi/ and asyncapi.json
    path("login/", LoginView.as_view(template_name="demoapp/login.html"), name="login"),
]

"""ASGI entry point of the demo: Django for HTTP (static files too, with DEBUG), channelbus at /ws/."""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
django_asgi_app = get_asgi_application()
if settings.DEBUG:  # as runserver does: the page's /static/ files, channelbus.js among them
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channelbus.routing import bus_application  # noqa: E402

application = bus_application(django_asgi_app)

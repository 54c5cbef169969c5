"""ASGI entry point of the demo: Django for HTTP, channelbus at /ws/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
django_asgi_app = get_asgi_application()

from channelbus.routing import bus_application  # noqa: E402

application = bus_application(django_asgi_app)

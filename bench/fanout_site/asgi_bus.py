"""channelbus: ``bus_application(get_asgi_application())`` at ``/ws/``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fanout_site.settings")
django_asgi_app = get_asgi_application()

from channelbus.routing import bus_application  # noqa: E402

application = bus_application(django_asgi_app)

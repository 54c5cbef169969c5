"""The demo app."""

from django.apps import AppConfig


class DemoappConfig(AppConfig):
    """Demo message types and the page."""

    name = "demoapp"

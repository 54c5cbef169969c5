"""Imported by channelbus at start-up (each app's ``topics``): registers the presence test kinds."""

from tests import presence_kinds  # noqa: F401 - registers them

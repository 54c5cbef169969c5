"""An app that brings the presence test kinds (``tests.presence_kinds``) into the demo, for system tests
(``DEMO_EXTRA_APPS=tests.presenceapp``)."""

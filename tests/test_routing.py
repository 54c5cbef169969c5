"""Routing helpers (channelbus/routing.py): websocket_urlpatterns at the URL setting, and bus_application,
the project's ASGI application (Django for HTTP; origin check, session and token auth, then the consumer
for WebSockets), with extra routes and a consumer class of the project's own."""

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.test import override_settings

from channelbus import signals
from channelbus.routing import bus_application, websocket_urlpatterns
from channelbus.server import BusConsumer, BusOriginValidator, TokenAuthMiddleware
from channelbus.server.auth import connection_token
from channelbus.testing import BusTestClient, ConnectionRefused

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"host", b"testserver"), (b"origin", b"http://testserver")]  # the page's own origin


class ProjectConsumer(BusConsumer):
    """A project's own consumer class."""


class ExtraConsumer(AsyncWebsocketConsumer):
    """A route of the project's, beside channelbus's: says hello and stays open."""

    async def connect(self):
        await self.accept()
        await self.send(text_data='{"t":"extra.hello"}')


def inner_of(app, cls):
    """The first application of class ``cls`` in the middleware chain of ``app``."""
    while not isinstance(app, cls):
        app = getattr(app, "application", None) or app.inner
    return app


def routes_of(application):
    return inner_of(application.application_mapping["websocket"], URLRouter).routes


def test_websocket_urlpatterns_follow_the_url_setting():
    [route] = websocket_urlpatterns()
    assert str(route.pattern) == "ws/"
    assert route.callback.consumer_class is BusConsumer
    with override_settings(CHANNELBUS={"URL": "bus/v1/"}):
        assert str(websocket_urlpatterns()[0].pattern) == "bus/v1/"
    assert str(websocket_urlpatterns("live/")[0].pattern) == "live/"
    assert websocket_urlpatterns(consumer=ProjectConsumer)[0].callback.consumer_class is ProjectConsumer


def test_bus_application_maps_http_and_websocket():
    async def http_app(scope, receive, send):
        raise AssertionError("not called")

    mapping = bus_application(http_app).application_mapping
    assert set(mapping) == {"http", "websocket"}
    assert mapping["http"] is http_app
    assert set(bus_application().application_mapping) == {"websocket"}
    websocket = mapping["websocket"]
    assert isinstance(websocket, BusOriginValidator)
    assert isinstance(inner_of(websocket, TokenAuthMiddleware), TokenAuthMiddleware)


def test_extra_routes_come_after_channelbus_route():
    from django.urls import path

    extra = path("extra/", ExtraConsumer.as_asgi())
    routes = routes_of(bus_application(extra_websocket_routes=[extra]))
    assert [str(r.pattern) for r in routes] == ["ws/", "extra/"]
    assert routes[1] is extra


async def test_a_connection_through_the_whole_stack(user):
    application = bus_application()
    token = connection_token(user)
    client = BusTestClient(application, path="/ws/", query_string=f"token={token}", headers=ORIGIN)
    async with client:
        assert await client.request("test.count_users") == {"count": 1, "username": "alice"}
    foreign = BusTestClient(application, path="/ws/", headers=[(b"origin", b"http://evil.example")])
    with pytest.raises(ConnectionRefused) as exc:
        await foreign.connect()
    assert exc.value.code == 4403


async def test_the_url_setting_and_a_custom_consumer_serve_connections(user):
    opened = []

    async def record(sender, connection, **kwargs):
        opened.append(sender)

    with override_settings(CHANNELBUS={"URL": "bus/"}):
        application = bus_application(consumer=ProjectConsumer)
    signals.connection_opened.connect(record)
    try:
        client = BusTestClient(
            application, path="/bus/", query_string=f"token={connection_token(user)}", headers=ORIGIN
        )
        async with client:
            assert (await client.request_frame("s.ping"))["t"] == "s.pong"
    finally:
        signals.connection_opened.disconnect(record)
    assert opened == [ProjectConsumer]


async def test_an_extra_route_is_served():
    from django.urls import path

    application = bus_application(extra_websocket_routes=[path("extra/", ExtraConsumer.as_asgi())])
    async with BusTestClient(application, path="/extra/", headers=ORIGIN) as client:
        assert await client.receive() == {"t": "extra.hello"}

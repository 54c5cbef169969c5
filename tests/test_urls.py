"""``channelbus.urls``: the schema views under the prefix the project includes them at."""

from django.urls import resolve, reverse

from channelbus.views import asyncapi_json, asyncapi_page


def test_the_named_urls_under_the_projects_prefix():
    # The demo's urls (the tests' ROOT_URLCONF) include them at channelbus/.
    assert reverse("channelbus:asyncapi") == "/channelbus/asyncapi.json"
    assert reverse("channelbus:asyncapi-page") == "/channelbus/asyncapi/"
    assert resolve("/channelbus/asyncapi.json").func is asyncapi_json
    assert resolve("/channelbus/asyncapi/").func is asyncapi_page

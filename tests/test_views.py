"""The schema views: off by default (404), staff only when on, the document as JSON and the page offline."""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

pytestmark = pytest.mark.django_db

JSON_URL = "/channelbus/asyncapi.json"  # the demo's urls, which the tests use, include channelbus.urls
PAGE_URL = "/channelbus/asyncapi/"
ON = override_settings(CHANNELBUS={"SCHEMA_VIEW": True})


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user(username="admin", password="x", is_staff=True)
    client.force_login(user)
    return user


def test_off_by_default_even_for_staff(client, staff):
    assert client.get(JSON_URL).status_code == 404
    assert client.get(PAGE_URL).status_code == 404


@ON
@pytest.mark.parametrize("url", [JSON_URL, PAGE_URL])
def test_others_are_sent_to_sign_in_as_staff(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"
    client.force_login(get_user_model().objects.create_user(username="guest"))
    assert client.get(url)["Location"] == f"/accounts/login/?next={url}"  # signed in, but not staff
    inactive = get_user_model().objects.create_user(username="gone", is_staff=True, is_active=False)
    client.force_login(inactive)
    assert client.get(url).status_code == 302


@ON
def test_the_document_says_where_the_socket_is(client, staff):
    response = client.get(JSON_URL, HTTP_HOST="testserver")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = json.loads(response.content)
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"] == {"this": {"host": "testserver", "protocol": "ws"}}
    assert "receive-demo.add" in document["operations"]
    assert client.post(JSON_URL).status_code == 405


@ON
def test_the_page_shows_the_contract_with_nothing_from_elsewhere(client, staff):
    response = client.get(PAGE_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>tests messages</h1>" in html
    assert 'id="in-demo.add"' in html
    assert '<a href="#type-AddSchema">AddSchema</a>' in html
    assert 'id="type-AddSchema"' in html
    assert "AddResult" in html
    assert 'id="in-demo.profile"' in html
    assert "ProfileForm" in html
    assert 'id="topic-chat.room:&lt;key&gt;"' in html
    # Offline: no script, and no URL that leaves the page's own server.
    assert "<script" not in html
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", html) == []

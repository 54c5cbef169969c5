"""``manage.py channelbus_schema``: the project's contract in three formats, to stdout or a file."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def run(*args):
    out = StringIO()
    call_command("channelbus_schema", *args, stdout=out)
    return out.getvalue()


def test_asyncapi_by_default_from_the_projects_registries():
    document = json.loads(run())
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {
        "title": "tests messages",
        "version": "1",
        "description": document["info"]["description"],
    }
    operations = document["operations"]
    # The project's types (the demo's, the test apps') and the built-in ones.
    for name in (
        "receive-demo.add",
        "receive-test.slow",
        "receive-topic.subscribe",
        "send-chat.message",
        "send-error.job",
    ):
        assert name in operations
    assert document["channels"]["bus"]["address"] == "/ws/"


def test_title_and_version():
    document = json.loads(run("--title", "Shop", "--api-version", "2.1"))
    assert (document["info"]["title"], document["info"]["version"]) == ("Shop", "2.1")


def test_jsonschema_and_typescript_to_a_file(tmp_path):
    target = tmp_path / "schema.json"
    assert run("--format", "jsonschema", "-o", str(target)) == ""
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$defs"]["in.demo.profile"]["$ref"] == "#/$defs/ProfileForm"  # the demo's Django form
    text = run("--format", "typescript")
    assert '"demo.add": { payload: AddSchema; reply: AddResult };' in text


def test_an_unknown_format_is_refused():
    with pytest.raises(CommandError, match="invalid choice: 'yaml'"):
        run("--format", "yaml")

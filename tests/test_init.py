"""The package root (channelbus/__init__.py): the public names, listed once, imported lazily."""

import ast
import importlib
import importlib.metadata
import inspect
import sys
import types
from pathlib import Path

import pytest

import channelbus


def type_checking_block() -> dict[str, str]:
    """``{public name: module}`` of the ``if TYPE_CHECKING:`` block, read here from the source."""
    tree = ast.parse(Path(channelbus.__file__).read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    public = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.unparse(node)
        assert node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
            public[alias.name] = f"channelbus.{node.module}"
    return public


PUBLIC = type_checking_block()


def test_all_is_the_type_checking_block():
    assert channelbus.__all__ == sorted(PUBLIC)
    assert len(channelbus.__all__) == len(set(channelbus.__all__))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_is_the_object_of_its_module(name):
    module = importlib.import_module(PUBLIC[name])
    value = getattr(channelbus, name)
    expected = getattr(module, name, None)
    if expected is None:  # a submodule named in the block (``dom``)
        expected = importlib.import_module(f"{PUBLIC[name]}.{name}")
    assert value is expected


def test_from_channelbus_import_publish_is_the_function():
    from channelbus import publish
    from channelbus.publishing.api import publish as api_publish

    assert publish is api_publish
    assert inspect.isfunction(publish)
    assert not isinstance(publish, types.ModuleType)


def test_trigger_is_the_function_not_its_module():
    from channelbus import trigger

    assert inspect.isfunction(trigger)
    assert trigger is sys.modules["channelbus.jobs.trigger"].trigger


def test_dom_is_the_messages_dom_module():
    from channelbus import dom

    assert isinstance(dom, types.ModuleType)
    assert dom is sys.modules["channelbus.messages.dom"]
    assert dom.__name__ == "channelbus.messages.dom"


def test_the_version_is_the_installed_distributions():
    assert channelbus.__version__ == importlib.metadata.version("channelbus")


def test_an_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match=r"^module 'channelbus' has no attribute 'no_such_name'$"):
        channelbus.no_such_name  # noqa: B018
    with pytest.raises(ImportError, match="no_such_name"):
        exec("from channelbus import no_such_name", {})
    assert not hasattr(channelbus, "_no_such_private")


def test_dir_lists_the_public_names():
    assert set(channelbus.__all__) <= set(dir(channelbus))


def test_star_import_gives_the_public_names():
    namespace: dict = {}
    exec("from channelbus import *", namespace)
    assert {n for n in namespace if not n.startswith("__")} == set(PUBLIC)
    assert namespace["Message"] is channelbus.Message

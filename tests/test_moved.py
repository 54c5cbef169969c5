"""Old module paths (channelbus._moved): every 0.1 path still imports and gives the new objects."""

import importlib
import sys

import pytest
from django.utils.module_loading import import_string

import channelbus
from channelbus import _moved
from channelbus._moved import MOVED


@pytest.fixture(autouse=True)
def restore_old_paths():
    """Importing an old path adds it to sys.modules and to the package: undo both after each test."""
    modules = {name: sys.modules.get(name) for name in MOVED}
    attributes = {name.rpartition(".")[2]: channelbus.__dict__.get(name.rpartition(".")[2]) for name in MOVED}
    yield
    for name, module in modules.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    for attribute, value in attributes.items():
        if value is None:
            channelbus.__dict__.pop(attribute, None)
        else:
            channelbus.__dict__[attribute] = value


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_path_gives_the_objects_of_the_new_paths(old):
    module = importlib.import_module(old)
    targets = [importlib.import_module(new) for new in MOVED[old]]
    if len(targets) == 1:  # moved whole: the old path is the new module itself
        assert module is targets[0]
        assert sys.modules[old] is targets[0]
        return
    assert module.__name__ == old
    names = module.__all__
    assert names, f"{old} exports nothing"
    assert names == sorted({n for t in targets for n in getattr(t, "__all__", ())})
    for name in names:
        owner = next(t for t in targets if hasattr(t, name))
        assert getattr(module, name) is getattr(owner, name), f"{old}.{name}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_from_import_of_an_old_path(old):
    namespace: dict = {}
    exec(f"from {old} import *", namespace)
    module = importlib.import_module(old)
    assert {n: namespace[n] for n in module.__all__} == {n: getattr(module, n) for n in module.__all__}


def test_the_task_path_of_queued_0_1_jobs_is_the_task():
    from channelbus.jobs.deferred import run_deferred

    task = import_string("channelbus.tasks.run_deferred")
    assert task is run_deferred
    assert task.module_path == "channelbus.jobs.deferred.run_deferred"


def test_the_documented_0_1_imports():
    from channelbus.binding import ModelBinding, bind
    from channelbus.fanout import get_hub, make_address
    from channelbus.tasks import JobTimeout, trigger
    from channelbus.topic_messages import check_access

    from channelbus.jobs import trigger as new_trigger
    from channelbus.jobs.timeouts import JobTimeout as NewJobTimeout
    from channelbus.publishing.binding import ModelBinding as NewModelBinding
    from channelbus.publishing.binding import bind as new_bind
    from channelbus.topics.access import check_access as new_check_access
    from channelbus.transport import get_hub as new_get_hub
    from channelbus.transport import make_address as new_make_address

    assert trigger is new_trigger
    assert callable(trigger)
    assert JobTimeout is NewJobTimeout
    assert (ModelBinding, bind) == (NewModelBinding, new_bind)
    assert (get_hub, make_address) == (new_get_hub, new_make_address)
    assert check_access is new_check_access


def test_an_unknown_name_raises_attribute_error_naming_the_new_module():
    module = importlib.import_module("channelbus.tasks")
    with pytest.raises(AttributeError) as exc:
        module.no_such_name  # noqa: B018
    assert str(exc.value) == "module 'channelbus.tasks' (moved to channelbus.jobs) has no 'no_such_name'"
    with pytest.raises(ImportError, match="no_such_name"):
        exec("from channelbus.fanout import no_such_name", {})
    with pytest.raises(AttributeError, match=r"moved to channelbus\.transport\.hub"):
        importlib.import_module("channelbus.fanout").no_such_name  # noqa: B018


def test_only_the_old_paths_are_found():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("channelbus.no_such_module")
    assert _moved._finder.find_spec("channelbus.protocol", None) is None
    assert _moved._finder.find_spec("channelbus.tasks", None) is not None


def test_install_is_done_once():
    _moved.install()
    _moved.install()
    assert sys.meta_path.count(_moved._finder) == 1


def test_importing_the_old_dom_path_keeps_the_public_dom():
    import channelbus.messages.dom as new_dom

    importlib.import_module("channelbus.dom")
    from channelbus import dom

    assert dom is new_dom

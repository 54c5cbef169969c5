"""Module paths of channelbus 0.1, still importable: each is the module it moved to.

channelbus 0.1 had 25 flat modules; 0.2 groups them by layer. Code that imports an old path
(``from channelbus.tasks import trigger``), and jobs queued by 0.1 (their task path is
``channelbus.tasks.run_deferred``), get the new module under the old name. New code should
import from the package root or the new paths (``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old module path -> the modules its names moved to, searched in this order.
MOVED: dict[str, tuple[str, ...]] = {
    "channelbus.auth": ("channelbus.server.auth",),
    "channelbus.binding": ("channelbus.publishing.binding",),
    "channelbus.builtins": ("channelbus.messages.control",),
    "channelbus.connections": ("channelbus.jobs.tracking", "channelbus.session"),
    "channelbus.consumer": ("channelbus.server.consumer",),
    "channelbus.dom": ("channelbus.messages.dom",),
    "channelbus.fanout": ("channelbus.transport.hub", "channelbus.transport.addresses"),
    "channelbus.fastpath": ("channelbus.transport.raw_frames",),
    "channelbus.registry": ("channelbus.messages.registry",),
    "channelbus.tasks": ("channelbus.jobs", "channelbus.jobs.deferred", "channelbus.jobs.timeouts"),
    "channelbus.timeouts": ("channelbus.jobs.timeouts",),
    "channelbus.topic_messages": ("channelbus.topics.control", "channelbus.topics.access"),
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path of :data:`MOVED` and loads a module that looks its names up where they went."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec for an old path; None for every other module."""
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """A module whose attributes are those of the new modules (the same objects)."""
        module = ModuleType(
            spec.name, f"channelbus 0.1's {spec.name}: moved to {', '.join(MOVED[spec.name])}."
        )
        targets = [importlib.import_module(name) for name in MOVED[spec.name]]

        def lookup(name: str) -> object:
            for target in targets:
                if hasattr(target, name):
                    return getattr(target, name)
            raise AttributeError(f"module {spec.name!r} (moved to {MOVED[spec.name][0]}) has no {name!r}")

        module.__getattr__ = lookup  # type: ignore[method-assign]
        module.__dict__["__all__"] = sorted({n for t in targets for n in getattr(t, "__all__", ())})
        return module

    def exec_module(self, module: ModuleType) -> None:
        """An old path that moved whole (one new module) is that module itself, the same object; the
        import system takes what ``sys.modules`` holds once this returns."""
        targets = MOVED[module.__name__]
        if len(targets) == 1:
            sys.modules[module.__name__] = importlib.import_module(targets[0])


_finder = _MovedModules()


def install() -> None:
    """Make the old paths importable (``channelbus/__init__.py`` does it once)."""
    if _finder not in sys.meta_path:
        sys.meta_path.append(_finder)

"""The import direction of ``channelbus/``, checked on its source: the proof of ``docs/architecture.md``.

Every module belongs to one layer; it may import from its own layer and the layers below, never
from a layer above, at module level, inside a function or under ``TYPE_CHECKING`` alike. And no
import cycle exists between modules, in any layer.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "channelbus"

#: Lowest first. A module belongs to the first entry that is its name or a package above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("protocol", ("channelbus.protocol",)),
    (
        "core",
        (
            "channelbus.conf",
            "channelbus.signals",
            "channelbus.background",
            "channelbus.session",
            "channelbus.models",
        ),
    ),
    ("messages", ("channelbus.messages",)),
    ("topics", ("channelbus.topics",)),
    ("transport", ("channelbus.transport",)),
    ("publishing", ("channelbus.publishing",)),
    ("jobs", ("channelbus.jobs",)),
    ("server", ("channelbus.server",)),
    ("contract", ("channelbus.contract",)),
    (
        "integration",
        (
            "channelbus.routing",
            "channelbus.urls",
            "channelbus.views",
            "channelbus.testing",
            "channelbus.checks",
            "channelbus.apps",
            "channelbus.admin",
            "channelbus.templatetags",
            "channelbus.management",
            "channelbus.migrations",
            "channelbus._moved",
            "channelbus",
        ),
    ),
]
#: Beside the layers: the Python client, which runs without Django, uses the protocol only.
BESIDE = {"channelbus.client": {"protocol"}}
#: What the protocol layer may import besides itself: no Django, no I/O.
PROTOCOL_MAY_IMPORT = {"__future__", "re", "typing", "orjson"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    if module in BESIDE:
        return module
    for layer, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "channelbus"):
            return layer
    if module == "channelbus":
        return "integration"
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS here and to docs/architecture.md")


RANK = {layer: n for n, (layer, _) in enumerate(LAYERS)}


def imports_of(module: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every import in ``module``, relative ones resolved."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # "from . import ordering" imports a submodule
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else target))
    return found


def internal_edges() -> dict[str, set[str]]:
    return {
        module: {target for _, target in imports_of(module) if target in MODULES and target != module}
        for module in MODULES
    }


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    layer = layer_of(module)
    for line, target in imports_of(module):
        if target not in MODULES:
            continue
        target_layer = layer_of(target)
        if module in BESIDE:
            assert target_layer in BESIDE[module], f"{module}:{line} imports {target} ({target_layer})"
            continue
        if target_layer in BESIDE:  # only the integration layer (testing.py) uses the client
            assert layer == "integration", f"{module}:{line} imports {target}, which is beside the layers"
            continue
        assert RANK[target_layer] <= RANK[layer], (
            f"{module}:{line} ({layer}) imports {target}, a layer above ({target_layer}). Move the code "
            "down, or pass what it needs in (a Protocol type, an argument)."
        )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) == "protocol"))
def test_the_protocol_imports_no_django_and_no_io(module):
    stdlib = {"__future__", "typing", "re"}
    for line, target in imports_of(module):
        top = target.split(".")[0]
        if target in MODULES:
            continue
        assert top in PROTOCOL_MAY_IMPORT | stdlib, f"{module}:{line} imports {target}"


def test_no_import_cycles():
    edges = internal_edges()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_the_check_sees_function_level_and_type_checking_imports(tmp_path, monkeypatch):
    """The walker finds imports inside functions and under TYPE_CHECKING, not only at the top."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..server import BusConsumer\n"
        "def f():\n    from ..jobs import deferred\n"
    )
    fake = PACKAGE / "messages" / "fake_for_test.py"
    monkeypatch.setitem(MODULES, "channelbus.messages.fake_for_test", fake)
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    targets = {t for _, t in imports_of("channelbus.messages.fake_for_test")}
    assert {"channelbus.server", "channelbus.jobs.deferred"} <= targets
    with pytest.raises(AssertionError, match="a layer above"):
        test_imports_point_down("channelbus.messages.fake_for_test")


def test_the_client_runs_without_django():
    """``channelbus.client`` imports, in a fresh interpreter, without Django being imported."""
    import subprocess

    code = "import sys, channelbus.client; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

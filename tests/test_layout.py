"""The tests tree follows the package: ``channelbus/a/b.py`` is tested in ``tests/a/test_b.py``.

A module without its test module fails here, unless it is listed in :data:`WITHOUT_TEST_MODULE`
with the reason; a listed module that has one now fails too, so the list only shrinks. Tests that
need several processes or the demo as a whole live in ``tests/system/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "channelbus"
TESTS = ROOT / "tests"

#: Modules with no test module of their own, and why.
WITHOUT_TEST_MODULE: dict[str, str] = {
    "channelbus/protocol/limits.py": "constants only; tested through tests/protocol/test_envelope.py",
    "channelbus/protocol/states.py": "constants only; tested through tests/protocol/test_envelope.py",
    "channelbus/migrations/0001_initial.py": "generated; `makemigrations --check` is in tests/test_checks.py",
}


def expected_test_module(source: Path) -> Path:
    """Where the tests of ``source`` live."""
    relative = source.relative_to(PACKAGE)
    stem = "init" if relative.name == "__init__.py" else relative.stem.lstrip("_")
    return TESTS / relative.parent / f"test_{stem}.py"


def is_reexport_only(source: Path) -> bool:
    """True for a package ``__init__.py`` that only imports and lists names (nothing to test)."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    allowed = (ast.Import, ast.ImportFrom, ast.Expr, ast.Assign, ast.AnnAssign)
    return all(isinstance(node, allowed) for node in tree.body) and not any(
        isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant) for node in tree.body
    )


SOURCES = sorted(
    p
    for p in PACKAGE.rglob("*.py")
    if not (p.name == "__init__.py" and p.parent != PACKAGE and is_reexport_only(p))
)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_its_test_module(source):
    name = str(source.relative_to(ROOT))
    expected = expected_test_module(source)
    if name in WITHOUT_TEST_MODULE:
        assert not expected.exists(), f"{name} has {expected.relative_to(ROOT)} now: drop it from the list"
        return
    assert expected.exists(), f"{name} has no test module: write {expected.relative_to(ROOT)}"


def test_the_list_names_only_modules_that_exist():
    assert [m for m in WITHOUT_TEST_MODULE if not (ROOT / m).exists()] == []


def test_test_modules_name_a_module_or_live_in_system():
    """A test module outside ``tests/system`` is named after the module it tests, so none is orphaned."""
    sources = {expected_test_module(p) for p in PACKAGE.rglob("*.py")}
    extra = {TESTS / "test_layers.py", TESTS / "test_layout.py"}
    orphans = [
        str(t.relative_to(ROOT))
        for t in sorted(TESTS.rglob("test_*.py"))
        if TESTS / "system" not in t.parents and "node_modules" not in t.parts and t not in sources | extra
    ]
    assert orphans == []

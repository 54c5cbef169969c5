"""``--baseline REF``: the channelbus of another commit, measured in the same run as this one.

:func:`checkout` extracts the tree of a git commit (``git archive``, no worktree bookkeeping)
into a temporary directory; a server started with :func:`pythonpath` of it imports *that*
channelbus, its demo and its bench sites, ahead of the editable install of this checkout.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(ref: str) -> Path:
    """The tree of commit ``ref`` in a temporary directory (removed when this process exits)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix=f"channelbus-{sha}-"))
    atexit.register(shutil.rmtree, tree, ignore_errors=True)
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def pythonpath(tree: Path) -> list[str]:
    """``PYTHONPATH`` entries so a server imports channelbus, the demo and the bench sites of ``tree``."""
    return [str(tree / "bench"), str(tree / "demo"), str(tree)]

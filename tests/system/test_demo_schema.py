"""The demo's contract, as ``manage.py channelbus_schema`` writes it, is the committed snapshot.

tests/snapshots/demo.asyncapi.json, demo.schema.json and demo.d.ts are what the JS tests check with the
real tools (the official AsyncAPI parser, ajv, tsc: tests/js/contract.test.mjs and typed-contract.ts). A
change to the demo's messages, or to how the contract is written, fails here until the snapshots are
written again::

    cd demo
    ../.venv/bin/python manage.py channelbus_schema -o ../tests/snapshots/demo.asyncapi.json
    ../.venv/bin/python manage.py channelbus_schema --format jsonschema -o ../tests/snapshots/demo.schema.json
    ../.venv/bin/python manage.py channelbus_schema --format typescript -o ../tests/snapshots/demo.d.ts
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import DEMO, demo_env

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"


@pytest.mark.parametrize(
    ("fmt", "snapshot"),
    [("asyncapi", "demo.asyncapi.json"), ("jsonschema", "demo.schema.json"), ("typescript", "demo.d.ts")],
)
def test_the_demos_contract_is_the_committed_snapshot(tmp_path, fmt, snapshot):
    written = subprocess.run(
        [sys.executable, "manage.py", "channelbus_schema", "--format", fmt],
        cwd=DEMO,
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = (SNAPSHOTS / snapshot).read_text(encoding="utf-8")
    assert written == expected, (
        f"tests/snapshots/{snapshot} is stale: write it again (see this module's docstring)"
    )

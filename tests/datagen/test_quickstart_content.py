"""The bundled example workspace works with the dataset commands: init from it, ingest its sources, import its
examples (every one valid and distinct) and its deliberately flawed file (every one rejected with reasons)."""
from __future__ import annotations

import json


import datagen
from tests.datagen.conftest import QUICKSTART


def test_bundled_examples_import_cleanly_and_flawed_ones_are_rejected(tmp_path, cli):
    root = tmp_path / "qs"
    assert cli("init", root, "--template", "quickstart").exit_code == 0
    added = cli("knowledge", "add", QUICKSTART / "sources", "-w", root)
    assert added.exit_code == 0 and " 0 chunks" not in added.stdout

    files = sorted((QUICKSTART / "examples").glob("*.jsonl"))
    result = cli("import", *files, "--approve", "--json", "-w", root)

    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    rejected = [v for v in verdicts if not v["accepted"]]
    assert result.exit_code == 0 and not rejected, json.dumps(rejected, indent=1)[:4000]
    ws = datagen.find_workspace(root)
    assert {c.name for c in ws.config.categories} >= {f.stem for f in files}

    flawed = QUICKSTART / "flawed.jsonl"
    bad = cli("import", flawed, "--json", "-w", root)
    assert bad.exit_code == 1
    for verdict in map(json.loads, bad.stdout.splitlines()):
        assert not verdict["accepted"] and verdict["reasons"], verdict

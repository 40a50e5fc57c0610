"""Fixtures for training tests: workspaces seeded with the bundled examples (the tiny model is in tests/conftest.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "engrain" / "quickstart" / "workspace"
PER_CATEGORY = 3


@pytest.fixture(scope="session")
def seeded_workspace(tmp_path_factory) -> Path:
    """A quickstart workspace with PER_CATEGORY approved examples per category (built once)."""
    import json

    import datagen
    from training import TOML_TEMPLATE

    root = tmp_path_factory.mktemp("seeded")
    datagen.init_workspace(root, template=QUICKSTART / "engrain.toml", extra_toml=[TOML_TEMPLATE])
    ws = datagen.load_workspace(root)
    for path in sorted((QUICKSTART / "examples").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()[:PER_CATEGORY]]
        verdicts = datagen.submit(ws, rows, status="approved", generator="human")
        assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts if not v.accepted]
    return root


@pytest.fixture
def workspace(seeded_workspace, tmp_path):
    """A fresh copy of the seeded workspace; returns a function(toml_extra="") -> Workspace."""
    import datagen

    root = tmp_path / "ws"
    shutil.copytree(seeded_workspace, root)

    def make(training_toml: str = "") -> "datagen.Workspace":
        if training_toml:
            text = (root / "engrain.toml").read_text()
            start = text.index("[training]")
            (root / "engrain.toml").write_text(text[:start] + training_toml)
        return datagen.load_workspace(root)

    return make

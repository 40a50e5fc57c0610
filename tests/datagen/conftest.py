"""Fixtures for datagen: small temp workspaces, the dataset CLI (in process and as a subprocess), example builders."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import datagen
from engrain import cmd_dataset

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "engrain" / "quickstart" / "workspace"
# The dataset commands as their own program, so the tests do not depend on every other command module importing.
ENGRAIN = [sys.executable, "-c",
           "import typer; from engrain import cmd_dataset; app = typer.Typer(); cmd_dataset.register(app); app()"]

GREP_TOOL = {"type": "function", "function": {
    "name": "Grep", "description": "Search file contents.",
    "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
                   "required": ["pattern"], "additionalProperties": False}}}

WORDS = ("parser config cache retry timeout queue worker schema migration index token session router handler "
         "payload invoice shipment carrier webhook ledger metric trace span buffer socket thread lock mutex "
         "tenant billing export import archive snapshot backup replica shard cursor batch stream window "
         "codec header cookie upload thumbnail avatar locale currency rounding discount coupon refund").split()
VERBS = "rename split extract inline cache memoize validate sanitize retry paginate debounce profile".split()


@pytest.fixture(scope="session")
def app() -> typer.Typer:
    root = typer.Typer()
    cmd_dataset.register(root)
    return root


@pytest.fixture
def cli(app):
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def ws(tmp_path) -> datagen.Workspace:
    datagen.init_workspace(tmp_path / "proj")
    return datagen.find_workspace(tmp_path / "proj")


def chat(user: str, answer: str, category: str = "problem-solving", **extra) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "category": category, **extra}


def tool_example(pattern: str = "def load_config", category: str = "tool-use") -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Where is `{pattern}` defined? I need to add a timeout option."},
            {"role": "assistant", "content": "Let me search for it.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "Grep", "arguments": json.dumps({"pattern": pattern})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "src/config.py:12:def load_config(path):"},
            {"role": "assistant", "content": "It is in src/config.py:12. Here is the change:\n```python\n"
                                             "def load_config(path, timeout=30):\n    ...\n```"},
        ],
        "tools": [GREP_TOOL], "category": category,
    }


def varied(seed: int, category: str = "craftsmanship") -> dict:
    """A distinct example per seed: random task wording over a shared vocabulary (lexically and semantically apart)."""
    rng = random.Random(seed)
    subject = " ".join(rng.sample(WORDS, 6))
    user = (f"Task {seed}: please {rng.choice(VERBS)} the {subject} code path, "
            f"then explain how {' '.join(rng.sample(WORDS, 5))} interact.")
    answer = (f"I would {rng.choice(VERBS)} {' '.join(rng.sample(WORDS, 8))} first, because "
              f"{' '.join(rng.sample(WORDS, 10))}. Then {rng.choice(VERBS)} {' '.join(rng.sample(WORDS, 7))}.")
    return chat(user, answer, category)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def engrain(*args: object, cwd: Path | None = None, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*ENGRAIN, *map(str, args)], cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          **kwargs)

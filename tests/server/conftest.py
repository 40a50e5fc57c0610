"""Fixtures for the MCP server tests: a small workspace, example builders, and the real external clients."""
from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import datagen
import pytest

REPO = Path(__file__).resolve().parents[2]
ENGRAIN = Path(sys.executable).parent / "engrain"
TOOLS_BIN = REPO / ".tools" / "node_modules" / ".bin"

# Two categories and one rule keep the verdicts predictable. The near-duplicate thresholds are raised so
# that the synthetic examples below (random words) are never judged rewordings of each other.
TEST_TOML = '''\
[dataset]
name = "server-tests"
max_chars = 24000
minhash_threshold = 0.95
semantic_threshold = 0.99

[[plan.categories]]
name = "tool-use"
quota = 20
description = "Calling tools well."
guidance = "Search before editing."

[[plan.categories]]
name = "code-review"
quota = 10
description = "Reviewing changes."
guidance = "Correctness first."

[[rules]]
name = "no-todo"
description = "Never leave TODO placeholders in a reply."
kind = "regex_must_not"
pattern = "(?i)\\\\bTODO\\\\b"
'''

# Enough distinct words that two random examples share no word 3-gram.
WORDS = """
adapter allocate archive assert async atomic backoff batch benchmark binary bisect bitmask branch buffer
bundle cache callback canary channel checksum chunk cipher clamp client closure cluster codec column commit
compile compress config consumer context cookie coroutine cursor daemon deadline debounce decode default
deploy digest dispatch docker domain driver encode endpoint entropy enum epoch escape event exporter fallback
feature fetch fixture flag flush folder format fragment frame gateway gauge getter graph handler hash header
heap histogram hook index inode invoice iterator journal kernel keychain ladder lambda latency layer
ledger lexer limiter linker listener locale lock logger lookup mailbox manifest mapper marker matrix merge
metric migration mirror module monitor mutex namespace network node notifier offset opcode oracle packet pager
palette parser patch payload pipeline plugin pointer policy pool portal predicate prefix printer probe
profile prompt proxy queue quota random reader record reducer refactor registry regex release renderer
replica request resolver retry router runtime sampler sandbox scanner schema scheduler scope script segment
selector semaphore sensor session shard signal snapshot socket solver spinner splitter stack storage stream
string struct subnet suffix switch symbol syntax table tensor thread ticket timer token tracer trigger tuple
upload validator vector vertex viewer volume watcher webhook widget worker wrapper yield zipper
""".split()


@pytest.fixture
def workspace(tmp_path: Path) -> datagen.Workspace:
    template = tmp_path / "template.toml"
    template.write_text(TEST_TOML)
    root = tmp_path / "project"
    datagen.init_workspace(root, template=template)
    return datagen.find_workspace(root)


def valid_example(seed: int, category: str = "tool-use") -> dict:
    """A plain two-message example that passes validation; `seed` makes its text unique."""
    rng = random.Random(seed)
    question = " ".join(rng.sample(WORDS, 12))
    answer = " ".join(rng.sample(WORDS, 30))
    return {
        "messages": [
            {"role": "user", "content": f"Explain how {question} fit together in our code."},
            {"role": "assistant", "content": f"Here is how they connect: {answer}."},
        ],
        "category": category,
    }


def invalid_example() -> dict:
    """Breaks the no-todo rule and calls a tool it never declares, so it carries two reasons."""
    return {
        "messages": [
            {"role": "user", "content": "What does the retry policy do?"},
            {"role": "assistant", "content": "TODO fill this in", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "Grep", "arguments": "{}"}}]},
        ],
        "category": "tool-use",
    }


def stored_total(ws: datagen.Workspace) -> int:
    return datagen.list_examples(ws, limit=1).total


def structured(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return " ".join(c.text for c in result.content)


def external_cli(name: str) -> Path:
    """A CLI from `.tools` (scripts/test.sh installs them with npm). Missing npm skips; a missing CLI fails."""
    path = TOOLS_BIN / name
    if path.exists():
        return path
    if shutil.which("npm") is None:
        pytest.skip(f"npm is not installed, so {name} cannot be installed")
    pytest.fail(
        f"{path} is missing: run scripts/test.sh, or `npm install --prefix .tools "
        "@anthropic-ai/claude-code @modelcontextprotocol/inspector`"
    )


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)

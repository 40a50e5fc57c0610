"""Acceptance 5: exports that the consumers accept — mlx-lm's dataset loader, OpenAI's documented fine-tuning file
checks, `datasets.load_from_disk` — plus stratified splits, round trips through Alpaca/ShareGPT, path refusal."""
from __future__ import annotations

import json
import types
from collections import Counter
from pathlib import Path

import pytest

import datagen
from tests.datagen.conftest import both_backends, tool_example, varied

CATEGORIES = ("craftsmanship", "code-review", "collaboration")


@pytest.fixture
def filled(ws):
    """30 approved examples over three categories (one of them with a tool-use trajectory), 2 pending."""
    records = [varied(i, CATEGORIES[i % 3]) for i in range(29)] + [tool_example(category="craftsmanship")]
    verdicts = datagen.submit(ws, records, status="approved")
    assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts if not v.accepted]
    datagen.submit(ws, [varied(100), varied(101)])
    return ws


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def openai_format_errors(rows: list[dict]) -> Counter:
    """The checks of OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning", extended with the
    keys and role its current fine-tuning guide documents for tool calling (tools, tool_calls, tool_call_id, tool)."""
    from litellm.litellm_core_utils.default_encoding import encoding  # cl100k_base, bundled with litellm

    errors: Counter = Counter()
    for row in rows:
        if not isinstance(row, dict):
            errors["data_type"] += 1
            continue
        if set(row) - {"messages", "tools", "parallel_tool_calls"}:
            errors["example_unrecognized_key"] += 1
        messages = row.get("messages")
        if not messages:
            errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or ("content" not in message and "tool_calls" not in message):
                errors["message_missing_key"] += 1
            if set(message) - {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id"}:
                errors["message_unrecognized_key"] += 1
            if message.get("role") not in ("system", "user", "assistant", "function", "tool"):
                errors["unrecognized_role"] += 1
            content = message.get("content")
            if (content is None and not message.get("tool_calls")) or (content is not None
                                                                        and not isinstance(content, str)):
                errors["missing_content"] += 1
        if not any(m.get("role") == "assistant" for m in messages):
            errors["example_missing_assistant_message"] += 1
        tokens = sum(3 + len(encoding.encode(m.get("content") or "")) for m in messages) + 3
        if tokens > 65_536:
            errors["example_over_token_limit"] += 1
    return errors


@both_backends
def test_openai_export_passes_openai_fine_tuning_file_checks(filled):
    result = datagen.export(filled, "openai", filled.root / "out" / "openai")

    train, valid = (_jsonl(Path(f)) for f in result.files)
    assert result.counts == {"train": len(train), "valid": len(valid)} and len(train) + len(valid) == 30
    assert len(train) >= 10  # OpenAI's minimum for a training file
    assert openai_format_errors(train + valid) == Counter()
    assert any("tools" in row for row in train + valid)


@both_backends
def test_split_is_stratified_by_category_and_seeded(filled):
    first = datagen.export(filled, "openai", filled.root / "a", split=0.8, seed=7)
    again = datagen.export(filled, "openai", filled.root / "b", split=0.8, seed=7)
    other = datagen.export(filled, "openai", filled.root / "c", split=0.8, seed=8)

    def valid_users(result):
        return [row["messages"][0]["content"] for row in _jsonl(Path(result.files[1]))]

    assert first.counts == {"train": 24, "valid": 6}
    assert valid_users(first) == valid_users(again) != valid_users(other)
    category_of = {s.example.messages[0].content: s.example.category
                   for s in datagen.list_examples(filled, limit=100).items}
    assert Counter(category_of[user] for user in valid_users(first)) == {c: 2 for c in CATEGORIES}


@both_backends
def test_mlx_export_is_read_by_mlx_lm_dataset_loader(filled):
    from mlx_lm.tuner import datasets
    from transformers import AutoTokenizer

    from tests.datagen.conftest import smollm2_tokenizer_dir

    result = datagen.export(filled, "mlx", filled.root / "mlx", split=0.8)
    assert sorted(Path(f).name for f in result.files) == ["test.jsonl", "train.jsonl", "valid.jsonl"]
    tokenizer = AutoTokenizer.from_pretrained(**smollm2_tokenizer_dir())
    args = types.SimpleNamespace(data=result.out, train=True, test=True, mask_prompt=True, hf_dataset=False)

    train, valid, test = datasets.load_dataset(args, tokenizer)

    assert (len(train), len(valid), len(test)) == (result.counts["train"], result.counts["valid"],
                                                   result.counts["test"])
    for split in (train, valid, test):
        cached = datasets.CacheDataset(split)
        for i in range(len(cached)):
            tokens, offset = cached[i]
            assert 0 < offset < len(tokens)


@both_backends
def test_mlx_export_gives_each_assistant_turn_its_own_example(filled):
    result = datagen.export(filled, "mlx", filled.root / "mlx", split=1.0)

    rows = _jsonl(Path(result.files[0]))
    assert result.counts == {"train": 31}  # 29 single-turn + a tool trajectory with two assistant turns
    trajectory = [r for r in rows if "tools" in r]
    assert [r["messages"][-1]["role"] for r in trajectory] == ["assistant", "assistant"]
    assert "tool_calls" in trajectory[0]["messages"][-1]


@both_backends
def test_hf_export_loads_with_load_from_disk(filled):
    from datasets import load_from_disk

    result = datagen.export(filled, "hf", filled.root / "hf", split=0.8)

    dataset = load_from_disk(result.out)
    assert set(dataset) == {"train", "validation"}
    assert dataset["train"].num_rows + dataset["validation"].num_rows == 30
    row = next(r for r in dataset["train"].to_list() + dataset["validation"].to_list() if r["tools"] != "[]")
    assert row["messages"][1]["tool_calls"][0]["function"]["name"] == "Grep"


@both_backends
@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "alpaca"])
def test_export_then_import_round_trips(filled, fmt, tmp_path):
    result = datagen.export(filled, fmt, filled.root / fmt, split=1.0, status="all")
    datagen.init_workspace(tmp_path / "copy")
    copy = datagen.find_workspace(tmp_path / "copy")

    verdicts = list(datagen.import_file(copy, result.files[0], category="craftsmanship"))

    assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts if not v.accepted]
    original = {s.example.messages[0].content: s.example for s in datagen.list_examples(filled, limit=100).items}
    for stored in datagen.list_examples(copy, limit=100).items:
        source = original[stored.example.messages[0].content]
        if fmt != "openai":  # OpenAI files carry no category
            assert stored.example.category == source.category
        if fmt == "openai":
            assert stored.example.messages == source.messages
    assert len(verdicts) == (31 if fmt == "alpaca" else 32) and result.skipped == (1 if fmt == "alpaca" else 0)


@both_backends
def test_export_refuses_paths_outside_the_workspace_unless_forced(filled, tmp_path, cli):
    outside = tmp_path / "elsewhere"
    refused = cli("export", "--format", "openai", "--out", outside, "-w", filled.root)
    assert refused.exit_code == 2
    assert "outside the workspace" in refused.stderr
    assert not outside.exists()

    forced = cli("export", "--format", "openai", "--out", outside, "--force", "-w", filled.root)
    assert forced.exit_code == 0, forced.output
    assert (outside / "train.jsonl").exists()
    with pytest.raises(datagen.PathOutsideWorkspace):
        datagen.export(filled, "mlx", filled.root / ".." / "escape")

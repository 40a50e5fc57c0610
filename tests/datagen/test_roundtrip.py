"""Issue 14, point 1: export then import into a fresh workspace, through the CLI, in every format; each restores what
its format can hold, and the native format restores everything (ids, status, timestamps, review history)."""
from __future__ import annotations

import json

import pytest

import datagen
from tests.datagen.conftest import GREP_TOOL, tool_example, varied

READ_TOOL = {"type": "function", "function": {
    "name": "Read", "description": "Read a file.",
    "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}}

SOURCE = "# Style\n\nKeep functions under 40 lines.\n\n# Search\n\nSearch before editing: grep for the symbol first.\n"


def _parallel(refs: list[str]) -> dict:
    """Text and two parallel calls in one assistant turn, both answered, then the answer."""
    return {"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Compare how settings.py and loader.py read the timeout value."},
        {"role": "assistant", "content": "Reading both files at once.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "Read",
                                                              "arguments": json.dumps({"file_path": "settings.py"})}},
            {"id": "call_b", "type": "function", "function": {"name": "Read",
                                                              "arguments": json.dumps({"file_path": "loader.py"})}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "TIMEOUT = 30"},
        {"role": "tool", "tool_call_id": "call_b", "content": "timeout = int(os.environ['TIMEOUT'])"},
        {"role": "assistant", "content": "settings.py hard-codes 30; loader.py reads the environment and crashes "
                                         "when it is unset."}],
        "tools": [READ_TOOL], "category": "tool-use", "source_refs": refs,
        "meta": {"language": "python", "skill": "parallel reads"}}


def _call_without_text() -> dict:
    """An assistant turn that is only a call (content null), as OpenAI writes them."""
    return {"messages": [
        {"role": "user", "content": "Which modules still import the deprecated billing.v1 client?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "Grep", "arguments": json.dumps(
                {"pattern": "from billing.v1 import", "path": "src"})}}]},
        {"role": "tool", "tool_call_id": "call_7", "content": "src/invoices.py:3\nsrc/refunds.py:5"},
        {"role": "assistant", "content": "Two: invoices.py and refunds.py; both need the v2 client."}],
        "tools": [GREP_TOOL], "category": "tool-use"}


def _multi_turn(refs: list[str]) -> dict:
    return {"messages": [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What does a circuit breaker protect against in our payment client?"},
        {"role": "assistant", "content": "Cascading failures when the provider is slow or down."},
        {"role": "user", "content": "And when should it close again after the provider has recovered?"},
        {"role": "assistant", "content": "After a half-open probe succeeds."}],
        "category": "problem-solving", "source_refs": refs, "meta": {"language": "en"}}


@pytest.fixture
def source_ws(ws, cli):
    (ws.root / "STYLE.md").write_text(SOURCE, encoding="utf-8")
    refs = [c.id for c in datagen.add_knowledge(ws, [ws.root / "STYLE.md"])]
    records = [varied(i, "craftsmanship") for i in range(6)] + [
        {**tool_example(), "source_refs": refs[1:]}, _call_without_text(), _parallel(refs), _multi_turn(refs[:1])]
    verdicts = datagen.submit(ws, records, generator="test")
    assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts if not v.accepted]
    ids = [v.id for v in verdicts]
    assert cli("review", "--approve", ids[0], "--approve", ids[6], "--approve", ids[8], "--reject", ids[1],
               "--notes", "too vague", "-w", ws.root).exit_code == 0
    datagen.review_example(ws, ids[8], "approve", reviewer="second-reader", notes="checked the reads")
    return ws


def _fresh(tmp_path, name: str) -> datagen.Workspace:
    datagen.init_workspace(tmp_path / name)
    copy = datagen.find_workspace(tmp_path / name)
    (copy.root / "STYLE.md").write_text(SOURCE, encoding="utf-8")
    datagen.add_knowledge(copy, [copy.root / "STYLE.md"])  # the same sources give the same chunk ids
    return copy


def _by_id(ws) -> dict[str, datagen.StoredExample]:
    return {s.id: datagen.get_example(ws, s.id) for s in datagen.list_examples(ws, limit=100).items}


# format -> which stored examples it can hold (Alpaca: plain user/assistant turns only)
HOLDS = {"native": lambda e: True, "openai": lambda e: True, "mlx": lambda e: True, "hf": lambda e: True,
         "sharegpt": lambda e: True,
         "alpaca": lambda e: not e.tools and all(m.role != "tool" and not m.tool_calls for m in e.messages)}


@pytest.mark.parametrize("fmt", list(HOLDS))
def test_export_then_import_in_a_fresh_workspace_restores_what_the_format_holds(source_ws, cli, tmp_path, fmt):
    exported = cli("export", "--format", fmt, "--out", f"exports/{fmt}", "--status", "all", "--split", "0.7",
                   "-w", source_ws.root)
    assert exported.exit_code == 0, exported.output
    copy = _fresh(tmp_path, f"copy-{fmt}")

    imported = cli("import", source_ws.root / "exports" / fmt, "--json", "-w", copy.root)

    verdicts = [json.loads(line) for line in imported.stdout.splitlines()]
    assert imported.exit_code == 0, [v for v in verdicts if not v["accepted"]]
    original, restored = _by_id(source_ws), _by_id(copy)
    expected = {i for i, s in original.items() if HOLDS[fmt](s.example)}
    assert set(restored) == expected  # ids are content hashes: the same ids come back
    for example_id in expected:
        assert restored[example_id].example == original[example_id].example, (fmt, example_id)
    if fmt == "native":
        for example_id, stored in original.items():
            back = restored[example_id]
            assert back.model_dump(exclude={"reviews"}) == stored.model_dump(exclude={"reviews"})
            assert [r.model_dump(exclude={"id"}) for r in back.reviews] == \
                   [r.model_dump(exclude={"id"}) for r in stored.reviews]
    if fmt == "mlx":
        assert sum(v["skipped"] for v in verdicts) == 4  # per-turn prefixes: 3 tool trajectories, 1 two-turn chat


def test_native_export_without_review_history_still_restores_status(source_ws, cli, tmp_path):
    assert cli("export", "-f", "native", "-o", "native", "--status", "all", "--no-reviews",
               "-w", source_ws.root).exit_code == 0
    line = json.loads((source_ws.root / "native" / "engrain.jsonl").read_text().splitlines()[0])
    assert "reviews" not in line and line["id"].startswith("ex_")
    copy = _fresh(tmp_path, "copy")

    assert cli("import", source_ws.root / "native" / "engrain.jsonl", "-w", copy.root).exit_code == 0

    assert {i: s.status for i, s in _by_id(copy).items()} == {i: s.status for i, s in _by_id(source_ws).items()}


def test_sharegpt_keeps_text_and_parallel_calls_in_one_llama_factory_turn(source_ws):
    result = datagen.export(source_ws, "sharegpt", source_ws.root / "sg", split=1.0, status="all")
    rows = [json.loads(line) for line in open(result.files[0], encoding="utf-8")]
    row = next(r for r in rows if r.get("system") == "You are terse.")

    speakers = [t["from"] for t in row["conversations"]]
    assert speakers == ["human", "function_call", "observation", "gpt"]  # alternation LLaMA-Factory requires
    call = row["conversations"][1]
    assert [c["arguments"]["file_path"] for c in json.loads(call["value"])] == ["settings.py", "loader.py"]
    assert call["text"] == "Reading both files at once."
    assert row["category"] == "tool-use" and row["meta"]["skill"] == "parallel reads" and row["source_refs"]


def test_openai_export_keeps_our_fields_beside_the_file_not_in_it(source_ws):
    result = datagen.export(source_ws, "openai", source_ws.root / "oa", split=1.0, status="all")
    rows = [json.loads(line) for line in open(result.files[0], encoding="utf-8")]
    sidecar = [json.loads(line) for line in (source_ws.root / "oa" / "train.fields.jsonl").open()]

    assert all(set(r) <= {"messages", "tools"} for r in rows)
    assert len(sidecar) == len(rows) and all(s["category"] for s in sidecar)


def test_an_hf_folder_that_does_not_exist_is_a_clear_error(source_ws, cli):
    result = cli("import", source_ws.root / "exports" / "nothing-here", "-w", source_ws.root)
    assert result.exit_code == 2 and "does not exist" in result.stderr

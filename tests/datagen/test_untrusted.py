"""Issue 13, cases 1, 2, 3, 7, 8 and 9 (datagen): hostile examples and files. Each hostile record gets its own
verdict naming what was refused, the valid records of the same batch are stored, nothing reaches outside the
workspace (no connection, no file read, no write through a link), and what was stored before is unchanged."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

import datagen
from tests.datagen.conftest import GREP_TOOL, chat, tool_example, varied, write_jsonl


def _with_schema(parameters: dict, arguments: dict, seed: int = 0) -> dict:
    example = tool_example(pattern=f"def case_{seed}")
    example["tools"] = [{"type": "function", "function": {"name": "Grep", "parameters": parameters}}]
    example["messages"][1]["tool_calls"][0]["function"]["arguments"] = json.dumps(arguments)
    return example


def _ref(uri: str, seed: int) -> dict:
    return _with_schema({"type": "object", "properties": {"pattern": {"$ref": uri}}}, {"pattern": "x"}, seed)


def _pattern(pattern: str, argument: str, seed: int) -> dict:
    return _with_schema({"type": "object", "properties": {"pattern": {"type": "string", "pattern": pattern}}},
                        {"pattern": argument}, seed)


class Listener:
    """A loopback port that accepts connections, records them and never answers (an unresponsive server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.connections.append(self.sock.accept())
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text('{"type": "string", "description": "TOP-SECRET-CONTENT"}')
    return path


def _hostile(port: int, secret_path) -> dict[str, tuple[object, str]]:
    """case -> (a record, or a raw JSONL line; a phrase its verdict's reason must contain)."""
    deep = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    return {
        "1 $ref http": (_ref(f"http://127.0.0.1:{port}/s.json", 1), "points outside the schema"),
        "1 $ref https": (_ref(f"https://127.0.0.1:{port}/s.json", 2), "points outside the schema"),
        "1 $ref file": (_ref(secret_path.as_uri(), 3), "points outside the schema"),
        "1 $ref relative": (_ref("other.json#/defs/x", 4), "points outside the schema"),
        "1 $dynamicRef remote": (_with_schema({"$dynamicRef": f"http://127.0.0.1:{port}/d"}, {}, 5),
                                 "points outside the schema"),
        "1 $ref dangling": (_ref("#/$defs/missing", 6), "does not resolve within it"),
        "1 $ref endless": (_with_schema({"$ref": "#"}, {"pattern": "x"}, 7), "refers to itself without end"),
        "3 catastrophic pattern": (_pattern("^(a+)+$", "a" * 100_000 + "!", 8), "does not match '^(a+)+$'"),
        "3 backreference": (_pattern(r"^(a)\1$", "aa", 9), "is refused"),
        "3 lookahead in patternProperties": (
            _with_schema({"type": "object", "patternProperties": {"(?=a)": {"type": "string"}}}, {}, 10),
            "is refused"),
        "7 nested 100,000 deep": (deep, "nested too deeply"),
        "7 lone surrogate": ('{"messages": [{"role": "user", "content": "hi \\ud800"}, {"role": "assistant", '
                             '"content": "hello"}], "category": "problem-solving"}', "lone surrogate"),
        "7 lone surrogate in a key": ('{"messages": [{"role": "user", "content": "hi", "\\udfff": 1}], '
                                      '"category": "problem-solving"}', "lone surrogate"),
        "7 nested 100 deep": ({"messages": [{"role": "user", "content": "hi"}], "meta": {"x": _nest(100)},
                               "category": "problem-solving"}, "nested deeper than 64"),
        "7 tool arguments nested 100,000 deep": (_deep_arguments(), "nested too deeply"),
        "7 fence nested 100,000 deep": (chat("Show it.", "```json\n" + "[" * 100_000 + "]" * 100_000 + "\n```"),
                                        "does not parse"),
    }


def _nest(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def _deep_arguments() -> dict:
    example = tool_example(pattern="def deep")
    example["messages"][1]["tool_calls"][0]["function"]["arguments"] = "[" * 100_000 + "]" * 100_000
    return example


def test_one_hostile_record_never_sinks_its_batch(ws, cli, tmp_path, listener, secret):
    before = datagen.submit(ws, [varied(1), varied(2)])
    hostile = _hostile(listener.port, secret)
    valid = [varied(10 + i) for i in range(len(hostile))]
    lines = [item for pair in zip(valid, (record for record, _ in hostile.values())) for item in pair]
    path = write_jsonl(tmp_path / "hostile.jsonl", lines)

    result = cli("import", path, "--json", "-w", ws.root)

    assert result.exit_code == 1
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(verdicts) == len(lines)
    for (case, (_, phrase)), verdict in zip(hostile.items(), verdicts[1::2]):
        assert not verdict["accepted"], case
        assert any(phrase in r for r in verdict["reasons"]), (case, verdict["reasons"])
        assert all(len(r) < 2000 and "TOP-SECRET" not in r for r in verdict["reasons"]), case
    assert all(v["accepted"] for v in verdicts[0::2]), [v["reasons"] for v in verdicts[0::2]]
    assert listener.connections == []
    stored = {s.id: s for s in datagen.list_examples(ws, limit=200).items}
    assert len(stored) == 2 + len(valid)
    for verdict in before:                       # what was there before is untouched
        assert stored[verdict.id].example == datagen.get_example(ws, verdict.id).example


def test_a_json_array_with_one_record_too_deep_imports_the_rest(ws, cli, tmp_path):
    path = tmp_path / "array.json"
    path.write_text("[" + json.dumps(varied(1)) + ", " + "[" * 100_000 + "]" * 100_000 + ", "
                    + json.dumps(varied(2)) + "]", encoding="utf-8")

    result = cli("import", path, "--json", "-w", ws.root)

    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["accepted"] for v in verdicts] == [True, False, True]
    assert "nested too deeply" in verdicts[1]["reasons"][0]


@pytest.mark.parametrize("scheme", ["http", "https", "file", "silent port"])
def test_hostile_schema_ref_makes_no_connection_and_answers_within_a_second(ws, listener, secret, scheme):
    uri = {"http": f"http://127.0.0.1:{listener.port}/s.json", "https": f"https://127.0.0.1:{listener.port}/s.json",
           "file": secret.as_uri(), "silent port": f"http://127.0.0.1:{listener.port}/never-answers"}[scheme]
    for where in ("parameters", "nested"):
        parameters = ({"$ref": uri} if where == "parameters" else
                      {"type": "object", "properties": {"p": {"allOf": [{"$ref": uri}]}}})
        started = time.monotonic()
        [verdict] = datagen.submit(ws, [_with_schema(parameters, {"pattern": "x"})])
        elapsed = time.monotonic() - started

        assert not verdict.accepted
        assert "points outside the schema" in verdict.reasons[0], verdict.reasons
        assert elapsed < 1.0, elapsed
    time.sleep(0.2)                                  # a connection attempt would have been accepted by now
    assert listener.connections == []
    assert "TOP-SECRET" not in json.dumps(verdict.reasons)


def test_catastrophic_pattern_is_bounded(ws):
    # Python's re takes ~7 s at 26 characters and doubles per character; RE2 is linear.
    record = _pattern("^(a+)+$", "a" * 20_000 + "!", 0)
    started = time.monotonic()
    [verdict] = datagen.submit(ws, [record])
    assert time.monotonic() - started < 1.0
    assert not verdict.accepted and "does not match" in verdict.reasons[0]
    matching = _pattern("^(a+)+$", "a" * 20_000, 1)
    [ok] = datagen.submit(ws, [matching])
    assert ok.accepted, ok.reasons


def test_schema_checks_have_a_time_budget_per_example(ws):
    # 2,500 argument objects against 300 anyOf branches: about 2 million keyword checks
    branches = [{"type": "object", "required": [f"k{i}"], "properties": {"a": {"type": "integer", "minimum": i}}}
                for i in range(300)]
    slow = _with_schema({"type": "object", "properties": {"xs": {"type": "array", "items": {"anyOf": branches}}}},
                        {"xs": [{"a": i} for i in range(2500)]}, 0)
    # jsonschema's own uniqueItems compares unsortable items pairwise: 25 s for these 2,500 objects
    unique = _with_schema({"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}},
                          {"xs": [{"a": i} for i in range(2500)] + [{"a": 7}]}, 1)
    for record, phrase in ((slow, "took over 1 s"), (unique, 'non-unique elements (e.g. {"a": 7})')):
        started = time.monotonic()
        [verdict] = datagen.submit(ws, [record])
        assert time.monotonic() - started < 3
        assert not verdict.accepted and any(phrase in r for r in verdict.reasons), verdict.reasons


def test_patterns_and_refs_inside_the_schema_still_work(ws):
    schema = {"type": "object", "$defs": {"path": {"type": "string", "pattern": r"^src/\w+\.py$"}},
              "properties": {"pattern": {"type": "string"}, "path": {"$ref": "#/$defs/path"}},
              "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False,
              "required": ["pattern"]}
    good = _with_schema(schema, {"pattern": "retry", "path": "src/net.py", "x-depth": 2}, 0)
    bad = _with_schema(schema, {"pattern": "retry", "path": "lib/net.rb", "x-depth": "2", "other": 1}, 1)

    accepted, rejected = datagen.submit(ws, [good, bad])

    assert accepted.accepted, accepted.reasons
    reasons = " | ".join(rejected.reasons)
    for phrase in ("'lib/net.rb' does not match", "x-depth: '2' is not of type 'integer'", "'other' was unexpected"):
        assert phrase in reasons, reasons


def test_export_never_writes_through_a_planted_link_and_never_overwrites_without_force(ws, tmp_path):
    [verdict] = datagen.submit(ws, [chat("What is a mutex?", "A lock that one thread holds at a time.")],
                               status="approved")
    assert verdict.accepted
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    trap = ws.root / "exports" / "trap"
    trap.mkdir(parents=True)
    (trap / "train.jsonl").symlink_to(victim)
    (ws.root / "linked-dir").symlink_to(trap, target_is_directory=True)

    for out, force in (("exports/trap", False), ("exports/trap", True), ("linked-dir", True)):
        with pytest.raises(datagen.DatagenError, match="symbolic link|already exists"):
            datagen.export(ws, "openai", out, force=force)
    assert victim.read_text() == "precious"
    assert (trap / "train.jsonl").is_symlink()

    first = datagen.export(ws, "openai", "exports/clean")
    with pytest.raises(datagen.DatagenError, match="already exists; pass force"):
        datagen.export(ws, "openai", "exports/clean")
    again = datagen.export(ws, "openai", "exports/clean", force=True)
    assert first.files == again.files
    assert [p.name for p in (ws.root / "exports" / "clean").iterdir() if p.name.startswith(".")] == []


def test_hf_export_refuses_an_existing_folder_without_force_and_links_inside_it(ws, tmp_path):
    datagen.submit(ws, [varied(1), varied(2)], status="approved")
    datagen.export(ws, "hf", "exports/hf")
    with pytest.raises(datagen.DatagenError, match="not empty; pass force"):
        datagen.export(ws, "hf", "exports/hf")
    (ws.root / "exports" / "hf" / "planted").symlink_to(tmp_path)
    with pytest.raises(datagen.DatagenError, match="symbolic link"):
        datagen.export(ws, "hf", "exports/hf", force=True)


def test_binary_engrain_toml_is_a_one_line_error(tmp_path):
    datagen.init_workspace(tmp_path / "proj")
    (tmp_path / "proj" / "engrain.toml").write_bytes(b"\x00\xff\xfe binary \x89PNG")
    with pytest.raises(datagen.DatagenError, match="is not text .* restore it") as caught:
        datagen.find_workspace(tmp_path / "proj")
    assert "\n" not in str(caught.value)


def test_init_refuses_a_planted_config_link(tmp_path):
    victim = tmp_path / "victim.toml"
    victim.write_text("precious")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "engrain.toml").symlink_to(victim)
    with pytest.raises(datagen.DatagenError, match="symbolic link"):
        datagen.init_workspace(root, force=True)
    assert victim.read_text() == "precious"


def test_grep_tool_examples_still_pass(ws):
    # the hardened checks keep the ordinary case (GREP_TOOL's additionalProperties: false) working
    assert GREP_TOOL["function"]["parameters"]["additionalProperties"] is False
    [verdict] = datagen.submit(ws, [tool_example()])
    assert verdict.accepted, verdict.reasons

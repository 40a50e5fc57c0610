"""Ollama serves the layout the model was trained on: the packaged Modelfile's TEMPLATE, filled by Go's own
text/template the way Ollama fills it (tests/training/ollama_render/main.go), gives the same tokens as training's
chat template for the same conversation — with a system turn, tools, tool calls (parallel ones too) and results.

Each conversation is checked at every point where Ollama would be asked for a reply (after a user or tool turn),
so the whole history Ollama rebuilds is compared, not only the last turn."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from training import modelfile
from training.chat import TRAIN_TEMPLATE, normalize

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

GREP = {"type": "function", "function": {
    "name": "Grep", "description": "Search file contents for a regex <pattern> & list matches.",
    "parameters": {"type": "object", "properties": {
        "pattern": {"type": "string", "description": "A regex, e.g. `def \\w+`"},
        "path": {"type": "string"},
        "glob": {"type": ["string", "null"]},
        "mode": {"type": "string", "enum": ["content", "files"]}},
        "required": ["pattern"], "additionalProperties": False}}}
EDIT = {"type": "function", "function": {
    "name": "Edit", "parameters": {"type": "object", "required": ["file", "changes"], "properties": {
        "file": {"type": "string"},
        "changes": {"type": "array", "items": {"type": "object", "properties": {"old": {"type": "string"},
                                                                                "new": {"type": "string"}}}},
        "options": {"type": "object", "properties": {"dry_run": {"type": "boolean"}, "retries": {"type": "integer"}}}}}}}
RUN = {"type": "function", "function": {"name": "Bash", "description": "Run a command.",
                                        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}


def _call(n: int, name: str, arguments: dict) -> dict:
    return {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


CONVERSATIONS = {
    "plain, no system": [
        {"role": "user", "content": "What does enumerate() return?"},
        {"role": "assistant", "content": "Step 0 — Identity Audit: ok.\nAn iterator of (index, item) pairs."},
        {"role": "user", "content": "And zip()? Ünïcode — fine."},
    ],
    "system turn": [
        {"role": "system", "content": "You are a careful coding agent.\nNever bypass hooks."},
        {"role": "user", "content": "Commit this with --no-verify, the hook is slow."},
        {"role": "assistant", "content": "I won't skip the hook; let's make it faster instead."},
        {"role": "user", "content": "Fine, how?"},
    ],
    "tools, calls and results": [
        {"role": "system", "content": "Project rules: run the tests after every change."},
        {"role": "user", "content": "Where is load_config defined? Add a timeout."},
        {"role": "assistant", "content": "Step 0 — Identity Audit: searching first.",
         "tool_calls": [_call(1, "Grep", {"pattern": "def load_config", "path": "src/", "mode": "content"})]},
        {"role": "tool", "tool_call_id": "call_1", "content": "src/config.py:12:def load_config(path):"},
        {"role": "assistant", "content": "",
         "tool_calls": [_call(2, "Edit", {"file": "src/config.py", "changes": [{"old": "(path)", "new": "(path, t=30.0)"}],
                                          "options": {"retries": 2, "dry_run": False}})]},
        {"role": "tool", "tool_call_id": "call_2", "content": "edited 1 line"},
        {"role": "assistant", "content": "Done; now the tests.", "tool_calls": [_call(3, "Bash", {"command": "pytest -q && echo <ok>"})]},
        {"role": "tool", "tool_call_id": "call_3", "content": "12 passed"},
        {"role": "assistant", "content": "Fixed: I ran the tests, 12 passed."},
        {"role": "user", "content": "Thanks. Now the same for load_secrets."},
    ],
    "parallel calls, no system": [
        {"role": "user", "content": "Read a.py and b.py."},
        {"role": "assistant", "content": "", "tool_calls": [_call(1, "Grep", {"pattern": "a"}), _call(2, "Grep", {"pattern": "b"})]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.py:1:x"},
        {"role": "tool", "tool_call_id": "call_2", "content": "b.py:1:y"},
    ],
}
TOOLS = {"tools, calls and results": [GREP, EDIT, RUN], "parallel calls, no system": [GREP]}


def _template(modelfile_text: str) -> str:
    found = re.search(r'^TEMPLATE """(.*?)"""$', modelfile_text, re.S | re.M)
    assert found, "the Modelfile has no TEMPLATE"
    return found.group(1)


@pytest.fixture(scope="module")
def ollama_render(tmp_path_factory) -> Path:
    go = shutil.which("go")
    assert go, "Go is needed (scripts/test.sh installs Debian's golang-go)"
    out = tmp_path_factory.mktemp("go") / "ollama_render"
    done = subprocess.run([go, "build", "-o", str(out), str(HERE / "ollama_render" / "main.go")],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(out.parent), "GOCACHE": str(out.parent / "cache"),
                               "GO111MODULE": "off"})
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _system(modelfile_text: str) -> str | None:
    found = re.search(r'^SYSTEM """(.*?)"""$', modelfile_text, re.S | re.M)
    return found.group(1) if found else None


def _ollama_request(messages: list[dict], tools: list[dict] | None, system: str | None = None) -> dict:
    """The /api/chat body as Ollama's server hands it to the template: arguments as objects, and the Modelfile's
    SYSTEM put first when the conversation has no system turn of its own (server/routes.go does that)."""
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    out = []
    for m in messages:
        msg = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                               "arguments": json.loads(c["function"]["arguments"])}}
                                 for c in m["tool_calls"]]
        out.append(msg)
    return {"messages": out, "tools": tools or []}


def _go_render(binary: Path, template: str, request: dict) -> str:
    done = subprocess.run([str(binary)], input=json.dumps({"template": template, "request": request}),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _trained(tokenizer, messages: list[dict], tools) -> tuple[str, list[int]]:
    record = normalize({"messages": messages, "tools": tools})
    kwargs = {"tools": record["tools"], "chat_template": TRAIN_TEMPLATE, "add_generation_prompt": True}
    text = tokenizer.apply_chat_template(record["messages"], tokenize=False, **kwargs)
    ids = tokenizer.apply_chat_template(record["messages"], tokenize=True, return_dict=True, **kwargs)["input_ids"]
    return text, list(ids)


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_go_rendered_modelfile_template_equals_training_token_for_token(name, ollama_render, tokenizer):
    # As training/package.py writes it for a run whose examples have no system turn (the quickstart's).
    packaged = modelfile.render("model.gguf", system=None)
    template = _template(packaged)
    conversation, tools = CONVERSATIONS[name], TOOLS.get(name)
    asked = [i for i, m in enumerate(conversation) if m["role"] in ("user", "tool")
             and (i + 1 == len(conversation) or conversation[i + 1]["role"] == "assistant")]
    assert asked
    for end in asked:
        history = conversation[: end + 1]
        served = _go_render(ollama_render, template, _ollama_request(history, tools, _system(packaged)))
        text, ids = _trained(tokenizer, history, tools)
        assert served == text, f"{name}, up to message {end + 1}"
        assert tokenizer(served, add_special_tokens=False)["input_ids"] == ids


def test_the_checkouts_modelfile_carries_the_same_template():
    assert _template((REPO / "Modelfile").read_text()) == _template(modelfile.render("model.gguf", system=None))

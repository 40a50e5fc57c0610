"""Acceptance 1: the real Claude Code CLI (`claude -p`, the version scripts/test.sh pins) through `engrain serve`.

The hosted tier is a loopback server speaking Anthropic's Messages API (tests/fakes/hosted.py) that records every
body and header it receives; the local tier is the same server's OpenAI-compatible endpoint, so the answers
that cross API families come back converted. Upstream answers are scripted per conversation below: what a
model would ask for at each step (a tool call, a subagent, a tool search), while Claude Code, the router and
the engrain MCP server are the real programs.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from router.user_text import words
from tests.fakes import Call, Reply, hosted_server
from tests.router.claude_support import CLAUDE, REPO, Door, https_site, machine_cache, run_claude, self_signed
from tests.router.serving import running_router

HELLO = "hello from the upstream"
HARD = ("Design the architecture for a multi-region active-active payments platform: service boundaries, "
        "consistency trade-offs, failover and the migration plan from our monolith.")
EXAMPLE = {"category": "tool-use", "messages": [
    {"role": "user", "content": "Which module parses the retry headers of upstream answers in this service?"},
    {"role": "assistant", "content": "The retry headers are read in the errors module: it turns retry-after into "
                                     "seconds, and the engine waits that long before the next attempt."}]}


def _tool_results(body: dict) -> list[dict]:
    content = body["messages"][-1].get("content")
    return [b for b in content if b.get("type") == "tool_result"] if isinstance(content, list) else []


def _result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return " ".join(b.get("text", "") or b.get("tool_name", "") for b in content)
    return str(content or "")


def _first_words(body: dict) -> str:
    return next((w for m in body["messages"] if m["role"] == "user" and (w := words(m["content"]))), "")


def _subagent(body: dict, tools: list[str]) -> Reply:
    """The engrain generator subagent: load the deferred MCP tools, submit an example, report."""
    done = _tool_results(body)
    if not done:
        return Reply(tool_calls=[("ToolSearch", {"query": "select:mcp__engrain__submit", "max_results": 5})])
    if any("submit" in _result_text(b) and "accepted" not in _result_text(b) for b in done):
        return Reply(tool_calls=[("mcp__engrain__submit", {"examples": [EXAMPLE]})])
    return Reply(text="submitted: " + _result_text(done[0])[:300])


def script(call: Call) -> Reply:
    """What the scripted model answers, by conversation (Anthropic shape upstream, OpenAI shape locally)."""
    body, tools = call.body, call.tools
    if call.api == "openai":                      # the local tier: background digests and easy requests
        return Reply(text="local: " + (HELLO if "say hi" in json.dumps(body["messages"]) else "a short digest"))
    system = json.dumps(body.get("system") or "")
    if "engrain dataset" in system:
        return _subagent(body, tools)
    first, done = _first_words(body), _tool_results(body)
    if "say hi" in first:
        return Reply(text=HELLO)
    if "ECHO" in first:
        if not done:
            return Reply(tool_calls=[("Bash", {"command": "echo round-trip-ok", "description": "Print a word"})])
        return Reply(text="the tool said: " + _result_text(done[0]).strip())
    if "FIDELITY" in first:
        steps = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if steps == 0:
            return Reply(tool_calls=[("ToolSearch", {"query": "select:mcp__engrain__coverage", "max_results": 5})])
        if steps == 1:
            return Reply(tool_calls=[("Read", {"file_path": "/nonexistent/engrain-missing.txt"})])
        return Reply(text="fidelity done", cache_read_tokens=11, cache_creation_tokens=5)
    if "SUBAGENT" in first:
        # Claude Code runs the agent in the background: "launched" comes back first, its report in a later turn
        launched = '"name": "Agent"' in json.dumps([m for m in body["messages"] if m["role"] == "assistant"])
        last = json.dumps(body["messages"][-1])
        if not launched:
            return Reply(tool_calls=[("Agent", {"subagent_type": "engrain-gen-tool-use", "description": "Write examples",
                                                "prompt": "Write one example for tool-use and submit it upstream."})])
        if "<task-notification>" in last:
            return Reply(text="subagent reported: " + last.split("<result>")[1].split("</result>")[0][:300])
        return Reply(text="waiting for the subagent")
    if HARD[:40] in first:
        if not done:                              # WebFetch is deferred: not in `tools`, callable
            return Reply(tool_calls=[("WebFetch", {"url": SITE["url"],
                                                   "prompt": "What do the release notes say?"})])
        return Reply(text="architecture answer")
    return Reply(text=HELLO)


SITE: dict[str, str] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One upstream fake, one router (recorded at its door) for the whole module."""
    door = Door()
    with hosted_server(script) as fake:
        cfg = {"models": [
            {"name": "local-coder", "provider": "openai", "model": "fake-weak", "api_base": fake.url + "/v1",
             "context_window": 100000},
            {"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-5", "serves": ["claude-*"],
             "api_base": fake.url, "api_key": "upstream-key", "context_window": 150000}],
            "tiers": [{"name": "local", "models": ["local-coder"]}, {"name": "hosted", "models": ["claude"]}],
            "rules": [{"tier": "local", "model": "claude-*haiku*", "has_tools": False, "max_prompt_tokens": 4000},
                      {"tier": "hosted", "pattern": r"ECHO|FIDELITY|SUBAGENT|\bupstream\b"}],
            "state_db": str(tmp_path_factory.mktemp("router-state") / "router.db")}      # the decision log
        with running_router(cfg, wrap=door.wrap) as url:
            yield fake, url, door


def _fresh(tmp_path: Path) -> tuple[Path, Path]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    return home, project


def _since(door: Door, start: int) -> list:
    return [s for s in door.seen[start:] if s.path == "/v1/messages"]


def test_say_hi_with_no_model_answers_from_upstream(stack, tmp_path):
    fake, url, door = stack
    home, project = _fresh(tmp_path)
    start = len(door.seen)
    result = run_claude("say hi", cwd=project, home=home, base_url=url)
    assert result.code == 0, result.stderr
    assert result.out["result"] in (HELLO, f"local: {HELLO}") and not result.out["is_error"]
    sent = _since(door, start)
    assert sent and all(s.status == 200 for s in sent)
    assert sent[0].json()["model"].startswith("claude-")        # Claude Code's own default model id
    assert sent[0].headers["x-engrain-tier"] in ("local", "hosted")
    if sent[0].headers["x-engrain-tier"] == "hosted":           # the upstream is asked for the model the client named
        assert fake.requests[-1].body["model"] == sent[0].json()["model"]


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "not-streamed"])
def test_tool_round_trip(stack, tmp_path, streamed):
    fake, url, door = stack
    home, project = _fresh(tmp_path)
    first = len(fake.requests)
    # a broken stream makes Claude Code ask again without streaming (its own fallback)
    fake.cut_streams_after = None if streamed else 2
    try:
        result = run_claude("ECHO: run the echo command", cwd=project, home=home, base_url=url,
                            args=("--allowedTools", "Bash(echo *)"))
    finally:
        fake.cut_streams_after = None
    assert result.code == 0, result.stderr
    assert result.out["result"] == "the tool said: round-trip-ok"
    upstream = [r.body for r in fake.requests[first:] if r.path.startswith("/v1/messages")]
    answered = [b for b in upstream if not b.get("stream")] if not streamed else upstream
    assert any(_tool_results(b) and "round-trip-ok" in _result_text(_tool_results(b)[0]) for b in answered)
    assert all(b.get("stream") for b in upstream) if streamed else any(not b.get("stream") for b in upstream)


@pytest.fixture(scope="module")
def workspace(stack, tmp_path_factory):
    """`engrain init --claude --router URL` in a fresh project: the MCP server, the subagents, the settings."""
    _, url, _ = stack
    root = tmp_path_factory.mktemp("claude-ws")
    template = root / "template"
    template.mkdir()
    (template / "engrain.toml").write_text('[dataset]\nname = "cc"\n\n[[plan.categories]]\nname = "tool-use"\n'
                                           'quota = 10\ndescription = "Calling tools well."\n'
                                           'guidance = "Search before editing."\n')
    project = root / "project"
    engrain = Path(sys.executable).parent / "engrain"
    done = subprocess.run([str(engrain), "init", str(project), "--template", str(template), "--claude",
                           "--router", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return project


def test_upstream_receives_exactly_what_claude_code_sent(stack, workspace, tmp_path):
    fake, url, door = stack
    home = tmp_path / "home"
    home.mkdir()
    start, first = len(door.seen), len(fake.requests)
    result = run_claude("FIDELITY: look up the coverage tool, then read a missing file", cwd=workspace, home=home,
                        args=("--mcp-config", str(workspace / ".mcp.json"), "--allowedTools", "Read"))
    assert result.code == 0, result.stderr
    assert result.out["result"] == "fidelity done"
    sent = _since(door, start)
    upstream = [r for r in fake.requests[first:] if r.path.startswith("/v1/messages")]
    assert len(upstream) == len(sent) >= 3
    for at_door, arrived in zip(sent, upstream):
        client, got = at_door.json(), arrived.body
        assert {**got, "model": client["model"]} == client          # every field, in every block, untouched
        assert got["model"] == client["model"]                       # claude-* is served as named
        assert arrived.headers["anthropic-beta"] == at_door.request_headers["anthropic-beta"]
        assert arrived.headers["anthropic-version"] == "2023-06-01"
        assert arrived.headers["x-api-key"] == "upstream-key"        # the router's key, not the client's
    text = json.dumps([r.body for r in upstream])
    for feature in ('"cache_control"', '"thinking"', '"metadata"', '"is_error": true', '"tool_reference"',
                    '"defer_loading": true', '"role": "system"'):
        assert feature in text, feature
    assert result.out["usage"]["cache_read_input_tokens"] == 11      # usage as the upstream reported it



def test_background_request_and_hard_question_land_on_their_tiers(stack, tmp_path):
    """The hard question is scored on the user's words (not Claude Code's reminders); WebFetch's digest of a
    page is a background request of the small-fast model: no tools, small -> the local tier by rule."""
    fake, url, door = stack
    home, project = _fresh(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "notes.html").write_text("<html><body><h1>Release notes</h1><p>Version 3 adds routing.</p></body></html>")
    cert, key = self_signed(tmp_path)
    base, httpd = https_site(site, cert, key)
    SITE["url"] = base + "/notes.html"
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text(json.dumps({"skipWebFetchPreflight": True}))
    start = len(door.seen)
    try:
        result = run_claude(HARD, cwd=project, home=home, base_url=url, args=("--allowedTools", "WebFetch"),
                            env={"NODE_EXTRA_CA_CERTS": str(cert), "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5"})
    finally:
        httpd.shutdown()
    assert result.code == 0, result.stderr
    assert result.out["result"] == "architecture answer"
    sent = _since(door, start)
    main = [s for s in sent if s.json().get("tools")]
    background = [s for s in sent if not s.json().get("tools")]
    assert len(main) == 2 and len(background) == 1
    assert background[0].json()["model"] == "claude-haiku-4-5"
    assert background[0].headers["x-engrain-tier"] == "local"
    assert "a short digest" in json.dumps(main[1].json()["messages"][-1])     # the local answer reached the loop
    assert [s.headers["x-engrain-tier"] for s in main] == ["hosted", "hosted"]  # the tool-result turn inherits
    assert main[0].headers["x-engrain-score"] == main[1].headers["x-engrain-score"]
    bare = httpx.post(url + "/v1/route", json={"messages": [{"role": "user", "content": HARD}]}).json()
    assert bare["tier"] == "hosted"
    assert abs(float(main[0].headers["x-engrain-score"]) - bare["score"]) <= 0.05
    route = httpx.post(url + "/v1/route", content=background[0].body,
                       headers={"content-type": "application/json"}).json()
    assert route["tier"] == "local" and "rule 1 -> local" in route["reasons"]
    log = door.app.state.decisions                     # the router's decision log says the same
    for seen in main + background:
        logged = log.decision(seen.headers["x-engrain-response-id"])
        assert logged is not None and logged.tier == seen.headers["x-engrain-tier"]


def test_over_long_prompt_is_reported_by_claude_code_as_too_long(stack, tmp_path):
    fake, url, door = stack
    home, project = _fresh(tmp_path)
    start, first = len(door.seen), len(fake.requests)
    long = "Please summarise this log line by line.\n" + "the router forwards the request upstream\n" * 12000
    result = run_claude(None, cwd=project, home=home, base_url=url, stdin=long)
    sent = _since(door, start)
    assert sent and sent[0].status == 400
    again = httpx.post(url + "/v1/messages", content=sent[0].body, headers={"content-type": "application/json"})
    error = again.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert re.fullmatch(r"prompt is too long: \d+ tokens > 150000 maximum", error["message"]), error["message"]
    assert result.code != 0 and result.out["is_error"]
    assert result.out["result"].startswith("Prompt is too long"), result.out["result"]
    assert len(sent) <= 2                                  # recognised: no retries of variants
    assert not [r for r in fake.requests[first:] if r.path.startswith("/v1/messages")]   # never truncated upstream


def test_subagent_from_init_loads_deferred_tools_and_submits(stack, workspace, tmp_path):
    """The subagent `engrain init --claude` wrote, launched on the first turn, finds the engrain tools with
    ToolSearch and stores an example; Claude Code reaches the router through the project's settings.json."""
    import datagen

    fake, url, door = stack
    home = tmp_path / "home"
    home.mkdir()
    settings = json.loads((workspace / ".claude" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_BASE_URL"] == url
    agent = (workspace / ".claude" / "agents" / "engrain-gen-tool-use.md").read_text()
    assert "ToolSearch" in agent.split("---")[1]
    before = datagen.list_examples(datagen.find_workspace(workspace), limit=1).total
    start = len(door.seen)
    result = run_claude("SUBAGENT: grow the tool-use category", cwd=workspace, home=home,
                        args=("--mcp-config", str(workspace / ".mcp.json"), "--allowedTools", "mcp__engrain"))
    assert result.code == 0, result.stderr
    assert result.out["result"].startswith("subagent reported: submitted")
    sub = [s.json() for s in _since(door, start) if "engrain dataset" in json.dumps(s.json().get("system"))]
    assert "ToolSearch" in [t["name"] for t in sub[0]["tools"]]
    assert any('"tool_reference"' in json.dumps(b["messages"][-1]) and "mcp__engrain__submit" in
               json.dumps(b["messages"][-1]) for b in sub)
    ws = datagen.find_workspace(workspace)
    assert datagen.list_examples(ws, limit=1).total == before + 1
    stored = datagen.list_examples(ws, limit=5).items
    assert any(e.example.messages[0].content == EXAMPLE["messages"][0]["content"] and e.generator == "mcp"
               for e in stored)


def _readme_commands() -> str:
    """The README's Claude Code section's commands, exactly as a reader copies them."""
    section = (REPO / "README.md").read_text().split("## Claude Code through the router", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_readme_claude_code_section_works_as_written(tmp_path):
    commands = _readme_commands()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 8700)) != 0, "port 8700 (the README's) is taken"
    home, project = _fresh(tmp_path)
    path = os.pathsep.join([str(Path(sys.executable).parent), str(CLAUDE.parent), os.environ["PATH"]])
    env = {"PATH": path, "HOME": str(home), "ANTHROPIC_API_KEY": "key-for-the-hosted-tier", "HF_HUB_OFFLINE": "1",
           "DISABLE_AUTOUPDATER": "1", "XDG_CACHE_HOME": machine_cache()}
    with hosted_server(lambda call: Reply(text=HELLO)) as fake:
        env["ENGRAIN_ANTHROPIC_BASE_URL"] = fake.url
        # files, not pipes: `engrain serve &` outlives the shell and would hold a pipe open
        with (tmp_path / "out").open("w") as out_file, (tmp_path / "err").open("w") as err_file:
            shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", commands], cwd=project, env=env,
                                     stdout=out_file, stderr=err_file, start_new_session=True)
            try:
                shell.wait(timeout=300)
            finally:
                os.killpg(shell.pid, signal.SIGTERM)        # `engrain serve &` is still running
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert shell.returncode == 0, err[-3000:]
    assert out.strip().endswith(HELLO), out
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8700"
    asked = [r.body for r in fake.requests if r.path.startswith("/v1/messages")]
    assert asked and asked[0]["model"].startswith("claude-") and asked[0]["tools"]

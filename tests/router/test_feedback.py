"""Decision log and feedback (acceptance 3): every routed answer is logged without its prompt text, clients
judge answers through POST /v1/feedback, and `engrain router learn --from-feedback` turns the verdicts into
a head. Real HTTP: the openai SDK and httpx against the router, the router against a loopback OpenAI server."""
from __future__ import annotations

import json
import sqlite3

import httpx
import openai
import pytest
from typer.testing import CliRunner

import router
from engrain.cli import app
from tests.fakes import hosted_server
from tests.router.serving import running_router

SECRET = "How do I rotate the zebra-omega-7731 credentials in Vault?"


def _config(fake, db, **extra) -> dict:
    return {"models": [{"name": "weak", "provider": "openai", "model": "fake-weak", "api_base": fake.url + "/v1"},
                       {"name": "strong", "provider": "openai", "model": "fake-strong",
                        "api_base": fake.url + "/v1"}],
            "tiers": [{"name": "local", "models": ["weak"]}, {"name": "hosted", "models": ["strong"]}],
            "threshold": 1.01, "state_db": str(db), **extra}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "engrain.toml").write_text("[dataset]\n" + router.TOML_TEMPLATE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _ask(url: str, prompt: str) -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto",
                                                           messages=[{"role": "user", "content": prompt}])
    body = raw.parse()
    assert raw.headers["x-engrain-response-id"] == body.id
    return body.id


def test_feedback_round_trip_and_the_log_never_holds_the_prompt(workspace):
    db = workspace / ".engrain" / "router.db"
    with hosted_server() as fake, running_router(_config(fake, db)) as url:
        rid = _ask(url, SECRET)
        ok = httpx.post(url + "/v1/feedback", json={"response_id": rid, "rating": "bad", "note": "wrong path"})
        assert ok.status_code == 201 and ok.json()["response_id"] == rid
        unknown = httpx.post(url + "/v1/feedback", json={"response_id": "chatcmpl-nope", "rating": "good"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "response_not_found"
        for bad in ({"response_id": rid, "rating": "meh"}, {"rating": "good"}, {"response_id": rid}):
            reply = httpx.post(url + "/v1/feedback", json=bad)
            assert reply.status_code == 400 and "invalid request" in reply.json()["error"]["message"]
        stream_headers = httpx.post(url + "/v1/chat/completions", json={
            "model": "auto", "stream": True, "messages": [{"role": "user", "content": SECRET}]}).headers
        streamed = httpx.post(url + "/v1/feedback", json={"response_id": stream_headers["x-engrain-response-id"],
                                                          "rating": "good"})
        assert streamed.status_code == 201
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, tier, model, score, prompt, prompt_tokens, topic FROM decisions").fetchall()
    feedback = conn.execute("SELECT response_id, verdict, note FROM feedback ORDER BY seq").fetchall()
    conn.close()
    assert {r[0] for r in rows} >= {rid} and all(r[4] is None for r in rows)
    assert next(r for r in rows if r[0] == rid)[1:3] == ("local", "weak")
    assert feedback[0] == (rid, "bad", "wrong path") and len(feedback) == 2
    for path in db.parent.glob("router.db*"):             # not in the table, not in the WAL either
        assert b"zebra-omega" not in path.read_bytes()

    result = CliRunner().invoke(app, ["router", "learn", "--from-feedback"])
    assert result.exit_code == 0, result.output
    assert "learned from 2 outcomes (1 where the local answer failed)" in result.output
    assert "moved per-topic priors" in result.output
    head = json.loads((workspace / ".engrain" / "router" / "head.json").read_text())
    assert head["priors"]


def test_with_log_prompts_feedback_refits_the_head(workspace):
    db = workspace / ".engrain" / "router.db"
    easy = [f"What does Python's len() return for a list of {n} items?" for n in range(6)]
    hard = [f"Prove that the sum of the first {n} odd numbers is a perfect square, step by step." for n in range(6)]
    with hosted_server() as fake, running_router(_config(fake, db, log_prompts=True)) as url:
        for prompt in easy + hard:
            rid = _ask(url, prompt)
            httpx.post(url + "/v1/feedback", json={"response_id": rid, "rating": "good" if prompt in easy else "bad"})
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM decisions WHERE prompt IS NOT NULL").fetchone()[0] == 12
    conn.close()
    result = CliRunner().invoke(app, ["router", "learn", "--from-feedback"])
    assert result.exit_code == 0, result.output
    assert "refitted the embedding head" in result.output and "learned from 12 outcomes" in result.output


def test_feedback_without_a_decision_log_says_how_to_get_one():
    with hosted_server() as fake:
        cfg = _config(fake, "unused")
        del cfg["state_db"]
        with running_router(cfg) as url:
            reply = httpx.post(url + "/v1/feedback", json={"response_id": "x", "rating": "good"})
    assert reply.status_code == 503 and "workspace" in reply.json()["error"]["message"]

"""The hosted backend against a loopback server speaking OpenAI's files + fine_tuning.jobs API, through the
real `openai` client: upload, create, poll with progress, record the resulting model; stages chain models."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engrain.cli import app
from tests.training.openai_ft_fake import STEPS, start_openai_ft

HOSTED = """[training]
backend = "hosted"
hosted_model = "gpt-4.1-mini-2025-04-14"
hosted_poll_seconds = 0.01
[[training.stages]]
name = "tools"
categories = ["tool-use"]
[[training.stages]]
name = "everything"
"""


@pytest.fixture
def openai_fake(monkeypatch):
    fake = start_openai_ft()
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    yield fake
    fake.stop_listening()


def test_hosted_curriculum_records_the_fine_tuned_model(openai_fake, workspace):
    import training

    ws = workspace(HOSTED)
    result = CliRunner().invoke(app, ["train", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    record = training.get_run(ws, result.output.strip().splitlines()[-1])
    assert record.state == "done" and record.backend == "hosted"
    first, second = record.stages
    assert first.started_from == "gpt-4.1-mini-2025-04-14"
    assert second.started_from == first.adapter and first.adapter.startswith("ft:gpt-4.1-mini")
    assert record.hosted_model == second.adapter and record.hosted_model in result.output
    assert len(record.losses) == 2 * STEPS and record.losses[-1] < record.losses[0]

    created = [r.body for r in openai_fake.requests if r.path == "/v1/fine_tuning/jobs" and r.method == "POST"]
    assert [c["model"] for c in created] == ["gpt-4.1-mini-2025-04-14", first.adapter]
    assert created[0]["suffix"] == "engrain-tools"
    # The first stage uploaded only tool-use examples, in OpenAI's chat format with nothing extra.
    first_file = openai_fake.contents[created[0]["training_file"]].decode().splitlines()
    rows = [json.loads(line) for line in first_file]
    assert rows and all(set(r) <= {"messages", "tools"} and r["tools"] for r in rows)
    assert {r.body["purpose"] for r in openai_fake.requests if r.path == "/v1/files"} == {"fine-tune"}
    # Nothing local to package for a hosted run: a clear refusal.
    packaged = CliRunner().invoke(app, ["package", record.id, "--workspace", str(ws.root)])
    assert packaged.exit_code == 1 and "lives at the provider" in packaged.output


def test_hosted_job_failure_is_reported(openai_fake, workspace, monkeypatch):
    import training
    from tests.training import openai_ft_fake

    monkeypatch.setattr(openai_ft_fake, "_invalid", lambda content: "line 1: bad example")
    ws = workspace(HOSTED)
    result = CliRunner().invoke(app, ["train", "--workspace", str(ws.root)])
    assert result.exit_code == 1
    assert "failed: line 1: bad example" in result.output
    [record] = training.list_runs(ws)
    assert record.state == "failed" and "bad example" in record.error
    assert training.run_status(ws, record.id).state == "failed"

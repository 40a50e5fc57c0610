"""`engrain router train|calibrate|score|eval` as a user runs them (acceptance 4 on the development set)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import router
from engrain.cli import app

DEV = Path("/work/shared/data/routing/mmlu")
LABELS = Path(__file__).resolve().parents[2] / "router" / "data" / "labels.jsonl"
runner = CliRunner()


def _run(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input)
    return result


def test_score_reads_jsonl_and_writes_score_and_tier_per_line():
    lines = "\n".join([json.dumps({"prompt": "How do I reverse a list in Python?"}),
                       "not json",
                       json.dumps({"prompt": "Design a multi-region active-active architecture for our payments "
                                             "platform, with the migration plan from the monolith and trade-offs."}),
                       json.dumps({"text": "wrong key"})])
    result = _run("router", "score", input=lines)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 4
    assert out[0]["tier"] == "local" and 0 <= out[0]["score"] < 0.5
    assert "error" in out[1] and "error" in out[3]
    assert out[2]["tier"] == "hosted" and out[2]["score"] >= 0.5


def test_train_calibrate_and_eval_on_a_users_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "engrain.toml").write_text("[dataset]\n" + router.TOML_TEMPLATE)
    head = tmp_path / ".engrain" / "router" / "head.json"
    result = _run("router", "train", "--labels", str(LABELS))
    assert result.exit_code == 0, result.output
    assert head.exists() and "trained on 247 prompts" in result.output
    stored = json.loads(head.read_text())
    assert stored["n"] == 247 and len(stored["weights"]) == 384 + len(stored["features"])

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": json.loads(l)["prompt"]})
                                 for l in LABELS.read_text().splitlines()))
    result = _run("router", "calibrate", "--target-strong", "0.3", "--prompts", str(prompts))
    assert result.exit_code == 0, result.output
    share = float(re.search(r"([\d.]+)% of 247 prompts", result.output).group(1))
    assert 28 <= share <= 32
    assert json.loads(head.read_text())["threshold"] != stored["threshold"]

    result = _run("router", "eval", "--labels", str(LABELS))
    assert result.exit_code == 0, result.output
    assert "CPT(50%)" in result.output and "APGR" in result.output and "oracle" in result.output


def test_train_rejects_bad_labels_with_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "label": "local"}\n{"prompt": "b", "label": "medium"}\n')
    result = _run("router", "train", "--labels", str(bad), "--out", str(tmp_path / "h.json"))
    assert result.exit_code != 0 and "bad.jsonl:2" in result.output
    assert not (tmp_path / "h.json").exists()


@pytest.fixture
def dev_subset(tmp_path):
    sub = tmp_path / "mmlu"
    sub.mkdir()
    for name in ("mmlu_abstract_algebra.csv", "mmlu_college_computer_science.csv", "mmlu_marketing.csv",
                 "contaminated_prompts.jsonl"):
        (sub / name).symlink_to(DEV / name)
    return sub


@pytest.mark.skipif(not DEV.exists(), reason="development set not on this machine")
def test_eval_prints_routellm_metrics_on_routellm_csvs(dev_subset):
    result = _run("router", "eval", "--labels", str(dev_subset))
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "engrain head" in line)
    cpt50, cpt80, apgr = re.findall(r"([\d.]+)%?", row.split("engrain head", 1)[1])[:3]
    assert 0 <= float(cpt50) <= 100 and 0 <= float(cpt80) <= 100 and 0 <= float(apgr) <= 1
    assert "oracle" in result.output and "weak only" in result.output


@pytest.mark.skipif(not DEV.exists(), reason="development set not on this machine")
def test_eval_on_the_whole_development_set():
    result = _run("router", "eval", "--labels", str(DEV))
    assert result.exit_code == 0, result.output
    assert "14037 prompts" in result.output

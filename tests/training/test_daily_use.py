"""Issue 14, points 5, 6 and 9 as a user meets them on the command line: a NaN loss and an unreadable record do not
break the registry, SIGTERM stops a run like Ctrl-C (recorded, with its resume hint), continuing an earlier run
trains at continue_learning_rate, training writes the held-out split eval defaults to, and eval results are
recorded in the run."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from engrain.cli import app
from tests.training.test_train import tiny_toml

ENGRAIN = str(Path(sys.executable).with_name("engrain"))


def _cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_nan_loss_and_an_old_record_leave_the_registry_readable(workspace):
    import training
    from training import registry

    ws = workspace()
    nan_run = registry.RunRecord(id="20260101-000000-aaaa", created_at="2026-01-01T00:00:00+00:00", state="done",
                                 backend="mlx", losses=[2.5, float("nan")],
                                 metrics={"first_loss": 2.5, "final_loss": float("nan"), "steps": 2.0})
    registry.save(ws, nan_run)
    legacy = registry.run_dir(ws, "20260101-000001-bbbb")   # written by a version that turned NaN into null
    legacy.mkdir(parents=True)
    (legacy / "run.json").write_text(json.dumps({"id": legacy.name, "created_at": "x", "state": "done",
                                                 "losses": [1.0, None], "metrics": {"final_loss": None}}))
    broken = registry.run_dir(ws, "20260101-000002-cccc")
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"id": "20260101-000002-cccc", "losses": [')

    listed = _cli("models", "-w", ws.root)
    as_json = _cli("models", "--json", "-w", ws.root)
    unknown = _cli("package", "no-such-run", "-w", ws.root)

    assert listed.exit_code == 0 and "nan" in listed.output and "failed" in listed.output, listed.output
    runs = {r["id"]: r for r in json.loads(as_json.output)}
    assert runs[nan_run.id]["losses"][1] == "NaN" and runs[legacy.name]["losses"][1] == "NaN"
    assert "unreadable" in runs[broken.name]["error"]
    assert math.isnan(training.get_run(ws, nan_run.id).losses[1])
    assert unknown.exit_code == 2 and "no training run 'no-such-run'" in unknown.output
    assert "Traceback" not in listed.output + as_json.output + unknown.output


def test_sigterm_stops_training_like_ctrl_c_and_says_how_to_resume(tiny_model, workspace):
    ws = workspace(tiny_toml(tiny_model))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([ENGRAIN, "train", "--backend", "hf", "--max-steps", "400", "-w", str(ws.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((ws.state_dir / "runs").glob("*/status.json"))
        status = json.loads(found[0].read_text()) if found else None
        if status and status.get("step", 0) >= 2:
            break
        time.sleep(0.5)
    assert status and status["step"] >= 2, proc.communicate()[1][-3000:]

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)

    run_id = status["run_id"]
    record = json.loads((ws.state_dir / "runs" / run_id / "run.json").read_text())
    assert proc.returncode == 130, err[-3000:]
    assert f"engrain train --resume {run_id}" in err and "interrupted at stage" in err
    assert record["state"] == "failed" and record["error"].startswith("interrupted")


def test_continuing_a_run_trains_at_continue_learning_rate_over_a_stages_rate(tiny_model, workspace):
    import training

    stage = '[[training.stages]]\nname = "collab"\ncategories = ["collaboration"]\nlearning_rate = 1e-4\n'
    ws = workspace(tiny_toml(tiny_model, stage))
    first = _cli("train", "--backend", "hf", "--max-steps", "2", "-w", ws.root)
    assert first.exit_code == 0, first.output
    first_id = first.output.strip().splitlines()[-1]

    again = _cli("train", "--backend", "hf", "--max-steps", "1", "--base", first_id, "-w", ws.root)

    assert again.exit_code == 0, again.output
    fresh = training.get_run(ws, first_id)
    continued = training.get_run(ws, again.output.strip().splitlines()[-1])
    assert fresh.stages[0].learning_rate == 1e-4          # a fresh run: the stage's own rate
    assert continued.stages[0].learning_rate == 5e-5      # continuing: continue_learning_rate wins
    # The held-out split training wrote: prompts from the validation split, with what the reference answer did.
    heldout = [json.loads(line) for line in Path(fresh.artifacts["heldout"]).read_text().splitlines()]
    assert heldout and all(h["prompt"] and h["category"] == "collaboration" for h in heldout)
    valid = Path(fresh.artifacts["adapter"]).parent / "data" / "valid.jsonl"
    assert len(heldout) == len(valid.read_text().splitlines())


def test_eval_without_prompts_explains_a_run_with_no_held_out_split(tiny_model, workspace):
    import training
    from training import registry

    ws = workspace()
    record = registry.RunRecord(id="20260101-000003-dddd", created_at="x", state="done", backend="hf",
                                artifacts={"gguf": str(ws.root / "model.gguf")})
    registry.save(ws, record)

    result = _cli("eval", record.id, "-w", ws.root)

    assert result.exit_code == 2
    assert "has no held-out split" in result.output and "--prompts FILE" in result.output
    assert training.get_run(ws, record.id).state == "done"

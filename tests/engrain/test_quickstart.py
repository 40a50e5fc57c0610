"""`engrain quickstart` and `engrain eval`, driven as a user does: the console script in a subprocess.

The fast tier runs the whole pipeline on the tiny model (random weights, so adherence numbers mean nothing
here; the real figures come from the README's first command on SmolLM2-135M)."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENGRAIN = str(Path(sys.executable).with_name("engrain"))
QUICKSTART = Path(__file__).resolve().parents[2] / "engrain" / "quickstart" / "workspace"


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "ENGRAIN_TRAINING_MAX_SEQ_LEN": "256", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def quickstart_run(tiny_model, tmp_path_factory):
    """One full quickstart on the tiny model; returns (workspace, completed process)."""
    root = tmp_path_factory.mktemp("quickstart")
    done = subprocess.run([ENGRAIN, "quickstart", "--workspace", str(root), "--base", str(tiny_model),
                           "--max-steps", "3", "--backend", "hf", "--json"],
                          capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return root, done


def test_quickstart_tells_each_step_and_ends_with_the_json_headline(quickstart_run):
    root, done = quickstart_run
    for number in range(1, 10):
        assert f"{number}/9" in done.stderr
    assert "rejected" in done.stderr and "is empty" in done.stderr  # the flawed examples show their reasons
    headline = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("adherence_base_with_prompt", "adherence_base_without_prompt", "adherence_finetuned_without_prompt",
                "prompt_tokens_saved_pct"):
        assert 0.0 <= headline[key] <= 1.0, (key, headline[key])
    # The system prompt is the whole knowledge base, so dropping it saves nearly every prompt token.
    assert headline["prompt_tokens_saved_pct"] >= 0.9
    assert [r["prompt"] for r in headline["routed"]][0].startswith("What does Python")
    for routed in headline["routed"]:
        assert routed["tier"] in ("local", "hosted") and 0.0 <= routed["score"] <= 1.0
    run_dir = next((root / ".engrain" / "runs").iterdir())
    for name in ("eval.json", "eval.md", "eval.png"):
        assert (run_dir / name).stat().st_size > 0


def test_eval_gives_the_same_numbers_twice(quickstart_run):
    root, _ = quickstart_run
    run_id = next((root / ".engrain" / "runs").iterdir()).name
    prompts = root / "few.jsonl"
    lines = (QUICKSTART / "eval_prompts.jsonl").read_text().splitlines()
    prompts.write_text("\n".join(lines[:4]) + "\n")
    outputs = []
    for _ in range(2):
        done = subprocess.run([ENGRAIN, "eval", run_id, "--prompts", str(prompts), "--max-tokens", "24",
                               "--seed", "7", "--json", "--workspace", str(root)],
                              capture_output=True, text=True, env=_env(), timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
    report = json.loads((root / ".engrain" / "runs" / run_id / "eval.json").read_text())
    assert report["seed"] == 7 and len(report["prompts"]) == 4
    assert {a["arm"] for a in report["arms"]} == {"base_with_prompt", "base_without_prompt",
                                                  "finetuned_without_prompt"}


def test_eval_explains_a_missing_run(quickstart_run):
    root, _ = quickstart_run
    done = subprocess.run([ENGRAIN, "eval", "no-such-run", "--workspace", str(root)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode != 0
    assert "no-such-run" in done.stderr and "Traceback" not in done.stderr


def test_eval_defaults_to_the_held_out_split_and_records_its_results_in_the_run(quickstart_run):
    root, _ = quickstart_run
    run_dir = next((root / ".engrain" / "runs").iterdir())
    heldout = [json.loads(line) for line in (run_dir / "heldout.jsonl").read_text().splitlines()]

    done = subprocess.run([ENGRAIN, "eval", run_dir.name, "--no-base-with-prompt", "--max-tokens", "8",
                           "--workspace", str(root)], capture_output=True, text=True, env=_env(), timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run_dir / "eval.json").read_text())
    assert [p["prompt"] for p in report["prompts"]] == [h["prompt"] for h in heldout]
    # Tool-call validity counts only prompts whose reference answer called a tool, or answers that did call.
    for answer in report["answers"]:
        prompt = report["prompts"][answer["prompt_index"]]
        if not prompt.get("expects_tool_call") and not answer["tool_calls"]:
            assert answer["tool_calls_valid"] is None
    record = json.loads((run_dir / "run.json").read_text())
    assert "eval_prompt_tokens_saved_pct" in record["metrics"] and record["artifacts"]["eval_markdown"]


def test_the_quickstart_writes_nothing_into_the_source_checkout(quickstart_run):
    root, _ = quickstart_run
    copied = Path(__file__).resolve().parents[2] / "quickstart.q4_k_m.gguf"
    started = (root / "engrain.toml").stat().st_mtime
    assert not copied.exists() or copied.stat().st_mtime < started


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_ctrl_c_during_the_route_step_stops_the_router(tiny_model, tmp_path):
    """Interrupt once the router answers: the quickstart exits 130 and nothing keeps listening."""
    process = subprocess.Popen([ENGRAIN, "quickstart", "--workspace", str(tmp_path / "ws"), "--base",
                                str(tiny_model), "--max-steps", "1",
                                "--backend", "hf"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # (a shell that runs a job in the background hands it SIGINT ignored; Ctrl-C at a terminal reaches a
    # process with the default disposition, which is what this test stands for)
    port = None
    deadline = time.monotonic() + 600
    try:
        for line in process.stderr:
            found = re.search(r"engrain serve .* --port (\d+)", line)
            if found:
                port = int(found.group(1))
                break
            assert time.monotonic() < deadline
        assert port, "the quickstart never reached the route step"
        while not _port_open(port):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert not _port_open(port)
    leftover = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_eval_takes_a_plain_text_prompt_file_and_shows_each_rule_with_its_interval(quickstart_run, tmp_path):
    root, _ = quickstart_run
    run_id = next((root / ".engrain" / "runs").iterdir()).name
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Fix the flaky retry test and tell me when it's done.\nWhere is the DHL parser?\n")
    done = subprocess.run([ENGRAIN, "eval", run_id, "--prompts", str(prompts), "--max-tokens", "16", "--json",
                           "--workspace", str(root)], capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    headline = json.loads(done.stdout.strip().splitlines()[-1])
    # No prompt mentions learning mode: that rule says so instead of scoring 0% or 100%.
    assert "learning-mode-todo-human" in headline["rules_applied_to_no_prompt"]
    assert {"behaviours_transferred", "substantive_rules", "adherence_finetuned_without_prompt"} <= headline.keys()
    assert "applied to no" in done.stderr and re.search(r"\d+/2 = \d+% \[\d+%", done.stderr)
    markdown = (root / ".engrain" / "runs" / run_id / "eval.md").read_text()
    assert "| learning-mode-todo-human | regex_must | applied to no prompt |" in markdown

"""Issue 13, cases 6, 8 and 9 (training and the CLI): two preparations of the same base at once both succeed;
`--resume` refuses an unknown or path-like id and creates nothing; a run killed with SIGKILL reads as failed;
a corrupt base model, a read-only dataset and a full disk are one-line errors that say what to do."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import training
from datagen import describe_failure
from engrain.cli import app
from training import base as base_models
from training import registry

ENGRAIN = [sys.executable, "-m", "engrain"]


@pytest.mark.parametrize("run_id, says", [("no-such-run", "no training run 'no-such-run'"),
                                          ("../../../escaped", "is not a run id"),
                                          ("/tmp/abs", "is not a run id"), ("..", "is not a run id")])
def test_resume_refuses_an_unknown_or_path_like_id_and_creates_nothing(workspace, tmp_path, run_id, says):
    ws = workspace()
    before = sorted(p.name for p in registry.runs_dir(ws).glob("*")) if registry.runs_dir(ws).exists() else []

    result = CliRunner().invoke(app, ["train", "--resume", run_id, "--max-steps", "1", "-w", str(ws.root)])

    assert result.exit_code == 2
    assert says in result.output and "Traceback" not in result.output
    after = sorted(p.name for p in registry.runs_dir(ws).glob("*")) if registry.runs_dir(ws).exists() else []
    assert after == before
    assert not (ws.state_dir.parent.parent / "escaped").exists()


def test_a_run_killed_with_sigkill_reads_as_failed(workspace):
    ws = workspace()
    record = training.runner.create(ws, backend="hf", base=None, stage=None, max_steps=1, include_pending=False)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    registry.write_status(ws, registry.RunStatus(run_id=record.id, state="running", pid=worker.pid))
    record.state = "running"
    registry.save(ws, record)
    assert training.get_run(ws, record.id).state == "running"      # alive: left alone

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    [listed] = [r for r in training.list_runs(ws) if r.id == record.id]
    assert listed.state == "failed" and f"--resume {record.id}" in listed.error
    on_disk = json.loads((registry.run_dir(ws, record.id) / "run.json").read_text())
    assert on_disk["state"] == "failed"                              # recorded, not only reported
    assert training.run_status(ws, record.id).state == "failed"


def test_two_preparations_of_one_base_at_once_both_succeed(tiny_model, tmp_path):
    cache = tmp_path / "cache"
    out = cache / "prepared" / "tiny"
    results: list[object] = []

    def prepare() -> None:
        try:
            results.append(base_models.prepare(tiny_model, out))
        except Exception as exc:  # the failure this test exists to catch ("Directory not empty")
            results.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [out, out, out]
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]        # no temporary folder left behind


def test_a_corrupt_base_model_is_a_one_line_error(tmp_path):
    header_only = tmp_path / "broken.gguf"
    header_only.write_bytes(b"GGUF\x03\x00\x00\x00")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", ')
    not_a_model = tmp_path / "other"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text('{"hello": 1}')

    for spec, says in ((header_only, "cannot be read as a GGUF model"), (folder, "cannot be read as JSON"),
                       (not_a_model, "not a model config")):
        with pytest.raises(base_models.BaseModelError, match=says) as caught:
            base_models.resolve(str(spec), tmp_path / "cache")
        assert "\n" not in str(caught.value) and "--base" in str(caught.value)


def test_the_cli_says_in_one_line_when_the_dataset_cannot_be_written(tmp_path):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available to make a file read-only for root")
    root = tmp_path / "proj"
    subprocess.run([*ENGRAIN, "init", str(root)], check=True, capture_output=True)
    examples = tmp_path / "one.jsonl"
    examples.write_text(json.dumps({"messages": [{"role": "user", "content": "What is a mutex?"},
                                                 {"role": "assistant", "content": "A lock one thread holds."}],
                                    "category": "problem-solving"}) + "\n")
    state = root / ".engrain"
    locked = [state / "engrain.db", state]
    if subprocess.run(["chattr", "+i", *map(str, locked)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem does not support the immutable attribute")
    try:
        result = subprocess.run([*ENGRAIN, "import", str(examples), "-w", str(root)], capture_output=True,
                                text=True, timeout=300)
    finally:
        subprocess.run(["chattr", "-i", *map(str, locked)], check=True)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "writable" in lines[0], result.stderr


def test_a_full_disk_and_a_read_only_file_are_described_with_what_to_do(tmp_path):
    with pytest.raises(OSError) as full:
        with open("/dev/full", "w") as handle:                      # the kernel's always-full device
            handle.write("x")
            handle.flush()
    assert "free some space" in describe_failure(full.value)
    import sqlite3

    db = tmp_path / "ro.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(sqlite3.OperationalError) as read_only:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.execute("INSERT INTO t VALUES (1)")
    assert "writable" in describe_failure(read_only.value)
    assert describe_failure(ValueError("not ours")) is None


def test_binary_engrain_toml_is_a_one_line_cli_error(tmp_path):
    root = tmp_path / "proj"
    subprocess.run([*ENGRAIN, "init", str(root)], check=True, capture_output=True)
    (root / "engrain.toml").write_bytes(bytes(range(256)))

    result = subprocess.run([*ENGRAIN, "coverage", "-w", str(root)], capture_output=True, text=True, timeout=300)

    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "is not text" in result.stderr and "restore it" in result.stderr


def test_fresh_run_ids_are_valid(workspace):
    ws = workspace()
    record = training.runner.create(ws, backend="hf", base=None, stage=None, max_steps=1, include_pending=False)
    assert registry.run_dir(ws, record.id) == Path(ws.state_dir) / "runs" / record.id

"""One error -> exit status mapping for the whole CLI: `engrain --help` documents it and each documented status comes
from at least one real command (CliRunner in process; a subprocess for a real SIGINT)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import datagen
import pytest
from typer.testing import CliRunner

from engrain.cli import app

ENGRAIN = Path(sys.executable).parent / "engrain"
REJECTED = {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "hello"}]}

# command (WS = the workspace) -> the status it must end with, and what its message must say
CASES = [
    (["coverage", "-w", "WS"], 0, "tool-use"),
    (["import", "WS/rejected.jsonl", "-w", "WS"], 1, "1 rejected"),
    (["models", "show", "20990101-000000-abcd", "-w", "WS"], 2, "no training run"),
    (["train", "--backend", "hf", "--stage", "nope", "-w", "WS"], 2, "no stage 'nope'"),
    (["coverage", "--no-such-option"], 2, "No such option"),
    (["coverage", "-w", "EMPTY"], 2, "run `engrain init`"),
    (["models", "-w", "EMPTY"], 2, "run `engrain init`"),
    (["review", "--approve", "ex_nope", "-w", "WS"], 2, "ex_nope"),
    (["export", "--format", "openai", "--out", "EMPTY/out", "-w", "WS"], 2, "outside the workspace"),
    (["import", "WS/missing.jsonl", "-w", "WS"], 2, "does not exist"),
]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    datagen.init_workspace(tmp_path / "ws")
    (tmp_path / "ws" / "rejected.jsonl").write_text(json.dumps(REJECTED) + "\n")
    (tmp_path / "empty").mkdir()
    return {"WS": str(tmp_path / "ws"), "EMPTY": str(tmp_path / "empty")}


def documented() -> dict[int, str]:
    text = CliRunner().invoke(app, ["--help"]).output
    return {int(code): line for code, line in re.findall(r"^ {2,}(\d+) +(.+)$", text.split("Exit status")[1], re.M)}


def test_help_documents_every_exit_status():
    assert set(documented()) == {0, 1, 2, 130}
    assert "bad usage" in documented()[2] and "interrupted" in documented()[130]


@pytest.mark.parametrize(("args", "status", "says"), CASES, ids=[f"{c[0][0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_each_command_ends_with_the_documented_status(places, monkeypatch, args, status, says):
    monkeypatch.delenv("ENGRAIN_WORKSPACE", raising=False)
    monkeypatch.chdir(places["EMPTY"])
    args = [re.sub(r"^(WS|EMPTY)", lambda m: places[m.group(1)], a) for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == status, result.output
    assert says in result.output and "Traceback" not in result.output


def test_the_cases_cover_every_documented_status():
    assert {status for _, status, _ in CASES} | {130} == set(documented())


def test_ctrl_c_ends_a_command_with_130(places):
    fifo = Path(places["WS"]) / "stdin.jsonl"
    os.mkfifo(fifo)
    # SIGINT at its default, as a terminal delivers it (a background job inherits it ignored)
    proc = subprocess.Popen([ENGRAIN, "import", fifo, "-w", places["WS"]], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    held: list = []                                      # the writer stays open, so the reader sees no EOF
    writer = threading.Thread(target=lambda: held.append(open(fifo, "w")), daemon=True)  # returns once it reads
    writer.start()
    writer.join(120)
    assert held, "engrain import never opened the file"
    proc.send_signal(signal.SIGINT)                      # it now waits in read(): a user's Ctrl-C
    _, err = proc.communicate(timeout=120)
    held[0].close()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err

"""Acceptance 2: 16 concurrent importers lose and duplicate nothing; a writer killed with SIGKILL mid-import loses
none of the examples it reported accepted, and the database stays readable and writable. Both on SQLite and on
PostgreSQL (issue 16), with each backend's own integrity check."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

import datagen
from tests.datagen.conftest import (ENGRAIN, REPO, both_backends, engrain, integrity_problems, query, varied,
                                    write_jsonl)

WRITERS = 16
PER_WRITER = 100


def _env() -> dict:
    # The examples are random word salads over one vocabulary: keep the thresholds about copies, not topic overlap.
    return {**os.environ, "ENGRAIN_SEMANTIC_THRESHOLD": "0.99", "ENGRAIN_MINHASH_THRESHOLD": "0.9"}


@both_backends
@pytest.mark.timeout(1800)
def test_sixteen_concurrent_importers_store_exactly_every_example(ws, tmp_path):
    files = [write_jsonl(tmp_path / f"w{w}.jsonl", [varied(w * PER_WRITER + i) for i in range(PER_WRITER)])
             for w in range(WRITERS)]
    writers = [subprocess.Popen([*ENGRAIN, "import", f, "--json", "-w", ws.root], cwd=REPO, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    try:
        # 16 processes each loading torch and MiniLM on 2 shared cores: minutes, not seconds
        outputs = [w.communicate(timeout=1500) for w in writers]
    finally:
        for writer in writers:
            writer.kill()

    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err[-2000:]
        verdicts = [json.loads(line) for line in out.splitlines()]
        assert len(verdicts) == PER_WRITER and all(v["accepted"] for v in verdicts)
    assert integrity_problems(ws) == []
    assert query(ws, "SELECT count(*), count(DISTINCT content_hash) FROM examples") == [(1600, 1600)]
    assert datagen.list_examples(ws).total == WRITERS * PER_WRITER


@both_backends
def test_writer_killed_mid_import_loses_nothing_it_reported(ws, tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [varied(50_000 + i) for i in range(400)])
    writer = subprocess.Popen([*ENGRAIN, "import", path, "--json", "-w", ws.root], cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reported = []
    try:
        for line in writer.stdout:
            verdict = json.loads(line)
            if verdict["accepted"]:
                reported.append(verdict["id"])
            if len(reported) >= 40:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

    assert integrity_problems(ws) == []
    stored = {row[0] for row in query(ws, "SELECT id FROM examples")}
    assert set(reported) <= stored
    assert len(stored) < 400, "the writer finished before it was killed; nothing was tested"
    # still writable: the rest of the file imports; what the killed writer stored is reported as duplicates
    rerun = engrain("import", path, "--json", "-w", ws.root, env=_env())
    verdicts = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert sum(v["accepted"] for v in verdicts) == 400 - len(stored)
    assert datagen.list_examples(ws).total == 400

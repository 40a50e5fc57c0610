"""Embedding and the cosine search are shared between worker threads on free cores (datagen/parallel.py); how many
workers run changes no vector, no cosine and no verdict."""
from __future__ import annotations

import os

import numpy as np
import pytest

import datagen
from datagen import dedup, parallel
from tests.datagen.conftest import chat
from tests.datagen.test_dedup import ORIGINAL, PARAPHRASE

TEXTS = [f"Please {verb} the {noun} step in the {other} module; it {why}." for verb, noun, other, why in zip(
    "rename split extract inline cache validate retry profile".split() * 5,
    "parser config cache retry timeout queue worker schema index token".split() * 4,
    "billing export router ledger".split() * 10,
    ["is slow", "swallows errors", "grew past 300 lines", "holds a lock across I/O"] * 10)]


@pytest.fixture
def workers(monkeypatch):
    """Force the worker count dedup uses (it otherwise follows the machine's idle cores)."""
    def force(count: int) -> None:
        monkeypatch.setattr(parallel, "idle_workers", lambda pieces: max(1, min(pieces, count)))
    return force


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_workers_give_the_vectors_one_gives(workers, precision):
    assert len(TEXTS) == 40  # 3 chunks of at most 16 either way: the same chunks, so the same bits
    workers(1)
    alone = dedup._encode(TEXTS, "bundled", precision)
    workers(2)
    shared = dedup._encode(TEXTS, "bundled", precision)
    assert np.array_equal(alone, shared)
    assert np.allclose(np.linalg.norm(shared, axis=1), 1, atol=1e-5)


def test_the_search_split_between_workers_gives_the_same_cosines(workers):
    rng = np.random.default_rng(0)
    stored = rng.standard_normal((3 * dedup.SEARCH_BLOCK + 5, 384)).astype(np.float32)
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    index = dedup.Index(0.8, 0.9)
    index._append([f"ex_{i}" for i in range(len(stored))], np.zeros((len(stored), dedup.NUM_PERM), np.uint64), stored)
    queries = stored[:7] + 0.01 * rng.standard_normal((7, 384)).astype(np.float32)
    workers(1)
    alone = index.approximate_cosines(queries)
    workers(3)
    shared = index.approximate_cosines(queries)
    assert np.array_equal(alone, shared)
    assert np.abs(alone - queries @ stored.T).max() <= dedup.SEARCH_ERROR


def test_verdicts_do_not_depend_on_the_worker_count(tmp_path, workers):
    verdicts = []
    for count in (1, 2):
        workers(count)
        datagen.init_workspace(tmp_path / str(count))
        ws = datagen.find_workspace(tmp_path / str(count))
        batch = [ORIGINAL] + [chat(text, f"Done ({i}): changed as asked.") for i, text in enumerate(TEXTS[:20])]
        batch.append(PARAPHRASE)
        verdicts.append([(v.accepted, v.duplicate_of, v.reasons) for v in datagen.submit(ws, batch)])
    assert verdicts[0] == verdicts[1]
    assert verdicts[0][0][0] and verdicts[0][-1][1] is not None  # the paraphrase is caught either way


@pytest.mark.parametrize(("others", "load", "pieces", "expected"), [
    (0.0, 9.0, 64, 2), (0.25, 9.0, 64, 2), (0.35, 0.0, 64, 1), (1.0, 0.0, 64, 1), (1.8, 0.0, 64, 1),
    (0.0, 0.0, 1, 1), (None, 1.2, 64, 2), (None, 2.1, 64, 1)])
def test_a_core_is_free_when_other_processes_used_under_0_3_of_it(monkeypatch, others, load, pieces, expected):
    """`others`: cores' worth of CPU other processes used lately; without a sample yet (None) the load average
    decides, counting this process as one busy core."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(parallel, "_others_busy", lambda cores: others)
    assert parallel.idle_workers(pieces) == expected

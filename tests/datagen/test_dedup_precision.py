"""Submit embeds in bf16 where the CPU has it, yet every verdict is the one fp32 embeddings give: cosines within
2 * EMBED_ERROR of the threshold are redone in fp32 (dedup.settle_near_threshold)."""
from __future__ import annotations

import numpy as np
import pytest

import datagen
from datagen import dedup, store
from datagen.schema import Example
from tests.datagen.conftest import chat
from tests.datagen.test_dedup import ORIGINAL, PARAPHRASE

# Rewordings of one task at several distances: some above the default 0.9 cosine, some just below it.
TASKS = [
    ("The nightly export job crashes with a KeyError on 'customer_id' when an order has no customer. Can you fix it?",
     ["The nightly export job crashes with a KeyError on 'customer_id' when an order lacks a customer. Can you fix it?",
      "The nightly export job crashes with a KeyError when an order has no customer.",
      "Our nightly export blows up with KeyError: 'customer_id' whenever an order lacks a customer. Please fix that."]),
    ("Add a timeout option to load_config so slow disks don't hang startup.",
     ["Add a timeout setting to load_config so slow disks don't hang startup.",
      "Add a timeout option to load_config.",
      "load_config can block forever on a slow filesystem; give it a configurable timeout."]),
    ("Rename the variable tmp in parse_header to something meaningful.",
     ["Rename the variable tmp in parse_header to something descriptive.",
      "Rename tmp in parse_header.",
      "parse_header has a variable called tmp; pick a name that says what it holds."]),
]


def _verdicts(ws, monkeypatch, precision: str) -> list[tuple]:
    monkeypatch.setenv(dedup.PRECISION_ENV, precision)
    originals = [chat(task, f"Done: changed it as asked ({i}).") for i, (task, _) in enumerate(TASKS)]
    rewordings = [chat(text, f"Here is a different answer number {i}-{j}, written for this wording only.")
                  for i, (_, texts) in enumerate(TASKS) for j, text in enumerate(texts)]
    verdicts = datagen.submit(ws, originals) + datagen.submit(ws, rewordings)
    return [(v.accepted, v.duplicate_of, v.reasons[:1]) for v in verdicts]


def test_bf16_submit_gives_the_fp32_verdicts(tmp_path, monkeypatch):
    datagen.init_workspace(tmp_path / "a")
    datagen.init_workspace(tmp_path / "b")
    exact = _verdicts(datagen.find_workspace(tmp_path / "a"), monkeypatch, "fp32")
    fast = _verdicts(datagen.find_workspace(tmp_path / "b"), monkeypatch, "bf16")
    assert fast == exact
    assert any(not accepted for accepted, _, _ in exact) and sum(accepted for accepted, _, _ in exact) > len(TASKS)


def _moved(vector: np.ndarray, toward: np.ndarray, distance: float) -> np.ndarray:
    """A unit vector `distance` away from `vector` (a chord), rotated toward `toward` (or away, if negated)."""
    across = toward - (toward @ vector) * vector
    across /= np.linalg.norm(across)
    angle = 2 * np.arcsin(distance / 2)
    return (np.cos(angle) * vector + np.sin(angle) * across).astype(np.float32)


@pytest.mark.parametrize("side", [+1, -1], ids=["raw-cosine-over", "raw-cosine-under"])
def test_errors_up_to_the_bound_cannot_flip_a_verdict(ws, monkeypatch, side):
    """Worst case: both the candidate's and the stored vector are off by almost EMBED_ERROR, in the directions
    that carry their cosine across a threshold set just beside the fp32 cosine. The settled cosine is fp32's."""
    monkeypatch.setenv(dedup.PRECISION_ENV, "fp32")
    [original] = datagen.submit(ws, [ORIGINAL])
    text = dedup.semantic_text(Example.model_validate(PARAPHRASE))
    [candidate] = dedup.embed([text], ws.config.embedding_model)
    conn = store.connect(ws.database)
    stored = dedup.embed([dedup.semantic_text(store.get(conn, original.id).example)], ws.config.embedding_model)[0]
    true_cosine = float(candidate @ stored)
    index = dedup.Index(ws.config.minhash_threshold, true_cosine + side * 0.006)
    index.catch_up(conn)
    row = index.row_of[original.id]
    bound = 0.99 * dedup.EMBED_ERROR
    index.vectors[row] = _moved(stored, side * candidate, bound)
    approximate = _moved(candidate, side * stored, bound)
    raw = float(approximate @ index.vectors[row])
    assert (raw >= index.semantic_threshold) != (true_cosine >= index.semantic_threshold)  # would have flipped

    vectors, (_, rows, cosines) = dedup.search(conn, index, approximate[None, :], [text], ws.config.embedding_model)

    assert rows[0] == row
    assert cosines[0] == pytest.approx(true_cosine, abs=1e-5)
    assert (cosines[0] >= index.semantic_threshold) == (true_cosine >= index.semantic_threshold)
    np.testing.assert_allclose(index.vectors[row], stored, atol=1e-6)
    np.testing.assert_allclose(vectors[0], candidate, atol=1e-6)

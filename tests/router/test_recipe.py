"""The default head's recipe (router/recipe.py): the two-block blend is one linear head equal to the z-scored sum
of its parts, and calibration moves where the score crosses 0.5 without changing the ranking."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router import BUNDLED_HEAD, evaluate, features, recipe
from router.head import load_head
from router.scoring import head_scores

LABELS = Path(__file__).resolve().parents[2] / "router" / "data" / "labels.jsonl"


def _rows(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))                       # 4 "embedding" columns, then 2 cheap features
    y = (x[:, 0] + 0.5 * x[:, 4] + rng.normal(size=n) > 0).astype(int)
    rows = [evaluate.Labelled(f"p{i}", weak=float(1 - v), strong=1.0, group=f"g{i % 7}") for i, v in enumerate(y)]
    return rows, x


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_the_blend_is_the_z_scored_sum_of_its_two_heads(weight):
    rows, x = _rows()
    names = ["log_chars", "digit_share"]
    blended = recipe.train(rows, x=x, feature_names=names, embedding="emb", blend=weight)
    emb = recipe.train(rows, x=x[:, :4], feature_names=[], embedding="emb")
    cheap = recipe.train(rows, x=x[:, 4:], feature_names=names, embedding=None)
    za, zb = emb.logits(x[:, :4]), cheap.logits(x[:, 4:])
    expected = (za - za.mean()) / za.std() + weight * (zb - zb.mean()) / zb.std()
    assert np.allclose(blended.logits(x), expected, atol=1e-4)
    assert blended.blend == weight and blended.features == names and len(blended.weights) == 6


def test_a_joint_fit_when_no_blend_is_asked():
    rows, x = _rows()
    head = recipe.train(rows, x=x, feature_names=["log_chars", "digit_share"], embedding="emb")
    assert head.blend is None and len(head.weights) == 6


def test_calibration_sends_the_strong_share_over_0_5_and_keeps_the_ranking():
    rows = evaluate.load_labels(LABELS)
    head = load_head(BUNDLED_HEAD)
    before = head_scores(head, [r.prompt for r in rows])
    head.bias += 1.5                                       # a head whose scale is off for these prompts
    after = head_scores(recipe.calibrated(head, rows), [r.prompt for r in rows])
    share = np.mean([r.needs_strong for r in rows])
    assert abs(np.mean(after >= 0.5) - share) <= 1 / len(rows) and head.threshold == 0.5
    assert (np.argsort(before, kind="stable") == np.argsort(after, kind="stable")).all()


@pytest.mark.parametrize("text, expected", [
    ("Find x.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:", "Find x."),                 # MMLU's shape
    ("Pick one:\n  A. cat\nB. dog\nAnswer:  \n", "Pick one:"),               # indented choices, trailing space
    ("Line A. is not a choice\nAnswer:", "Line A. is not a choice"),          # only whole choice lines go
    ("A. first\nB. second\nWhich is right?", "A. first\nB. second\nWhich is right?"),   # no Answer: kept whole
    ("How do I reverse a list in Python?", "How do I reverse a list in Python?"),
])
def test_question_drops_only_a_multiple_choice_scaffold(text, expected):
    assert features.question(text) == expected


def test_the_head_reads_the_question_not_the_scaffold():
    head = load_head(BUNDLED_HEAD)
    stem = "What is the boiling point of water at sea level in degrees Celsius?"
    scaffolded = stem + "\nA. 90\nB. 100\nC. 110\nD. 120\nAnswer:"
    assert np.allclose(head_scores(head, [stem]), head_scores(head, [scaffolded]))

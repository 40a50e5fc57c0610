"""How a head is trained from labelled prompts, and how it is measured without scoring its own training data.

The default head is a blend of two heads fitted on the public MMLU labels (Mixtral as weak, GPT-4 as strong):
one over the static MiniLM embedding alone, strongly regularised, and one over prompt length + share of digits;
their logits are z-scored and summed with the cheap block weighing BLEND. A joint fit lets 384 embedding
weights learn MMLU's subjects (moral scenarios, law), which no chat prompt shares, and drown the length and
digit signal that does carry over; the blend keeps that signal. Every prompt is read without a multiple-choice
scaffold (features.question), so the fit cannot learn MMLU's format. BLEND and the features were chosen by MMLU
domain folds (train on some subjects, score the others), among recipes not backwards on the project's coding
prompts (bench/router_head.py); arena-bench is held out, never part of a choice. The coding prompts are a
sanity check, not training data; they set the threshold (calibrated()). Small outcome sets (router/learn.py)
use the joint fit: there the user's own prompts are the domain.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from router import evaluate, features, scoring
from router.evaluate import Labelled
from router.head import Head, fit, folds_of

DEFAULT_FEATURES = ["log_chars", "digit_share"]
BLEND = 4.0                  # weight of the cheap-feature block's z-scored logit against the embedding block's
L2_GRID = (1.0, 10.0, 100.0, 1000.0)
LARGE = 2000                 # above this many prompts L2 is fixed (a group-fold search over 14k prompts costs
EMBEDDING_L2 = (300.0,)      # minutes on a laptop); the embedding block is shrunk hard so it cannot learn MMLU's
FEATURE_L2 = (100.0,)        # subjects, both values by cross-set validation


def train(rows: Sequence[Labelled], *, feature_names: Sequence[str] = DEFAULT_FEATURES,
          embedding: str | None = scoring.BUNDLED_EMBEDDER, trained_on: str = "", x: np.ndarray | None = None,
          blend: float | None = None) -> Head:
    """A head fitted on `rows` (L2 by group-fold CV on small sets): one joint fit, or with `blend` (and both an
    embedding and features) the two-block blend. `x` may carry the rows' precomputed inputs."""
    names = list(feature_names)
    x = scoring.rows([r.prompt for r in rows], name=embedding, feature_names=names) if x is None else x
    y = np.array([r.needs_strong for r in rows], float)
    groups = [r.group for r in rows]
    if blend is None or not embedding or not names:
        return fit(x, y, embedding_model=embedding, feature_names=names, trained_on=trained_on,
                   l2_grid=FEATURE_L2 if len(rows) > LARGE else L2_GRID, groups=groups)
    width = x.shape[1] - len(names)
    big = len(rows) > LARGE
    emb = fit(x[:, :width], y, embedding_model=embedding, feature_names=[], groups=groups,
              l2_grid=EMBEDDING_L2 if big else L2_GRID)
    cheap = fit(x[:, width:], y, embedding_model=None, feature_names=names, groups=groups,
                l2_grid=FEATURE_L2 if big else L2_GRID)
    return _blended(emb, cheap, x, width, blend, trained_on)


def _blended(emb: Head, cheap: Head, x: np.ndarray, width: int, weight: float, trained_on: str) -> Head:
    """One linear head equal to z(emb) + weight * z(cheap), the z-scores taken over the training rows."""
    za, zb = emb.logits(x[:, :width]), cheap.logits(x[:, width:])
    sa, sb = float(za.std()) or 1.0, float(zb.std()) or 1.0
    bias = (emb.bias - float(za.mean())) / sa + weight * (cheap.bias - float(zb.mean())) / sb
    weights = [w / sa for w in emb.weights] + [weight * w / sb for w in cheap.weights]
    return Head(embedding_model=emb.embedding_model, features=cheap.features, mean=emb.mean + cheap.mean,
                std=emb.std + cheap.std, weights=weights, bias=bias, l2=emb.l2, blend=weight, trained_on=trained_on,
                n=emb.n, positives=emb.positives)


def calibrated(head: Head, rows: Sequence[Labelled]) -> Head:
    """The head with its bias moved so these prompts score >= 0.5 in the share that needs the strong model.
    Ranking (and so APGR) is unchanged: the project's coding prompts set where a chat-shaped prompt crosses
    over, without weighing in the fit (MMLU's long multiple-choice prompts put the fitted scale far from chat's),
    and a score keeps its meaning: 0.5 is the crossover."""
    scores = scoring.head_scores(head, [r.prompt for r in rows])
    cut = evaluate.threshold_for(scores, float(np.mean([r.needs_strong for r in rows])))
    head.bias -= float(np.log(cut / (1 - cut)))
    head.threshold = 0.5
    return head


def cross_validated_scores(rows: Sequence[Labelled], *, k: int = 5, seed: int = 0, x: np.ndarray | None = None,
                           **kwargs) -> np.ndarray:
    """Each prompt scored by a head that never saw its group (MMLU domain, task category) — or, with fewer
    than k groups, never saw the prompt. `kwargs` go to train(); `x` may carry the rows' inputs."""
    groups = [r.group for r in rows]
    folds = folds_of(len(rows), groups if len(set(groups)) >= k else None, k=k, seed=seed)
    names = list(kwargs.get("feature_names", DEFAULT_FEATURES))
    if x is None:
        x = scoring.rows([r.prompt for r in rows], name=kwargs.get("embedding", scoring.BUNDLED_EMBEDDER),
                         feature_names=names)
    scores = np.zeros(len(rows))
    for f in range(k):
        test = folds == f
        train_idx = np.flatnonzero(~test)
        if not test.any():
            continue
        part = [rows[i] for i in train_idx]
        if len({r.needs_strong for r in part}) < 2:   # one class only: nothing to learn, rank as the prior
            scores[test] = float(np.mean([r.needs_strong for r in part]))
            continue
        scores[test] = train(part, x=x[train_idx], **kwargs).predict(x[test])
    return scores


def topics(texts: Sequence[str]) -> list[str]:
    return [features.topic(t) for t in texts]

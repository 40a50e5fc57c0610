"""How a head is trained from labelled prompts, and how it is measured without scoring its own training data.

The default head: static MiniLM embedding + prompt length + share of digits, fitted on the public MMLU labels
(Mixtral as weak, GPT-4 as strong), with the project's coding prompts mixed in at a small weight so coding
chores stay local and system design goes strong. The feature set was picked by cross-set validation
(fit on MMLU, measure on arena-bench and the reverse; see bench/router_head.py), never on one set alone.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from router import features, scoring
from router.evaluate import Labelled
from router.head import Head, fit, folds_of

DEFAULT_FEATURES = ["log_chars", "digit_share"]
L2_GRID = (1.0, 10.0, 100.0, 1000.0)
LARGE = 2000                 # above this many prompts L2 stays at LARGE_L2 (chosen by cross-set validation; a
LARGE_L2 = (100.0,)          # group-fold search over 14k prompts costs minutes on a laptop and moved nothing)
EXTRA_SHARE = 0.1            # weight of the project's coding prompts against the public labels


def _class_weights(y: np.ndarray) -> np.ndarray:
    pos = y.mean()
    return np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos)) if 0 < pos < 1 else np.ones(len(y))


def train(rows: Sequence[Labelled], *, extra: Sequence[Labelled] = (), extra_share: float = EXTRA_SHARE,
          feature_names: Sequence[str] = DEFAULT_FEATURES, embedding: str | None = scoring.BUNDLED_EMBEDDER,
          trained_on: str = "", x: np.ndarray | None = None) -> Head:
    """A head fitted on `rows` (L2 by group-fold CV), with `extra` rows weighing `extra_share` of the total.
    `x` may carry the rows' precomputed inputs (rows then extra) to skip re-embedding."""
    everything = list(rows) + list(extra)
    names = list(feature_names)
    x = scoring.rows([r.prompt for r in everything], name=embedding, feature_names=names) if x is None else x
    y = np.array([r.needs_strong for r in everything], float)
    weight = np.ones(len(everything))
    if extra and rows:
        ym, ye = y[:len(rows)], y[len(rows):]
        # each part class-balanced on its own, then scaled to its share (fit re-balances the whole)
        weight[:len(rows)] = _class_weights(ym) * (1 - extra_share)
        weight[len(rows):] = _class_weights(ye) * extra_share * len(rows) / len(extra)
    return fit(x, y, embedding_model=embedding, feature_names=names, trained_on=trained_on,
               l2_grid=LARGE_L2 if len(everything) > LARGE else L2_GRID,
               groups=[r.group for r in everything], sample_weight=weight)


def cross_validated_scores(rows: Sequence[Labelled], *, k: int = 5, seed: int = 0, **kwargs) -> np.ndarray:
    """Each prompt scored by a head that never saw its group (MMLU domain, task category) — or, with fewer
    than k groups, never saw the prompt."""
    groups = [r.group for r in rows]
    folds = folds_of(len(rows), groups if len(set(groups)) >= k else None, k=k, seed=seed)
    names = list(kwargs.get("feature_names", DEFAULT_FEATURES))
    embedding = kwargs.get("embedding", scoring.BUNDLED_EMBEDDER)
    x = scoring.rows([r.prompt for r in rows], name=embedding, feature_names=names)
    extra = list(kwargs.get("extra", ()))
    x_extra = scoring.rows([r.prompt for r in extra], name=embedding, feature_names=names) if extra else x[:0]
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
        head = train(part, x=np.vstack([x[train_idx], x_extra]), **kwargs)
        scores[test] = head.predict(x[test])
    return scores


def topics(texts: Sequence[str]) -> list[str]:
    return [features.topic(t) for t in texts]

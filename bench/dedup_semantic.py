"""Precision and recall of the dedup layers on a labelled paraphrase set, against the lexical MinHash layer (the
anchor, in the same run).

    .venv/bin/python bench/dedup_semantic.py [--pairs bench/data/paraphrases.jsonl]

What the semantic layer is for: catching the *same task reworded* — a generator (Claude Code subagents, `engrain
generate`) asked for many examples drifts back to requests it already wrote, in new words. The lexical layer
(MinHash over word 3-grams) only sees copies; the semantic layer compares MiniLM embeddings of the user turns
(datagen.dedup.semantic_text), so it should flag a paraphrase while letting through a *different task on the same
topic* (a retry policy vs a timeout in the same module): those are the examples a dataset needs more of.

bench/data/paraphrases.jsonl holds 32 paraphrase pairs (same task, different words) and 32 hard negatives (same
file, API or vocabulary, a different task), written for this bench. Each pair is scored with the real code path:
`dedup.embed` (bundled MiniLM, normalised, cosine = dot product) and `dedup.minhash` (Jaccard estimate). The table
gives precision/recall/F1 for "flag as duplicate" at each semantic threshold, the MinHash layer at its default, and
both layers together as `submit` runs them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

THRESHOLDS = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


def scores(flagged: list[bool], truth: list[bool]) -> tuple[float, float, float]:
    tp = sum(f and t for f, t in zip(flagged, truth))
    fp = sum(f and not t for f, t in zip(flagged, truth))
    fn = sum(t and not f for f, t in zip(flagged, truth))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=ROOT / "bench" / "data" / "paraphrases.jsonl")
    args = parser.parse_args()
    from datagen import DatasetConfig
    from datagen import dedup

    pairs = [json.loads(line) for line in args.pairs.read_text(encoding="utf-8").splitlines() if line.strip()]
    truth = [bool(p["paraphrase"]) for p in pairs]
    defaults = DatasetConfig()
    vectors = dedup.embed([p["a"] for p in pairs] + [p["b"] for p in pairs], defaults.embedding_model)
    cosine = [float(vectors[i] @ vectors[len(pairs) + i]) for i in range(len(pairs))]
    jaccard = [dedup.minhash(p["a"]).jaccard(dedup.minhash(p["b"])) for p in pairs]
    lexical = [j >= defaults.minhash_threshold for j in jaccard]

    print(f"{len(pairs)} labelled pairs ({sum(truth)} paraphrases, {len(pairs) - sum(truth)} hard negatives)")
    print(f"{'layer':<34}{'precision':>10}{'recall':>8}{'F1':>6}")
    p, r, f = scores(lexical, truth)
    print(f"{'anchor: MinHash >= ' + str(defaults.minhash_threshold):<34}{p:>10.2f}{r:>8.2f}{f:>6.2f}")
    for threshold in THRESHOLDS:
        semantic = [c >= threshold for c in cosine]
        mark = "  (default)" if threshold == defaults.semantic_threshold else ""
        p, r, f = scores(semantic, truth)
        both = scores([s or x for s, x in zip(semantic, lexical)], truth)
        print(f"{f'MiniLM cosine >= {threshold:.2f}{mark}':<34}{p:>10.2f}{r:>8.2f}{f:>6.2f}"
              f"   with MinHash: P {both[0]:.2f} R {both[1]:.2f} F1 {both[2]:.2f}")
    positives = sorted(c for c, t in zip(cosine, truth) if t)
    negatives = sorted(c for c, t in zip(cosine, truth) if not t)
    print(f"cosine of paraphrases: min {positives[0]:.2f}, median {positives[len(positives) // 2]:.2f}; "
          f"of hard negatives: median {negatives[len(negatives) // 2]:.2f}, max {negatives[-1]:.2f}")


if __name__ == "__main__":
    main()

"""Rebuild the router's default head from the shared public labels, and measure it beside random and RouteLLM.

    .venv/bin/python bench/router_head.py [--data ../shared/data/routing] [--write]

1. Feature choice by cross-set validation: each candidate set is fitted on MMLU and measured on arena-bench,
   and fitted on arena-bench and measured on MMLU; the set with the best mean of both directions wins.
2. The default head: that set, fitted on MMLU (+ the project's coding prompts at a small weight), never on
   arena-bench. `--write` saves it to router/data/head.json.
3. The table: arena-bench (the head as shipped), MMLU by domain-fold cross-validation (5 folds of whole
   subjects: each prompt scored by a head that never saw its subject), the project's coding prompts by 5-fold
   CV; bootstrap 95% intervals; random and RouteLLM's published figures (MT-Bench, GPT-4 vs Mixtral) as anchors.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from router import evaluate, recipe  # noqa: E402
from router.head import save_head  # noqa: E402
from router.scoring import head_scores  # noqa: E402

CANDIDATES = {
    "embedding only": [],
    "embedding + length + digits": ["log_chars", "digit_share"],
    "embedding + topic + length + digits": ["topic_math", "topic_code", "topic_extraction", "topic_reasoning",
                                            "log_chars", "digit_share"],
    "embedding + all cheap features": None,
}
ROUTELLM = "RouteLLM mf (published, MT-Bench)"


def choose_features(mmlu, arena) -> list[str]:
    from router import features

    best, best_name, best_mean = None, "", -1.0
    print("cross-set validation (APGR): fit on one set, measure on the other")
    for name, cols in CANDIDATES.items():
        cols = features.NAMES if cols is None else cols
        a = evaluate.evaluate(head_scores(recipe.train(mmlu, feature_names=cols), [r.prompt for r in arena]), arena)
        m = evaluate.evaluate(head_scores(recipe.train(arena, feature_names=cols), [r.prompt for r in mmlu]), mmlu)
        mean = (a.apgr + m.apgr) / 2
        print(f"  {name:<40} MMLU->arena {a.apgr:.3f}   arena->MMLU {m.apgr:.3f}   mean {mean:.3f}", flush=True)
        if mean > best_mean:
            best, best_name, best_mean = cols, name, mean
    print(f"chosen: {best_name}")
    return best


def row(name: str, scores, labelled) -> str:
    ci = evaluate.bootstrap(scores, labelled)
    return (f"| {name} | {len(labelled)} | {ci['cpt50'].format('.1%')} | {ci['cpt80'].format('.1%')} | "
            f"{ci['apgr'].format('.3f')} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    ap.add_argument("--write", action="store_true", help="save the head to router/data/head.json")
    ap.add_argument("--features", help="comma-separated feature names: skip the cross-set selection")
    args = ap.parse_args()
    t0 = time.time()
    mmlu = evaluate.load_labels(args.data / "mmlu")
    arena = evaluate.load_labels(args.data / "arena-bench")
    project = evaluate.load_labels(ROOT / "router" / "data" / "labels.jsonl")
    cols = args.features.split(",") if args.features is not None else choose_features(mmlu, arena)
    head = recipe.train(mmlu, extra=project, feature_names=cols,
                        trained_on="MMLU (RouteLLM: Mixtral weak, GPT-4 strong) + router/data/labels.jsonl at "
                                   f"{recipe.EXTRA_SHARE:.0%} weight; features by cross-set validation")
    if args.write:
        print(f"wrote {save_head(head, ROOT / 'router' / 'data' / 'head.json')}")
    print("\n| set (method) | prompts | CPT(50%) | CPT(80%) | APGR |\n|---|---|---|---|---|")
    print(row("arena-bench (default head, never saw arena)", head_scores(head, [r.prompt for r in arena]), arena))
    mmlu_cv = recipe.cross_validated_scores(mmlu, extra=project, feature_names=cols)
    print(row("MMLU (domain-fold CV, 5 folds of subjects)", mmlu_cv, mmlu))
    # the same recipe with the roles swapped: folds over the project prompts, MMLU always in at 90% weight
    project_cv = recipe.cross_validated_scores(project, extra=mmlu, extra_share=1 - recipe.EXTRA_SHARE,
                                               feature_names=cols)
    print(row("project coding prompts (5-fold CV, with MMLU)", project_cv, project))
    print("| random (expected) | | 50.0% | 80.0% | 0.500 |")
    print(f"| {ROUTELLM} | 80 | 13.4% | | 0.800 |")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()

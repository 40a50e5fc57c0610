"""Quickstart recipe sweep: per-rule adherence of the fine-tuned model (no system prompt) against training time.

Anchor, in the same run: the base model with the full system prompt and without it, on the same held-out prompts.
Each setting trains the bundled workspace from scratch (LoRA rank, learning rate, sequence length, epochs or
steps), packages it as the quickstart does (merge, GGUF, q4_k_m) and replays the prompts greedily through the
router's llama.cpp provider, exactly as `engrain eval` does. Prints one table: setting, training seconds, final
loss, then passes/applicable per rule and "transferred k of n".

    python bench/quickstart_sweep.py                          # the default grid, all held-out prompts
    python bench/quickstart_sweep.py --prompts 16 --grid "r=16,lr=2e-3,seq=256,steps=40;r=32,lr=1e-3,seq=256,steps=40"

Numbers depend on the machine and its load: report them with the machine's state.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # the project's `router` package, not bench/router.py beside this script
QUICKSTART = REPO / "engrain" / "quickstart" / "workspace"
DEFAULT_GRID = ("r=16,lr=2e-3,seq=256,epochs=1;"      # the shipped recipe
                "r=16,lr=2e-3,seq=256,epochs=2;"
                "r=16,lr=2e-3,seq=192,epochs=2.5;"    # shorter rows buy half an epoch at the same cost
                "r=32,lr=1e-3,seq=256,epochs=2")
KEYS = {"r": "LORA_R", "lr": "LEARNING_RATE", "seq": "MAX_SEQ_LEN", "epochs": "EPOCHS"}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=DEFAULT_GRID, help="settings separated by ';', each k=v pairs: "
                        "r, lr, seq, epochs, steps")
    parser.add_argument("--prompts", type=int, default=0, help="use every Nth-spread subset of N prompts (0 = all)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--workspace", type=Path, default=None)
    return parser.parse_args()


def setting(text: str) -> dict[str, str]:
    pairs = dict(part.split("=", 1) for part in text.split(",") if part.strip())
    unknown = set(pairs) - set(KEYS) - {"steps"}
    if unknown:
        raise SystemExit(f"unknown setting keys {sorted(unknown)}; use r, lr, seq, epochs, steps")
    return pairs


def workspace(root: Path):
    import datagen

    datagen.init_workspace(root, template=QUICKSTART, force=True)
    ws = datagen.find_workspace(root)
    datagen.add_knowledge(ws, [QUICKSTART / "sources"])
    for path in sorted((QUICKSTART / "examples").glob("*.jsonl")):
        list(datagen.import_file(ws, path, status="approved"))
    return ws


def subset(prompts: list, n: int) -> list:
    if not n or n >= len(prompts):
        return prompts
    step = len(prompts) / n
    return [prompts[int(i * step)] for i in range(n)]


def train_and_eval(ws, values: dict[str, str], prompts, base, max_tokens: int, with_prompt: bool):
    import router
    import training
    from training import eval as evaluation

    for key, env in KEYS.items():
        os.environ.pop(f"ENGRAIN_TRAINING_{env}", None)
        if key in values:
            os.environ[f"ENGRAIN_TRAINING_{env}"] = values[key]
    started = time.monotonic()
    record = training.train(ws, backend="auto", max_steps=int(values["steps"]) if "steps" in values else None)
    seconds = time.monotonic() - started
    record = training.package(ws, record.id)
    tuned = router.ModelConfig(name="finetuned", provider="llamacpp", model=record.artifacts["gguf"],
                               context_window=8192, supports_tools=False)
    report = evaluation.evaluate(ws, record.id, base=base, finetuned=tuned, prompts=prompts, max_tokens=max_tokens,
                                 base_with_prompt=with_prompt)
    return record, seconds, report


def with_anchor(v, anchor):
    from training.eval_stats import verdict

    reference = next(a for a in anchor.rules if a.rule == v.rule).arms["base_with_prompt"]
    return verdict(v.rule, v.kind, v.description, {"base_with_prompt": reference, **v.arms})


def row(name: str, seconds: float, loss: str, report, arm: str) -> str:
    cells = []
    for v in report.rules:
        stat = v.arms.get(arm)
        cells.append("—" if not stat or not stat.applicable else f"{stat.passed}/{stat.applicable}")
    verdicts = f"{report.behaviours_transferred}/{sum(v.substantive for v in report.rules)}" \
        if arm == "finetuned_without_prompt" else "anchor"
    return f"| {name} | {seconds:.0f} | {loss} | " + " | ".join(cells) + f" | {verdicts} |"


def main() -> None:
    args = parse_arguments()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import router
    from training import eval as evaluation

    root = args.workspace or Path(tempfile.mkdtemp(prefix="engrain-sweep-"))
    ws = workspace(root)
    prompts = subset(evaluation.load_prompts(QUICKSTART / "eval_prompts.jsonl"), args.prompts)
    base = router.ModelConfig(name="base", provider="llamacpp", model=str(router.bundled_gguf()),
                              context_window=8192, supports_tools=False)
    lines, anchor = [], None
    for n, text in enumerate(args.grid.split(";")):
        values = setting(text)
        record, seconds, report = train_and_eval(ws, values, prompts, base, args.max_tokens, with_prompt=anchor is None)
        if anchor is None:
            anchor = report
            header = "| setting | train s | loss | " + " | ".join(v.rule for v in report.rules) + " | transferred |"
            lines += [header, "|" + "---|" * (header.count("|") - 1)]
            for arm in ("base_with_prompt", "base_without_prompt"):
                lines.append(row(arm.replace("_", " "), 0, "—", report, arm))
        else:   # the base-with-prompt arm ran once, in the anchor: judge transfer against it
            report.rules = [with_anchor(v, anchor) for v in report.rules]
            report.behaviours_transferred = sum(bool(v.transferred) for v in report.rules)
        loss = f"{record.losses[0]:.2f}→{record.losses[-1]:.2f}" if record.losses else "—"
        lines.append(row(text, seconds, loss, report, "finetuned_without_prompt"))
        print("\n".join(lines), flush=True)
        print(json.dumps({"setting": text, "train_s": round(seconds), **report.headline()}), file=sys.stderr)
    print(f"\n{len(prompts)} held-out prompts, max {args.max_tokens} tokens, workspace {root}")


if __name__ == "__main__":
    main()

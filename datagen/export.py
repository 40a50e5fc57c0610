"""Exports: OpenAI chat JSONL, Alpaca JSON, ShareGPT JSONL, mlx-lm train/valid/test.jsonl, HF datasets on disk."""
from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Literal

from datagen import store
from datagen.errors import DatagenError
from datagen.formats import to_alpaca, to_openai, to_sharegpt
from datagen.schema import Example, ExportResult

ExportFormat = Literal["openai", "alpaca", "sharegpt", "mlx", "hf"]


def export(ws, fmt: ExportFormat, out: Path, *, status: str = "approved", split: float = 0.9, seed: int = 0,
           force: bool = False, categories: list[str] | None = None) -> ExportResult:
    """Write the examples with `status` ('all' for every one) to `out` (relative: to the workspace root), split
    per category with `seed`. Without `force`, `out` must lie inside the workspace."""
    if fmt not in ("openai", "alpaca", "sharegpt", "mlx", "hf"):
        raise DatagenError(f"unknown export format {fmt!r}; use openai, alpaca, sharegpt, mlx or hf")
    if not 0 < split <= 1:
        raise DatagenError(f"split must be in (0, 1], got {split}")
    out = ws.root / Path(out).expanduser()
    out = out.resolve() if force else ws.inside(out)
    examples = [s.example for s in store.iter_examples(store.connect(ws.db_path), status=status,
                                                       categories=categories)]
    if not examples:
        raise DatagenError(f"no {status} examples to export; check `engrain coverage` or pass --status")
    names = ("train", "valid", "test") if fmt == "mlx" else ("train", "valid")
    splits = stratified_split(examples, split, seed, names)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        return _export_hf(out, splits)
    counts, files, skipped = {}, [], 0
    for name, part in splits.items():
        if fmt == "mlx":
            rows = [to_openai(e) for example in part for e in per_assistant_turn(example)]
        elif fmt == "openai":
            rows = [to_openai(e) for e in part]
        elif fmt == "sharegpt":
            rows = [to_sharegpt(e) for e in part]
        else:
            converted = [to_alpaca(e) for e in part]
            rows = [r for r in converted if r is not None]
            skipped += len(converted) - len(rows)
        if not rows and name != "train":
            continue
        path = out / (f"{name}.json" if fmt == "alpaca" else f"{name}.jsonl")
        with path.open("w", encoding="utf-8") as handle:
            if fmt == "alpaca":
                json.dump(rows, handle, ensure_ascii=False, indent=1)
            else:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        files.append(str(path))
        counts[name] = len(rows)
    return ExportResult(format=fmt, out=str(out), files=files, counts=counts, skipped=skipped)


def stratified_split(examples: list[Example], split: float, seed: int,
                     names: tuple[str, ...]) -> dict[str, list[Example]]:
    """Each category shuffled with `seed` and cut the same way; what is not train is shared by the other splits.

    A category with a single example goes to train, so every category the plan teaches is trained on.
    """
    by_category: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_category[example.category or ""].append(example)
    rng = random.Random(seed)
    splits: dict[str, list[Example]] = {name: [] for name in names}
    for category in sorted(by_category):
        group = by_category[category]
        rng.shuffle(group)
        if split == 1 or len(group) == 1:
            n_train = len(group)
        else:
            n_train = min(len(group) - 1, max(1, round(len(group) * split)))
        splits[names[0]] += group[:n_train]
        rest = group[n_train:]
        others = names[1:]
        for i, example in enumerate(rest):
            splits[others[i % len(others)]].append(example)
    return splits


def per_assistant_turn(example: Example) -> list[Example]:
    """One example per assistant message (the conversation up to it), because mlx-lm's --mask-prompt trains only
    the last message: without this, earlier assistant turns of a tool-use trajectory would never be learned."""
    ends = [i for i, m in enumerate(example.messages) if m.role == "assistant"]
    return [example.model_copy(update={"messages": example.messages[:end + 1]}) for end in ends]


def _export_hf(out: Path, splits: dict[str, list[Example]]) -> ExportResult:
    from datasets import Dataset, DatasetDict

    def rows(part: list[Example]) -> list[dict]:
        # Arrow needs one schema: every message gets every field, tools (free-form JSON schemas) stay a string.
        return [{
            "messages": [{"role": m.role, "content": m.content or "", "tool_call_id": m.tool_call_id or "",
                          "tool_calls": [c.model_dump() for c in m.tool_calls or []]} for m in e.messages],
            "tools": json.dumps(e.tools or []),
            "category": e.category or "",
            "meta": json.dumps(e.meta),
        } for e in part]

    names = {"train": "train", "valid": "validation"}
    dataset = DatasetDict({names[k]: Dataset.from_list(rows(v)) for k, v in splits.items() if v})
    dataset.save_to_disk(str(out))
    return ExportResult(format="hf", out=str(out), files=[str(out)],
                        counts={k: len(v) for k, v in dataset.items()})

"""Exports: engrain's native JSONL, OpenAI chat JSONL, Alpaca JSON, ShareGPT JSONL, mlx-lm train/valid/test.jsonl,
HF datasets on disk."""
from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Literal

from datagen import store
from datagen import safefs
from datagen.errors import DatagenError, PathOutsideWorkspace
from datagen.formats import SIDECAR_SUFFIX, our_fields, to_alpaca, to_hf, to_mlx, to_native, to_openai, to_sharegpt
from datagen.schema import Example, ExportResult

ExportFormat = Literal["native", "openai", "alpaca", "sharegpt", "mlx", "hf"]
FORMATS = ("native", "openai", "alpaca", "sharegpt", "mlx", "hf")


def export(ws, fmt: ExportFormat, out: Path, *, status: str = "approved", split: float = 0.9, seed: int = 0,
           force: bool = False, categories: list[str] | None = None, reviews: bool = True) -> ExportResult:
    """Write the examples with `status` ('all' for every one) to `out` (relative: to the workspace root), split
    per category with `seed` (native: one file, unsplit, with the review history unless `reviews` is off).
    Without `force`, `out` must lie inside the workspace."""
    if fmt not in FORMATS:
        raise DatagenError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    if not 0 < split <= 1:
        raise DatagenError(f"split must be in (0, 1], got {split}")
    root, out = _destination(ws, out, force)
    rows = list(store.iter_examples(store.connect(ws.database), status=status, categories=categories))
    if not rows:
        raise DatagenError(f"no {status} examples to export; check `engrain coverage` or pass --status")
    if fmt == "native":
        return _export_native(ws, root, out, rows, reviews, force)
    examples = [s.example for s in rows]
    names = ("train", "valid", "test") if fmt == "mlx" else ("train", "valid")
    splits = stratified_split(examples, split, seed, names)
    if fmt == "hf":
        return _export_hf(root, out, splits, force)
    # every file this export may write is checked before the first is written: a refusal leaves nothing half-done
    safefs.refuse_existing(root, [out / f"{n}{e}" for n in names for e in (".json", ".jsonl", SIDECAR_SUFFIX)],
                           force=force)
    counts, files, skipped = {}, [], 0
    for name, part in splits.items():
        if fmt == "mlx":
            rows = [to_mlx(e, prefix=n < len(turns) - 1) for example in part
                    for turns in [per_assistant_turn(example)] for n, e in enumerate(turns)]
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
        with safefs.open_for_write(root, path, force=force) as handle:
            if fmt == "alpaca":
                json.dump(rows, handle, ensure_ascii=False, indent=1)
            else:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if fmt == "openai":  # OpenAI's file checks refuse unknown keys: our fields go beside the file
            _write_jsonl(root, out / f"{name}{SIDECAR_SUFFIX}", [our_fields(e) for e in part], force)
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


def _destination(ws, out: Path, force: bool) -> tuple[Path, Path]:
    """(the folder every write is anchored at, the output folder), judged on the path's text: inside the
    workspace each component below its root is opened without following links; elsewhere (only with `force`)
    the output folder's parent is the anchor."""
    out = Path(os.path.normpath(ws.root / Path(out).expanduser()))
    if out == ws.root or ws.root in out.parents:
        return ws.root, out
    if not force:
        raise PathOutsideWorkspace(f"{out} is outside the workspace {ws.root}; choose a path inside it or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent.resolve(), out.parent.resolve() / out.name


def _export_hf(root: Path, out: Path, splits: dict[str, list[Example]], force: bool) -> ExportResult:
    from datasets import Dataset, DatasetDict

    names = {"train": "train", "valid": "validation"}
    dataset = DatasetDict({names[k]: Dataset.from_list([to_hf(e) for e in v]) for k, v in splits.items() if v})
    safefs.prepare_folder(root, out, force=force)
    dataset.save_to_disk(str(out))
    return ExportResult(format="hf", out=str(out), files=[str(out)],
                        counts={k: len(v) for k, v in dataset.items()})


def _export_native(ws, root: Path, out: Path, rows: list, reviews: bool, force: bool) -> ExportResult:
    """One JSONL line per stored example, in commit order: ids, status, timestamps, generator and (optionally)
    review events — what `engrain import` needs to restore the workspace's dataset exactly."""
    conn = store.connect(ws.database)
    full = [store.get(conn, s.id) if reviews else s for s in rows]
    path = out / "engrain.jsonl"
    _write_jsonl(root, path, [to_native(s, reviews=reviews) for s in full], force)
    return ExportResult(format="native", out=str(out), files=[str(path)], counts={"all": len(full)})


def _write_jsonl(root: Path, path: Path, rows: list[dict], force: bool) -> None:
    with safefs.open_for_write(root, path, force=force) as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

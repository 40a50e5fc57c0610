"""Training data: exported from the workspace by datagen, tokenized with our chat template, packed."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.chat import TRAIN_TEMPLATE, normalize
from training.errors import NoTrainingData

IGNORE = -100


def statuses(include_pending: bool) -> tuple[str, ...]:
    return ("approved", "pending") if include_pending else ("approved",)


def snapshot(ws, include_pending: bool) -> str:
    import hashlib

    from datagen import snapshot_hash

    hashes = [snapshot_hash(ws, status=s) for s in statuses(include_pending)]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


def export(ws, out: Path, fmt: str, *, categories: list[str] | None, include_pending: bool,
           seed: int) -> dict[str, Path]:
    """Write the stage's examples in `fmt` (openai or mlx) under `out`; returns split name -> file."""
    from datagen import DatagenError
    from datagen import export as datagen_export

    files: dict[str, list[Path]] = {}
    for status in statuses(include_pending):
        try:
            result = datagen_export(ws, fmt, out / status, status=status, split=0.9, seed=seed, force=True,
                                    categories=categories or None)
        except DatagenError:
            if status == "approved" and not include_pending:
                raise
            continue
        for f in map(Path, result.files):
            files.setdefault(f.stem, []).append(f)
    if "train" not in files:
        which = " or ".join(statuses(include_pending))
        scope = f" in categories {categories}" if categories else ""
        raise NoTrainingData(f"no {which} examples{scope} to train on; approve some (`engrain review`) "
                             "or pass --include-pending")
    merged = {}
    for name, parts in files.items():
        merged[name] = out / f"{name}.jsonl"
        merged[name].write_text("".join(p.read_text(encoding="utf-8") for p in parts), encoding="utf-8")
    return merged


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Row:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    @property
    def trained(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def tokenize(tokenizer, records: list[dict], *, max_seq_len: int, assistant_only: bool) -> tuple[list[Row], list[str]]:
    """One Row per example; labels are IGNORE outside assistant turns when `assistant_only`.

    An example longer than max_seq_len is cut back to the end of its last assistant turn that fits, so it
    still teaches the model to stop (a row cut mid-reply never shows <|im_end|>; with many such rows a small
    model learns to ramble to max_tokens). Only when no assistant turn ends within max_seq_len is it cut
    mid-turn, which still teaches the turn's opening.
    """
    rows, warnings, at_turn, mid_reply = [], [], 0, 0
    for record in records:
        r = normalize(record)
        out = tokenizer.apply_chat_template(r["messages"], tools=r["tools"], chat_template=TRAIN_TEMPLATE,
                                            tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        if len(ids) > max_seq_len:
            ends = [i + 1 for i in range(max_seq_len) if mask[i] and (i + 1 == len(mask) or not mask[i + 1])]
            cut = ends[-1] if ends else max_seq_len
            at_turn, mid_reply = at_turn + bool(ends), mid_reply + (not ends)
            ids, mask = ids[:cut], mask[:cut]
        labels = [t if (m or not assistant_only) else IGNORE for t, m in zip(ids, mask)]
        if not any(m for m in mask):
            continue
        rows.append(Row(ids, labels, list(range(len(ids)))))
    if at_turn:
        warnings.append(f"{at_turn} example(s) longer than max_seq_len={max_seq_len} tokens were cut after their "
                        "last assistant turn that fits")
    if mid_reply:
        warnings.append(f"{mid_reply} example(s) have no assistant turn ending within max_seq_len={max_seq_len} "
                        "tokens and were cut mid-turn; raise max_seq_len to train their endings")
    if len(rows) < len(records):
        warnings.append(f"{len(records) - len(rows)} example(s) had no assistant tokens left to train on")
    return rows, warnings


def pack(rows: list[Row], max_seq_len: int) -> list[Row]:
    """First-fit-decreasing packing: examples share sequences, positions restart at each example.

    transformers builds a block-diagonal causal mask from restarting position_ids when no attention mask is
    given, so packed examples do not see each other.
    """
    bins: list[Row] = []
    for row in sorted(rows, key=lambda r: len(r.input_ids), reverse=True):
        for b in bins:
            if len(b.input_ids) + len(row.input_ids) <= max_seq_len:
                b.input_ids += row.input_ids
                b.labels += row.labels
                b.position_ids += row.position_ids
                break
        else:
            bins.append(Row(list(row.input_ids), list(row.labels), list(row.position_ids)))
    return bins


def batches(rows: list[Row], batch_size: int, seed: int, epoch: int) -> list[list[Row]]:
    order = list(rows)
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(batch: list[Row], pad_id: int) -> dict[str, Any]:
    """Tensors for one micro-batch, right-padded; padding is masked and labelled IGNORE."""
    import torch

    width = max(len(r.input_ids) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(batch), width), dtype=torch.long)
    for i, r in enumerate(batch):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        pos[i, :n] = torch.tensor(r.position_ids)
        pos[i, n:] = torch.arange(width - n)  # padding forms its own "example": it never attends to real tokens
    return {"input_ids": ids, "labels": labels, "position_ids": pos,
            "tokens": sum(len(r.input_ids) for r in batch)}

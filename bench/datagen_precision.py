"""Does bf16 embedding change what counts as a duplicate? Run through `bench/datagen.py --check-precision TASKS`.

Each of TASKS bench tasks (bench/datagen.py's synthetic user turns) is reworded three ways that land around the
0.9 threshold: one word swapped, two words swapped, the first sentence only. Printed, against fp32 (the anchor):
1. how far a bf16 vector is from its fp32 vector (the bound dedup.EMBED_ERROR must exceed), over every text;
2. on the (task, rewording) pairs whose fp32 cosine is within 0.05 of the threshold, how many verdicts raw bf16
   cosines would flip, and how many flip once near-threshold cosines are settled in fp32 as submit does;
3. end to end: the tasks, then the rewordings, submitted to two fresh workspaces, one with fp32 embeddings and
   one with auto (bf16 + settling); every verdict (accepted, duplicate of, reason) compared.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import datagen
from bench.datagen import NOUNS, VERBS, synthetic
from datagen import dedup

CHECK_BASE = 2_000_000_000  # task seeds, apart from the throughput bench's
NEAR = 0.05


def reworded(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = text.split()
    one = words[:]
    one[rng.randrange(len(one))] = rng.choice(NOUNS)
    two = words[:]
    i, j = rng.sample(range(len(two)), 2)
    two[i], two[j] = rng.choice(NOUNS), rng.choice(VERBS)
    return [" ".join(one), " ".join(two), text.split("?")[0] + "?"]


def check(tasks: int) -> None:
    texts = [synthetic(CHECK_BASE + i)["messages"][0]["content"] for i in range(tasks)]
    variants = [v for i, text in enumerate(texts) for v in reworded(text, i)]
    dedup.embed(["warm up the model"], "bundled", "bf16")
    started = time.perf_counter()
    exact = dedup.embed(texts + variants, "bundled", "fp32")
    fp32_s = time.perf_counter() - started
    started = time.perf_counter()
    approx = dedup.embed(texts + variants, "bundled", "bf16")
    bf16_s = time.perf_counter() - started
    error = np.linalg.norm(approx - exact, axis=1)
    print(f"{len(exact)} texts: fp32 {len(exact) / fp32_s:.0f} texts/s, bf16 {len(exact) / bf16_s:.0f} texts/s "
          f"(load average {os.getloadavg()[0]:.1f}); |bf16 - fp32| max {error.max():.4f}, p99 "
          f"{np.quantile(error, 0.99):.4f}, mean {error.mean():.4f}; bound EMBED_ERROR {dedup.EMBED_ERROR}")
    _pairs(exact, approx, tasks)
    _end_to_end(texts, variants)


def _pairs(exact: np.ndarray, approx: np.ndarray, tasks: int) -> None:
    threshold = datagen.DatasetConfig().semantic_threshold
    base = np.repeat(np.arange(tasks), 3)
    other = tasks + np.arange(3 * tasks)
    fp32 = (exact[base] * exact[other]).sum(axis=1)
    bf16 = (approx[base] * approx[other]).sum(axis=1)
    near = np.abs(fp32 - threshold) <= NEAR
    truth = fp32[near] >= threshold
    raw = bf16[near] >= threshold
    settled = np.where(bf16[near] >= threshold - 2 * dedup.EMBED_ERROR, truth, False)
    print(f"pairs with fp32 cosine within {NEAR} of {threshold}: {near.sum()} ({truth.sum()} duplicates); "
          f"|cosine bf16 - fp32| max {np.abs(bf16 - fp32)[near].max():.4f}; verdicts changed: raw bf16 "
          f"{(raw != truth).sum()}, settled as submit does {(settled != truth).sum()}; "
          f"settled in fp32: {(bf16[near] >= threshold - 2 * dedup.EMBED_ERROR).sum()}")


def _end_to_end(texts: list[str], variants: list[str]) -> None:
    records = [_example(t, i) for i, t in enumerate(texts)] + [_example(t, len(texts) + i)
                                                              for i, t in enumerate(variants)]
    work = Path(tempfile.mkdtemp(prefix="engrain-precision-"))
    try:
        verdicts = {}
        for mode in ("fp32", "auto"):
            datagen.init_workspace(work / mode)
            ws = datagen.find_workspace(work / mode)
            os.environ.pop(dedup.PRECISION_ENV, None)
            if mode == "fp32":
                os.environ[dedup.PRECISION_ENV] = "fp32"
            verdicts[mode] = [(v.accepted, v.duplicate_of, v.reasons[:1]) for start in range(0, len(records), 64)
                              for v in datagen.submit(ws, records[start:start + 64])]
            os.environ.pop(dedup.PRECISION_ENV, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    changed = sum(a != b for a, b in zip(verdicts["fp32"], verdicts["auto"]))
    semantic = sum(bool(r) and r[0].startswith("semantic") for _, _, r in verdicts["fp32"])
    print(f"end to end: {len(records)} submits ({semantic} semantic near-duplicates under fp32); verdicts that "
          f"differ between fp32 and auto: {changed}")


def _example(user: str, seed: int) -> dict:
    """`user` with an answer of its own, so that only the user turn (the semantic layer) can make it a duplicate."""
    record = synthetic(CHECK_BASE + 10_000_000 + seed)
    record["messages"][0]["content"] = user
    return record

"""Static MiniLM: one vector per vocabulary token, distilled once from the bundled MiniLM, served by model2vec.

A prompt then costs a tokenizer call and a mean of rows (~0.1 ms) instead of a transformer pass (~25 ms on
2 cores, which made the routing decision the router's whole overhead). Distillation is model2vec's recipe:
each token through MiniLM alone, mean-pooled, then weighted by Zipf/SIF so frequent tokens count less.
It is done here rather than with model2vec's `distill` extra because that extra pins transformers<5.4,
below what the training stack needs; PCA is skipped, so vectors keep MiniLM's 384 dimensions and no
component sign can differ between machines (the shipped head was fitted on these exact columns).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

_SIF = 1e-4
_BATCH = 1024


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "engrain"


def load(source: str) -> Any:
    """model2vec StaticModel distilled from the sentence-transformers folder `source` (cached on disk)."""
    from model2vec import StaticModel

    stat = (Path(source) / "model.safetensors").stat()
    key = hashlib.sha256(f"{Path(source).resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:10]
    out = cache_dir() / f"static-{Path(source).name}-{key}"
    if not (out / "config.json").is_file():
        _distill(Path(source), out)
    return StaticModel.from_pretrained(str(out))


def _distill(source: Path, out: Path) -> None:
    import torch
    from model2vec import StaticModel
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(source)).eval()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    size = tokenizer.get_vocab_size()
    vectors = np.zeros((size, model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in range(0, size, _BATCH):
            ids = torch.arange(start, min(size, start + _BATCH))
            batch = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], 1)
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch),
                           token_type_ids=torch.zeros_like(batch)).last_hidden_state
            vectors[start:start + len(ids)] = hidden.mean(1).numpy()
    rank = np.arange(2, size + 2, dtype=np.float64)
    proba = (1 / rank) / np.sum(1 / rank)
    vectors *= (_SIF / (_SIF + proba))[:, None].astype(np.float32)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True, max_length=256).save_pretrained(str(tmp))
    try:
        tmp.rename(out)
    except OSError:                      # another process distilled it first: theirs is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

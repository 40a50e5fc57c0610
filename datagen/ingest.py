"""Submitting examples: convert, validate, dedup (all three layers), store — one verdict per record.

The expensive work (validation, MinHash, embeddings) happens before the write lock, and candidates that are
lexical copies of committed examples are rejected before they are embedded; inside one write transaction
(store.transaction: the database's single writer lock) the index catches up with other writers, each candidate
is judged against everything committed plus the batch's earlier candidates, and the batch commits. Verdicts are
returned only after the commit, so an accepted example is durable when its verdict is seen.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import MinHash

from datagen import dedup, store
from datagen.errors import DatagenError
from datagen.formats import PREFIX_KEY, FormatError, native_row, read_records, to_canonical
from datagen.schema import Example, StoredExample, Verdict
from datagen.untrusted import record_problem
from datagen.validate import validate

IMPORT_BATCH = 32


@dataclass
class _Candidate:
    verdict: Verdict
    example: Example | None = None
    content_hash: str = ""
    signature: MinHash | None = None
    vector: np.ndarray | None = None
    native: StoredExample | None = None   # a native-format record: its status, generator, times and reviews


def submit(ws, records: Iterable[dict[str, Any] | Example], *, generator: str = "cli", status: str = "pending",
           category: str | None = None) -> list[Verdict]:
    """Store every record that passes; `category` fills in records that carry none."""
    return _submit_batch(ws, list(enumerate(records)), generator=generator, status=status, category=category)


def import_file(ws, path: Path | str, *, category: str | None = None, status: str = "pending",
                generator: str = "import") -> Iterator[Verdict]:
    """Verdicts in file order, yielded batch by batch as each batch commits."""
    if not Path(path).exists():
        raise DatagenError(f"{path} does not exist; pass a JSON or JSONL file of examples, or an export folder")
    records = read_records(Path(path))
    while batch := list(itertools.islice(records, IMPORT_BATCH)):
        yield from _submit_batch(ws, batch, generator=generator, status=status, category=category)


def _submit_batch(ws, records: list[tuple[int, Any]], *, generator: str, status: str,
                  category: str | None) -> list[Verdict]:
    config = ws.config
    candidates = [_prepare(index, record, ws, category) for index, record in records]
    fresh = [c for c in candidates if c.example is not None]
    if not fresh:
        return [c.verdict for c in candidates]
    conn = store.connect(ws.database)
    known = store.ids_for_hashes(conn, [c.content_hash for c in fresh])
    for candidate in fresh:
        if candidate.content_hash in known:
            _reject(candidate, f"exact duplicate of {known[candidate.content_hash]}", known[candidate.content_hash])
    index = dedup.index_for(ws.database, config.minhash_threshold, config.semantic_threshold)
    fresh = _without_lexical_copies(conn, index, fresh)
    if not fresh:
        return [c.verdict for c in candidates]
    texts = [dedup.semantic_text(c.example) for c in fresh]
    vectors = dedup.embed(texts, config.embedding_model, dedup.fast_precision(config.embedding_model))
    with index.lock:
        try:
            with store.transaction(conn):
                index.catch_up(conn)
                stored = store.ids_for_hashes(conn, [c.content_hash for c in fresh])
                vectors, (searched, rows, cosines) = dedup.search(conn, index, vectors, texts,
                                                                  config.embedding_model)
                for candidate, vector, row, cosine in zip(fresh, vectors, rows, cosines):
                    candidate.vector = vector
                    _judge_and_store(conn, index, candidate, (searched, int(row), float(cosine)), stored,
                                     generator=generator, status=status)
        except BaseException:
            dedup.forget_index(index)  # it may hold rows that were rolled back
            raise
    return [c.verdict for c in candidates]


def _without_lexical_copies(conn, index: dedup.Index, fresh: list[_Candidate]) -> list[_Candidate]:
    """Reject, before paying for their embeddings, candidates whose MinHash matches an example already committed:
    the index only grows, so the write transaction would reject them the same way. Catching up here, outside the
    writer lock, reads committed rows only (a prefix in seq order), so other writers are not kept waiting while
    a new process loads the whole index."""
    with index.lock:
        index.catch_up(conn)
        for candidate in fresh:
            lexical = index.lexical_duplicate(candidate.signature)
            if lexical:
                _reject(candidate, *lexical)
    return [c for c in fresh if c.example is not None]


def _prepare(index: int, record: Any, ws, category: str | None) -> _Candidate:
    verdict = Verdict(index=index, accepted=False)
    if isinstance(record, FormatError):
        verdict.reasons = [str(record)]
        return _Candidate(verdict)
    problem = None if isinstance(record, Example) else record_problem(record)
    if problem:
        verdict.reasons = [problem]
        return _Candidate(verdict)
    if isinstance(record, dict) and record.get(PREFIX_KEY):
        verdict.skipped = True
        verdict.reasons = ["a per-turn prefix written by an mlx export; its whole conversation is a later record"]
        return _Candidate(verdict)
    try:
        native = native_row(record) if isinstance(record, dict) else None
        raw = record.wire() if isinstance(record, Example) else to_canonical(record)
    except (FormatError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        verdict.reasons = [f"cannot read this record: {exc}"]
        return _Candidate(verdict)
    if category and not raw.get("category"):
        raw["category"] = category
    example, reasons = validate(raw, ws.config)
    reasons += _unknown_refs(ws, raw.get("source_refs"))
    if example is None or reasons:
        verdict.reasons = reasons
        return _Candidate(verdict)
    return _Candidate(verdict, example, dedup.content_hash(example), dedup.minhash(dedup.lexical_text(example)),
                      native=native)


def _unknown_refs(ws, refs: Any) -> list[str]:
    """Citations must name stored knowledge chunks, or a reviewer cannot check what the example claims."""
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        return [] if refs is None else ["source_refs must be a list of knowledge chunk ids (strings)"]
    unknown = sorted(set(refs) - store.known_chunk_ids(store.connect(ws.database), refs))
    return [f"source_refs names unknown knowledge chunk {ref!r}; cite ids from the brief "
            "(`engrain knowledge list`), or add the source first (`engrain knowledge add`)" for ref in unknown]


def _reject(candidate: _Candidate, reason: str, duplicate_of: str | None = None) -> None:
    candidate.verdict.reasons = [reason]
    candidate.verdict.duplicate_of = duplicate_of
    candidate.example = None


def _judge_and_store(conn, index: dedup.Index, candidate: _Candidate, closest: tuple[int, int, float],
                     stored: dict[str, str], *, generator: str, status: str) -> None:
    """Judge one candidate against everything committed and this batch's earlier ones; store it if it passes.
    `stored` maps content hashes already in the database (read once per batch, under the writer lock) to ids,
    and gains each example stored here."""
    existing = stored.get(candidate.content_hash)
    if existing:
        _reject(candidate, f"exact duplicate of {existing}", existing)
        return
    near = index.near_duplicate(candidate.signature, candidate.vector, closest)
    if near:
        _reject(candidate, *near)
        return
    example = candidate.example
    native = candidate.native
    if native is not None:
        status, generator = native.status, native.generator
    example.meta.setdefault("generator", generator)
    example_id = "ex_" + candidate.content_hash[:16]
    seq = store.insert_example(conn, example_id=example_id, content_hash=candidate.content_hash, example=example,
                               status=status, generator=generator,
                               minhash=dedup.signature_bytes(candidate.signature),
                               embedding=candidate.vector.astype(np.float32).tobytes())
    if native is not None:
        store.restore_history(conn, example_id, created_at=native.created_at, updated_at=native.updated_at,
                              reviews=native.reviews)
    if status != "pending" and not (native and native.reviews):
        store.add_review(conn, example_id, kind="decision", verdict="approve" if status == "approved" else "reject",
                         reviewer=generator, notes=f"{status} on submit", score=None)
    index.add(example_id, seq, candidate.signature, candidate.vector)
    stored[candidate.content_hash] = example_id
    candidate.verdict.accepted = True
    candidate.verdict.id = example_id

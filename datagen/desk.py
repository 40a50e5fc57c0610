"""The review desk: what a reviewing person needs beyond the CLI's paging — a filtered queue that pages by key,
decisions and edits that refuse to overwrite a newer decision (optimistic concurrency), the edit history, and
an example's nearest stored neighbours."""
from __future__ import annotations

import hashlib
import json

import numpy as np
from pydantic import BaseModel, Field

from datagen import dedup, review_store, store
from datagen.errors import DatagenError, ReviewConflict
from datagen.rules import check_rules
from datagen.schema import Example, ReviewEvent, Status
from datagen.validate import validate

PREVIEW_CHARS = 140
RULE_SCAN_BATCH = 2000
TEXT_COUNT_CAP = 1000


class QueueFilter(BaseModel):
    category: str | None = None
    status: Status | None = Field("pending", description="None lists every status")
    generator: str | None = None
    text: str | None = Field(None, description="substring of the example's JSON (ASCII letters match either case)")
    rule: str | None = Field(None, description="only examples that break this rule under the current plan")


class QueueItem(BaseModel):
    seq: int
    id: str
    status: Status
    category: str
    generator: str
    created_at: float
    preview: str
    turns: int
    tool_calls: int


class QueuePage(BaseModel):
    items: list[QueueItem]
    total: int
    more: bool = Field(False, description="a text search counted only up to `total`; more match")
    has_prev: bool
    has_next: bool


class Revision(BaseModel):
    revision: int
    content_hash: str
    example: Example
    review_id: int
    created_at: float


class Neighbour(BaseModel):
    id: str
    similarity: float
    status: Status
    category: str
    preview: str


class EditResult(BaseModel):
    saved: bool
    reasons: list[str] = Field(default_factory=list)
    duplicate_of: str | None = None
    event: ReviewEvent | None = None
    revision: int | None = None


def _conn(ws):
    return review_store.connect(ws.database)


def _index(ws) -> dedup.Index:
    """The same in-memory dedup index submit uses in this process (keyed by the database)."""
    return dedup.index_for(ws.database, ws.config.minhash_threshold, ws.config.semantic_threshold)


def preview(example: Example) -> str:
    text = next((m.content or "" for m in example.messages if m.role == "user"), "")
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def _item(row: tuple) -> QueueItem:
    seq, example_id, status, category, generator, created_at, data = row
    example = Example.model_validate_json(data)
    return QueueItem(seq=seq, id=example_id, status=status, category=category, generator=generator,
                     created_at=created_at, preview=preview(example), turns=len(example.messages),
                     tool_calls=sum(len(m.tool_calls or []) for m in example.messages))


def _where(ws, conn, filters: QueueFilter) -> tuple[str, list]:
    rule = None
    if filters.rule:
        names = [r.name for r in ws.config.rules]
        if filters.rule not in names:
            raise DatagenError(f"no rule named {filters.rule!r} in the plan; rules: {', '.join(names) or 'none'}")
        rule = (_rules_key(ws), filters.rule)
        _scan_rules(ws, conn, rule[0])
    return review_store.queue_where(category=filters.category, status=filters.status, generator=filters.generator,
                                    text=filters.text, rule=rule)


def queue_page(ws, filters: QueueFilter, *, after: int | None = None, before: int | None = None,
               limit: int = 50) -> QueuePage:
    """A page of the filtered queue in storage order: the rows after seq `after` (or before seq `before`)."""
    conn = _conn(ws)
    where, params = _where(ws, conn, filters)
    limit = max(1, min(limit, 500))
    rows = review_store.keyset_rows(conn, where, params, after=after, before=before, limit=limit)
    items = [_item(r) for r in rows]
    has_prev = bool(items) and review_store.exists_where(conn, where, params, before=items[0].seq)
    has_next = bool(items) and review_store.exists_where(conn, where, params, after=items[-1].seq)
    if not items and before is not None:
        has_next = review_store.exists_where(conn, where, params, after=before - 1)
    cap = TEXT_COUNT_CAP if filters.text else None
    total = review_store.count_where(conn, where, params, cap)
    return QueuePage(items=items, total=min(total, cap or total), more=cap is not None and total > cap,
                     has_prev=has_prev, has_next=has_next)


def adjacent_example(ws, filters: QueueFilter, example_id: str, *, forward: bool = True) -> str | None:
    """The id of the queue's next (or previous) example after `example_id` under `filters`, if any."""
    conn = _conn(ws)
    seq = review_store.seq_of(conn, example_id)
    if seq is None:
        return None
    where, params = _where(ws, conn, filters)
    rows = review_store.keyset_rows(conn, where, params, after=seq if forward else None,
                                    before=None if forward else seq, limit=1)
    return rows[0][1] if rows else None


def example_version(ws, example_id: str) -> int:
    """What a decision form carries: the id of the latest decision or edit event (0 when none)."""
    return review_store.version(_conn(ws), example_id)


def _check_version(conn, example_id: str, expected: int | None) -> None:
    current = review_store.version(conn, example_id)
    if expected is None or current == expected:
        return
    latest = next(e for e in reversed(store.get(conn, example_id).reviews) if e.id == current)
    what = "edited" if latest.kind == "edit" else f"{latest.verdict}d"
    notes = f" ({latest.notes})" if latest.notes else ""
    raise ReviewConflict(f"{latest.reviewer} {what} example {example_id}{notes} after you opened it; nothing was "
                         "saved. Reload the example to see the current version, then decide again.")


def decide(ws, example_id: str, verdict: str, *, reviewer: str, notes: str = "",
           expected_version: int | None = None) -> ReviewEvent:
    """Approve or reject; with `expected_version`, refuse (ReviewConflict) when someone decided or edited since."""
    if verdict not in ("approve", "reject"):
        raise DatagenError(f"verdict must be 'approve' or 'reject', not {verdict!r}")
    if not reviewer.strip():
        raise DatagenError("a decision needs the reviewer's name")
    conn = _conn(ws)
    with store.transaction(conn):
        store.get(conn, example_id)
        _check_version(conn, example_id, expected_version)
        return store.add_review(conn, example_id, kind="decision", verdict=verdict, reviewer=reviewer, notes=notes,
                                score=None)


def edit_example(ws, example_id: str, record: dict, *, reviewer: str, notes: str = "",
                 expected_version: int | None = None) -> EditResult:
    """Replace an example's content with `record` after validation and dedup against every *other* example; the
    replaced content is kept as a revision and the edit is a review event. Status is unchanged."""
    if not reviewer.strip():
        raise DatagenError("an edit needs the reviewer's name")
    _check_version(_conn(ws), example_id, expected_version)  # again under the write lock; first, before embedding
    example, reasons = validate(record, ws.config)
    if example is None:
        return EditResult(saved=False, reasons=reasons)
    content_hash = dedup.content_hash(example)
    signature = dedup.minhash(dedup.lexical_text(example))
    vector = dedup.embed([dedup.semantic_text(example)], ws.config.embedding_model)[0]
    index = _index(ws)
    conn = _conn(ws)
    with index.lock:
        try:
            with store.transaction(conn):
                return _store_edit(conn, index, example_id, example, content_hash, signature, vector,
                                   reviewer=reviewer, notes=notes, expected_version=expected_version,
                                   model_name=ws.config.embedding_model)
        except BaseException:
            dedup.forget_index(index)  # it may hold rows of a rolled-back write
            raise


def _store_edit(conn, index: dedup.Index, example_id: str, example: Example, content_hash: str, signature,
                vector: np.ndarray, *, reviewer: str, notes: str, expected_version: int | None,
                model_name: str) -> EditResult:
    store.get(conn, example_id)
    _check_version(conn, example_id, expected_version)
    old_hash, old_data = review_store.current_content(conn, example_id)
    if old_hash == content_hash:
        return EditResult(saved=False, reasons=["nothing changed: the edit has the same messages and tools"])
    other = store.ids_for_hashes(conn, [content_hash]).get(content_hash)
    if other:
        return EditResult(saved=False, reasons=[f"exact duplicate of {other}"], duplicate_of=other)
    index.catch_up(conn)
    # stored rows may hold bf16 vectors: fp32 for every cosine near the threshold, as submit does
    [vector], _ = dedup.search(conn, index, vector[None, :], [dedup.semantic_text(example)], model_name)
    near = _near_duplicate_of_other(index, example_id, signature, vector)
    if near:
        return EditResult(saved=False, reasons=[near[0]], duplicate_of=near[1])
    example.meta.setdefault("generator", json.loads(old_data).get("meta", {}).get("generator", "human"))
    event = store.add_review(conn, example_id, kind="edit", verdict="edit", reviewer=reviewer, notes=notes,
                             score=None)
    revision = review_store.add_revision(conn, example_id, content_hash=old_hash, data=old_data, review_id=event.id)
    review_store.replace_content(conn, example_id, content_hash=content_hash, category=example.category or "",
                                 data=example.model_dump_json(exclude_none=True),
                                 minhash=dedup.signature_bytes(signature),
                                 embedding=vector.astype(np.float32).tobytes())
    _reindex(index, example_id, signature, vector)
    return EditResult(saved=True, event=event, revision=revision)


def _near_duplicate_of_other(index: dedup.Index, example_id: str, signature, vector) -> tuple[str, str] | None:
    candidates = [c for c in index.lsh.query(signature) if c != example_id]
    if candidates:
        jaccard = (index.signatures[[index.row_of[c] for c in candidates]] == signature.hashvalues).mean(axis=1)
        best = int(np.argmax(jaccard))
        if jaccard[best] >= index.minhash_threshold:
            return f"near-duplicate (MinHash Jaccard ~{jaccard[best]:.2f}) of {candidates[best]}", candidates[best]
    cosine = _cosines(index, vector, exclude=example_id)
    if len(cosine) and cosine.max() >= index.semantic_threshold:
        row = int(cosine.argmax())
        return f"semantic near-duplicate (cosine {cosine[row]:.2f}) of {index.ids[row]}", index.ids[row]
    return None


def _cosines(index: dedup.Index, vector: np.ndarray, *, exclude: str) -> np.ndarray:
    cosine = index.vectors[:len(index.ids)] @ vector if index.ids else np.zeros(0, np.float32)
    if exclude in index.row_of:
        cosine[index.row_of[exclude]] = -np.inf
    return cosine


def _reindex(index: dedup.Index, example_id: str, signature, vector: np.ndarray) -> None:
    """This process's index now holds the edited content. Other processes keep the old signature of this row
    until they restart (their catch-up reads new rows only): at worst they judge against the pre-edit text."""
    row = index.row_of.get(example_id)
    if row is None:
        return
    index.lsh.remove(example_id)
    index.lsh.insert(example_id, signature)
    index.signatures[row] = signature.hashvalues.astype(np.uint64)
    index.set_vectors([row], vector[None, :])


def example_revisions(ws, example_id: str) -> list[Revision]:
    """The contents an example had before each edit, oldest first."""
    conn = _conn(ws)
    return [Revision(revision=r, content_hash=h, example=Example.model_validate_json(d), review_id=e, created_at=t)
            for r, h, d, e, t in review_store.revisions(conn, example_id)]


def nearest_examples(ws, example_id: str, k: int = 5) -> list[Neighbour]:
    """The `k` stored examples whose task (user turns) is closest to this one's, by MiniLM cosine."""
    index = _index(ws)
    conn = _conn(ws)
    with index.lock:
        index.catch_up(conn)
        row = index.row_of.get(example_id)
        if row is None:
            return []
        cosine = _cosines(index, index.vectors[row].copy(), exclude=example_id)
        best = np.argsort(-cosine)[:k] if len(cosine) else []
        found = [(index.ids[i], float(cosine[i])) for i in best if np.isfinite(cosine[i])]
    neighbours = []
    for other, similarity in found:
        stored = store.get(conn, other)
        neighbours.append(Neighbour(id=other, similarity=round(similarity, 3), status=stored.status,
                                    category=stored.example.category or "", preview=preview(stored.example)))
    return neighbours


def rejection_reasons(ws, limit: int = 20) -> list[tuple[str, int]]:
    """Reject decisions grouped by their notes, most frequent first."""
    return [(notes or "(no reason given)", n)
            for notes, n in review_store.reject_reasons(_conn(ws), limit)]


def example_generators(ws) -> list[str]:
    return review_store.generators(_conn(ws))


def _rules_key(ws) -> str:
    rules = json.dumps([r.model_dump() for r in ws.config.rules], sort_keys=True)
    return hashlib.sha256(rules.encode()).hexdigest()[:16]


def _scan_rules(ws, conn, rules_key: str) -> None:
    """Check the current rules against rows not yet checked under them (stored examples passed the rules of
    their day; a changed plan can make old ones fail)."""
    position = review_store.rule_scan_position(conn, rules_key)
    while rows := review_store.rows_to_check(conn, position, RULE_SCAN_BATCH):
        failures = []
        for _, example_id, data in rows:
            example = Example.model_validate_json(data)
            failures += [(example_id, r.name) for r in check_rules(ws.config.rules, example.messages,
                                                                   example.category or "")
                         if r.applicable and not r.passed]
        position = rows[-1][0]
        with store.transaction(conn):
            review_store.record_rule_scan(conn, rules_key, position, iter(failures))

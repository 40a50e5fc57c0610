"""The SQLite store (.engrain/engrain.db) that many processes write at once.

WAL lets readers run beside the one writer; every write is a `BEGIN IMMEDIATE` transaction, so the writer
lock is taken before anything is read and a check-then-insert cannot interleave with another process's.
synchronous=FULL makes a committed example survive power loss, not just a killed process.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datagen.errors import ExampleNotFound
from datagen.schema import Example, ExamplePage, ReviewEvent, StoredExample

BUSY_TIMEOUT_MS = 120_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- commit order: the dedup index catches up by seq
    id TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    generator TEXT NOT NULL,
    data TEXT NOT NULL,                      -- the Example as JSON
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    minhash BLOB NOT NULL,                   -- uint64 MinHash signature
    embedding BLOB NOT NULL                  -- normalized float32 vector
);
CREATE INDEX IF NOT EXISTS examples_by_category ON examples(category, status);
CREATE INDEX IF NOT EXISTS examples_by_status ON examples(status, seq);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    example_id TEXT NOT NULL REFERENCES examples(id),
    kind TEXT NOT NULL,                      -- decision (changes status) | suggestion (a judge's opinion)
    verdict TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    notes TEXT NOT NULL,
    score REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_example ON reviews(example_id, id);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks(source, ordinal);
"""

_local = threading.local()


def connect(db_path: Path) -> sqlite3.Connection:
    """This thread's connection to the database, created (with its schema) on first use."""
    key = (os.getpid(), str(db_path))
    connections = _local.__dict__.setdefault("connections", {})
    if key not in connections:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        with transaction(conn):
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
        connections[key] = conn
    return connections[key]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_example(conn: sqlite3.Connection, *, example_id: str, content_hash: str, example: Example,
                   status: str, generator: str, minhash: bytes, embedding: bytes) -> int:
    now = time.time()
    cursor = conn.execute(
        "INSERT INTO examples (id, content_hash, category, status, generator, data, created_at, updated_at,"
        " minhash, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (example_id, content_hash, example.category, status, generator, example.model_dump_json(exclude_none=True),
         now, now, minhash, embedding),
    )
    return cursor.lastrowid


def ids_for_hashes(conn: sqlite3.Connection, hashes: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(hashes), 500):
        batch = hashes[start:start + 500]
        marks = ",".join("?" * len(batch))
        found.update(conn.execute(f"SELECT content_hash, id FROM examples WHERE content_hash IN ({marks})", batch))
    return found


def signatures_after(conn: sqlite3.Connection, seq: int) -> Iterator[tuple[int, str, bytes, bytes]]:
    return conn.execute("SELECT seq, id, minhash, embedding FROM examples WHERE seq > ? ORDER BY seq", (seq,))


def add_review(conn: sqlite3.Connection, example_id: str, *, kind: str, verdict: str, reviewer: str,
               notes: str, score: float | None) -> ReviewEvent:
    now = time.time()
    cursor = conn.execute(
        "INSERT INTO reviews (example_id, kind, verdict, reviewer, notes, score, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)", (example_id, kind, verdict, reviewer, notes, score, now))
    if kind == "decision":
        status = "approved" if verdict == "approve" else "rejected"
        conn.execute("UPDATE examples SET status = ?, updated_at = ? WHERE id = ?", (status, now, example_id))
    return ReviewEvent(id=cursor.lastrowid, example_id=example_id, kind=kind, verdict=verdict, reviewer=reviewer,
                       notes=notes, score=score, created_at=now)


def restore_history(conn: sqlite3.Connection, example_id: str, *, created_at: float, updated_at: float,
                    reviews: list[ReviewEvent]) -> None:
    """An imported native row keeps its timestamps and review events (the status was stored with the row)."""
    conn.execute("UPDATE examples SET created_at = ?, updated_at = ? WHERE id = ?", (created_at, updated_at,
                                                                                     example_id))
    for event in reviews:
        conn.execute("INSERT INTO reviews (example_id, kind, verdict, reviewer, notes, score, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", (example_id, event.kind, event.verdict, event.reviewer,
                                                       event.notes, event.score, event.created_at))


def known_chunk_ids(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        found.update(r[0] for r in conn.execute(
            f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(batch))})", batch))
    return found


_COLUMNS = "id, status, created_at, updated_at, content_hash, generator, data"


def _stored(row: tuple) -> StoredExample:
    example_id, status, created, updated, content_hash, generator, data = row
    return StoredExample(id=example_id, status=status, created_at=created, updated_at=updated,
                         content_hash=content_hash, generator=generator, example=Example.model_validate_json(data))


def get(conn: sqlite3.Connection, example_id: str) -> StoredExample:
    row = conn.execute(f"SELECT {_COLUMNS} FROM examples WHERE id = ?", (example_id,)).fetchone()
    if row is None:
        raise ExampleNotFound(f"no example with id {example_id!r}; list ids with `engrain review`")
    stored = _stored(row)
    stored.reviews = [
        ReviewEvent(id=r[0], example_id=example_id, kind=r[1], verdict=r[2], reviewer=r[3], notes=r[4],
                    score=r[5], created_at=r[6])
        for r in conn.execute("SELECT id, kind, verdict, reviewer, notes, score, created_at FROM reviews"
                              " WHERE example_id = ? ORDER BY id", (example_id,))
    ]
    return stored


def _filters(category: str | None, status: str | None, categories: list[str] | None = None) -> tuple[str, list]:
    clauses, params = [], []
    if category is not None:
        clauses.append("category = ?")
        params.append(category)
    if categories is not None:
        clauses.append(f"category IN ({','.join('?' * len(categories))})")
        params.extend(categories)
    if status not in (None, "all"):
        clauses.append("status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def page(conn: sqlite3.Connection, *, category: str | None, status: str | None, offset: int,
         limit: int) -> ExamplePage:
    where, params = _filters(category, status)
    total = conn.execute(f"SELECT count(*) FROM examples{where}", params).fetchone()[0]
    rows = conn.execute(f"SELECT {_COLUMNS} FROM examples{where} ORDER BY seq LIMIT ? OFFSET ?",
                        [*params, limit, offset])
    return ExamplePage(total=total, offset=offset, limit=limit, items=[_stored(r) for r in rows])


def iter_examples(conn: sqlite3.Connection, *, status: str | None,
                  categories: list[str] | None = None) -> Iterator[StoredExample]:
    where, params = _filters(None, status, categories)
    for row in conn.execute(f"SELECT {_COLUMNS} FROM examples{where} ORDER BY seq", params).fetchall():
        yield _stored(row)


def counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(c, s): n for c, s, n in conn.execute(
        "SELECT category, status, count(*) FROM examples GROUP BY category, status")}


def recent(conn: sqlite3.Connection, category: str, limit: int) -> list[Example]:
    rows = conn.execute("SELECT data FROM examples WHERE category = ? ORDER BY seq DESC LIMIT ?", (category, limit))
    return [Example.model_validate_json(data) for (data,) in rows]


def content_hashes(conn: sqlite3.Connection, status: str | None) -> list[str]:
    where, params = _filters(None, status)
    return [h for (h,) in conn.execute(f"SELECT content_hash FROM examples{where} ORDER BY content_hash", params)]


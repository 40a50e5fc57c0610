"""The dataset store: SQLite (.engrain/engrain.db, the default) or PostgreSQL (`[dataset] database_url`).

Many processes write at once. Every write is one transaction that first takes the database's single writer lock
(SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock, see datagen/postgres.py), so a check-then-insert cannot
interleave with another process's and rows commit in `seq` order. SQLite runs in WAL mode (readers beside the
writer) with synchronous=FULL, so a committed example survives power loss, not just a killed process; PostgreSQL
commits durably by default. The SQL below is SQLite's dialect; a PostgreSQL connection translates it.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Union

from datagen import migrations
from datagen.errors import DatagenError, ExampleNotFound
from datagen.schema import Example, ExamplePage, ReviewEvent, StoredExample

if TYPE_CHECKING:
    from datagen.postgres import PgConnection

BUSY_TIMEOUT_MS = 120_000
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"

Connection = Union[sqlite3.Connection, "PgConnection"]
IntegrityError = sqlite3.IntegrityError  # what a unique-constraint violation raises on either backend

_local = threading.local()


def connect(database: Path | str) -> Connection:
    """This thread's connection to `database` (a SQLite path or a postgresql:// URL; see `Workspace.database`),
    opened and migrated to the latest schema on first use."""
    key = (os.getpid(), str(database))
    connections = _local.__dict__.setdefault("connections", {})
    if key not in connections:
        conn = open_database(database)
        migrate(conn)
        connections[key] = conn
    return connections[key]


def open_database(database: Path | str) -> Connection:
    """A new connection (not cached, not migrated): a postgresql:// URL, a sqlite:/// URL, or a SQLite path."""
    target = str(database)
    if target.startswith(POSTGRES_SCHEMES):
        from datagen.postgres import PgConnection

        return PgConnection(target)
    if "://" in target and not target.startswith(SQLITE_SCHEME):
        raise DatagenError(f"unsupported database URL {target.split('://')[0]}://…; use postgresql://USER@HOST/DB "
                           "or sqlite:///PATH")
    path = Path(target.removeprefix(SQLITE_SCHEME)).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def backend(conn: Connection) -> str:
    return "sqlite" if isinstance(conn, sqlite3.Connection) else conn.backend


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """One write transaction holding the database's writer lock; rolled back on any error."""
    if not isinstance(conn, sqlite3.Connection):
        with conn.write_transaction():
            yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: Connection) -> list[migrations.Migration]:
    """Apply the migrations this database lacks (all in one transaction); returns those applied."""
    with transaction(conn):
        conn.execute(migrations.MIGRATIONS_TABLE)
        done = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
        if done and max(done) > migrations.LATEST:
            raise DatagenError(f"the database's schema is version {max(done)}, newer than this engrain knows "
                               f"({migrations.LATEST}); upgrade engrain on this machine")
        pending = [m for m in migrations.MIGRATIONS if m.version not in done]
        for migration in pending:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                         (migration.version, migration.name, time.time()))
    return pending


def schema_version(conn: Connection) -> int:
    return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0


def insert_example(conn: Connection, *, example_id: str, content_hash: str, example: Example,
                   status: str, generator: str, minhash: bytes, embedding: bytes) -> int:
    now = time.time()
    cursor = conn.execute(
        "INSERT INTO examples (id, content_hash, category, status, generator, data, created_at, updated_at,"
        " minhash, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (example_id, content_hash, example.category, status, generator, example.model_dump_json(exclude_none=True),
         now, now, minhash, embedding),
    )
    return cursor.lastrowid


def ids_for_hashes(conn: Connection, hashes: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(hashes), 500):
        batch = hashes[start:start + 500]
        marks = ",".join("?" * len(batch))
        found.update(conn.execute(f"SELECT content_hash, id FROM examples WHERE content_hash IN ({marks})", batch))
    return found


def signatures_after(conn: Connection, seq: int) -> Iterator[tuple[int, str, bytes, bytes]]:
    return conn.execute("SELECT seq, id, minhash, embedding FROM examples WHERE seq > ? ORDER BY seq", (seq,))


def examples_by_id(conn: Connection, ids: list[str]) -> dict[str, Example]:
    found: dict[str, Example] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        found.update((example_id, Example.model_validate_json(data)) for example_id, data in conn.execute(
            f"SELECT id, data FROM examples WHERE id IN ({','.join('?' * len(batch))})", batch))
    return found


def add_review(conn: Connection, example_id: str, *, kind: str, verdict: str, reviewer: str,
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


def get(conn: Connection, example_id: str) -> StoredExample:
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


def page(conn: Connection, *, category: str | None, status: str | None, offset: int,
         limit: int) -> ExamplePage:
    where, params = _filters(category, status)
    total = conn.execute(f"SELECT count(*) FROM examples{where}", params).fetchone()[0]
    rows = conn.execute(f"SELECT {_COLUMNS} FROM examples{where} ORDER BY seq LIMIT ? OFFSET ?",
                        [*params, limit, offset])
    return ExamplePage(total=total, offset=offset, limit=limit, items=[_stored(r) for r in rows])


def iter_examples(conn: Connection, *, status: str | None,
                  categories: list[str] | None = None) -> Iterator[StoredExample]:
    where, params = _filters(None, status, categories)
    for row in conn.execute(f"SELECT {_COLUMNS} FROM examples{where} ORDER BY seq", params).fetchall():
        yield _stored(row)


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    return {(c, s): n for c, s, n in conn.execute(
        "SELECT category, status, count(*) FROM examples GROUP BY category, status")}


def recent(conn: Connection, category: str, limit: int) -> list[Example]:
    rows = conn.execute("SELECT data FROM examples WHERE category = ? ORDER BY seq DESC LIMIT ?", (category, limit))
    return [Example.model_validate_json(data) for (data,) in rows]


def content_hashes(conn: Connection, status: str | None) -> list[str]:
    where, params = _filters(None, status)
    return [h for (h,) in conn.execute(f"SELECT content_hash FROM examples{where} ORDER BY content_hash", params)]


"""Database maintenance: migrate a workspace's database, copy a whole dataset between databases (and verify it).

A copy moves every row of every dataset table (examples with their dedup signatures and embeddings, review
events, knowledge chunks, and whatever tables later migrations add) into an empty database migrated to the same
schema, keeping ids and `seq` values, all in one transaction on each side. Before the target commits, it is
compared with the source: per table the row count and an order-independent digest of every row, and the set of
example content hashes. A difference rolls the target back and raises.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel

from datagen import store
from datagen.errors import DatagenError

BATCH = 1000


class TableCopy(BaseModel):
    table: str
    rows: int
    digest: str  # sha256 over the sorted per-row hashes: equal on both sides or the copy fails


class MigrateResult(BaseModel):
    database: str
    applied: list[str]  # "N name" for each migration applied now
    version: int


class CopyResult(BaseModel):
    source: str
    target: str
    version: int
    tables: list[TableCopy]
    examples: int
    content_hashes_match: bool


def describe(database: Path | str) -> str:
    """A database for messages: the SQLite path, or host:port/db of a PostgreSQL URL (never its password)."""
    text = str(database)
    if text.startswith(store.POSTGRES_SCHEMES):
        from datagen.postgres import display_url

        return "postgresql://" + display_url(text)
    return text


def migrate_database(ws, database: Path | str | None = None) -> MigrateResult:
    """Bring the workspace's database (or `database`) to the latest schema; says what was applied."""
    target = ws.database if database is None else database
    conn = store.open_database(target)
    try:
        applied = store.migrate(conn)
        version = store.schema_version(conn)
    finally:
        conn.close()
    return MigrateResult(database=describe(target), applied=[f"{m.version} {m.name}" for m in applied],
                         version=version)


def copy_database(ws, to: Path | str, *, source: Path | str | None = None) -> CopyResult:
    """Copy the workspace's dataset (or `source`'s) into the empty database `to`, verified before it commits."""
    source = ws.database if source is None else source
    if _same(source, to):
        raise DatagenError(f"{describe(to)} is the database being copied; name another one with --to")
    src, dst = store.open_database(source), store.open_database(to)
    try:
        store.migrate(src)
        store.migrate(dst)
        version = store.schema_version(src)
        if store.schema_version(dst) != version:
            raise DatagenError(f"{describe(to)} is at schema version {store.schema_version(dst)}, the source at "
                               f"{version}; upgrade engrain where the older one runs, then copy again")
        with store.transaction(src), store.transaction(dst):
            tables = _copy_tables(src, dst, source=describe(source), target=describe(to))
            hashes_match = _content_hashes(src) == _content_hashes(dst)
            if not hashes_match:
                raise DatagenError("the copied examples' content hashes differ from the source's; nothing was "
                                   "committed to the target")
    finally:
        src.close()
        dst.close()
    examples = next((t.rows for t in tables if t.table == "examples"), 0)
    return CopyResult(source=describe(source), target=describe(to), version=version, tables=tables,
                      examples=examples, content_hashes_match=hashes_match)


def _copy_tables(src, dst, *, source: str, target: str) -> list[TableCopy]:
    source_tables, target_tables = _tables(src), set(_tables(dst))
    missing = [t for t in source_tables if t not in target_tables]
    if missing and store.backend(src) == "sqlite":
        _create_like_source(src, dst, missing)  # tables a module creates on first use rather than by migration
    elif missing:
        raise DatagenError(f"{target} has no table {', '.join(missing)} that {source} holds; run `engrain db "
                           "migrate` with the engrain version that made the source, then copy again")
    for table in source_tables:
        count = dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if count:
            raise DatagenError(f"{target} already holds {count} rows in {table}; copy into an empty database")
    copies = []
    for table in source_tables:  # creation order, so rows that others reference arrive first
        columns = _copy_rows(src, dst, table)
        before, after = _table_digest(src, table, columns), _table_digest(dst, table, columns)
        if before != after:
            raise DatagenError(f"table {table} differs after the copy ({before[0]} rows in {source}, {after[0]} in "
                               f"{target}); nothing was committed to the target")
        copies.append(TableCopy(table=table, rows=before[0], digest=before[1]))
    return copies


def _copy_rows(src, dst, table: str) -> list[str]:
    """Copy every row of `table`; returns its columns."""
    cursor = src.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in cursor.description]
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    while rows := cursor.fetchmany(BATCH):
        dst.executemany(insert, rows)
    if store.backend(dst) == "postgresql":
        # ids were copied as they were; the sequence must continue after them, not hand them out again
        serial = dst.serial_column(table)
        if serial:
            dst.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), max({serial})) FROM {table}"
                        f" HAVING max({serial}) IS NOT NULL", (table, serial))
    return columns


def _create_like_source(src, dst, tables: list[str]) -> None:
    """Create `tables` (and their indexes) in the target from the SQLite source's own DDL (translated there)."""
    for table in tables:
        for (sql,) in src.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
                                  " ORDER BY type = 'index', rowid", (table,)).fetchall():
            dst.execute(sql)


def _tables(conn) -> list[str]:
    """The dataset's tables in creation order (the migrations bookkeeping table excluded)."""
    if store.backend(conn) == "sqlite":
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                            " ORDER BY rowid")
    else:
        rows = conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r'"
                            " AND relnamespace = current_schema()::regnamespace ORDER BY oid")
    return [name for (name,) in rows if name != "schema_migrations"]


def _table_digest(conn, table: str, columns: list[str]) -> tuple[int, str]:
    """(rows, digest) where the digest ignores row order and each backend's value types (bytes vs memoryview)."""
    row_hashes = sorted(hashlib.sha256(repr(tuple(map(_canonical, row))).encode()).digest()
                        for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"))
    return len(row_hashes), hashlib.sha256(b"".join(row_hashes)).hexdigest()


def _canonical(value):
    return bytes(value) if isinstance(value, memoryview) else value


def _content_hashes(conn) -> list[str]:
    return sorted(h for (h,) in conn.execute("SELECT content_hash FROM examples"))


def _same(a: Path | str, b: Path | str) -> bool:
    return _identity(a) == _identity(b)


def _identity(database: Path | str) -> str:
    text = str(database)
    if text.startswith(store.POSTGRES_SCHEMES):
        return text
    return str(Path(text.removeprefix(store.SQLITE_SCHEME)).expanduser().resolve())

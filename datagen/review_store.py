"""SQL for the review page (issue 15): keyset pages, edit history, decision versions, rule-failure cache.

Kept apart from store.py so the PostgreSQL backend can port it in one place. Plain SQL only: `?` placeholders,
no AUTOINCREMENT, upserts as `ON CONFLICT ... DO` (SQLite >= 3.24 and PostgreSQL both speak it). The tables are
part of the schema (datagen/migrations.py, migration 2).
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from datagen import store

QUEUE_COLUMNS = "seq, id, status, category, generator, created_at, data"


def connect(database) -> object:
    """store.connect: this module's tables come with the schema (datagen/migrations.py, migration 2)."""
    return store.connect(database)


def queue_where(*, category: str | None, status: str | None, generator: str | None, text: str | None,
                rule: tuple[str, str] | None) -> tuple[str, list]:
    """WHERE clauses for the queue's filters; `rule` is (rules_key, rule name); text matches case-insensitively."""
    clauses, params = [], []
    for column, value in (("category", category), ("status", status), ("generator", generator)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if text:
        # LIKE ignores ASCII case in SQLite and becomes ILIKE on PostgreSQL; lower() on every row cost 2x here.
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("data LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if rule:
        clauses.append("id IN (SELECT example_id FROM rule_failures WHERE rules_key = ? AND rule = ?)")
        params.extend(rule)
    return " AND ".join(clauses) or "1 = 1", params


def keyset_rows(conn, where: str, params: list, *, after: int | None, before: int | None, limit: int) -> list[tuple]:
    """Up to `limit` rows in seq order strictly after `after` (or strictly before `before`): an index range scan
    however deep the page, where OFFSET would walk every earlier row."""
    if before is not None:
        rows = conn.execute(f"SELECT {QUEUE_COLUMNS} FROM examples WHERE {where} AND seq < ? ORDER BY seq DESC"
                            " LIMIT ?", [*params, before, limit]).fetchall()
        return rows[::-1]
    return conn.execute(f"SELECT {QUEUE_COLUMNS} FROM examples WHERE {where} AND seq > ? ORDER BY seq LIMIT ?",
                        [*params, after or 0, limit]).fetchall()


def count_where(conn, where: str, params: list, cap: int | None = None) -> int:
    """How many rows match; with `cap`, counting stops at cap + 1 (a text search need not read every row)."""
    if cap is None:
        return conn.execute(f"SELECT count(*) FROM examples WHERE {where}", params).fetchone()[0]
    return conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM examples WHERE {where} LIMIT ?) AS hits",
                        [*params, cap + 1]).fetchone()[0]


def exists_where(conn, where: str, params: list, *, after: int | None = None, before: int | None = None) -> bool:
    if before is not None:
        where, params = f"{where} AND seq < ?", [*params, before]
    if after is not None:
        where, params = f"{where} AND seq > ?", [*params, after]
    return conn.execute(f"SELECT 1 FROM examples WHERE {where} LIMIT 1", params).fetchone() is not None


def seq_of(conn, example_id: str) -> int | None:
    row = conn.execute("SELECT seq FROM examples WHERE id = ?", (example_id,)).fetchone()
    return row[0] if row else None


def version(conn, example_id: str) -> int:
    """The id of the example's latest decision or edit event (0 when none): what a form was rendered from."""
    row = conn.execute("SELECT max(id) FROM reviews WHERE example_id = ? AND kind IN ('decision', 'edit')",
                       (example_id,)).fetchone()
    return row[0] or 0


def add_revision(conn, example_id: str, *, content_hash: str, data: str, review_id: int) -> int:
    revision = conn.execute("SELECT count(*) FROM example_revisions WHERE example_id = ?",
                            (example_id,)).fetchone()[0] + 1
    conn.execute("INSERT INTO example_revisions (example_id, revision, content_hash, data, review_id, created_at)"
                 " VALUES (?, ?, ?, ?, ?, ?)", (example_id, revision, content_hash, data, review_id, time.time()))
    return revision


def revisions(conn, example_id: str) -> list[tuple]:
    return conn.execute("SELECT revision, content_hash, data, review_id, created_at FROM example_revisions"
                        " WHERE example_id = ? ORDER BY revision", (example_id,)).fetchall()


def replace_content(conn, example_id: str, *, content_hash: str, category: str, data: str, minhash: bytes,
                    embedding: bytes) -> None:
    conn.execute("UPDATE examples SET content_hash = ?, category = ?, data = ?, minhash = ?, embedding = ?,"
                 " updated_at = ? WHERE id = ?",
                 (content_hash, category, data, minhash, embedding, time.time(), example_id))
    conn.execute("DELETE FROM rule_failures WHERE example_id = ?", (example_id,))


def current_content(conn, example_id: str) -> tuple[str, str] | None:
    return conn.execute("SELECT content_hash, data FROM examples WHERE id = ?", (example_id,)).fetchone()


def reject_reasons(conn, limit: int) -> list[tuple[str, int]]:
    return conn.execute("SELECT notes, count(*) AS n FROM reviews WHERE kind = 'decision' AND verdict = 'reject'"
                        " GROUP BY notes ORDER BY n DESC, notes LIMIT ?", (limit,)).fetchall()


def generators(conn) -> list[str]:
    return [g for (g,) in conn.execute("SELECT DISTINCT generator FROM examples ORDER BY generator")]


def rule_scan_position(conn, rules_key: str) -> int:
    row = conn.execute("SELECT last_seq FROM rule_scans WHERE rules_key = ?", (rules_key,)).fetchone()
    return row[0] if row else 0


def rows_to_check(conn, after_seq: int, limit: int) -> list[tuple[int, str, str]]:
    return conn.execute("SELECT seq, id, data FROM examples WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after_seq, limit)).fetchall()


def record_rule_scan(conn, rules_key: str, last_seq: int, failures: Iterator[tuple[str, str]]) -> None:
    for example_id, rule in failures:
        conn.execute("INSERT INTO rule_failures (rules_key, example_id, rule) VALUES (?, ?, ?)"
                     " ON CONFLICT DO NOTHING", (rules_key, example_id, rule))
    conn.execute("INSERT INTO rule_scans (rules_key, last_seq) VALUES (?, ?) ON CONFLICT (rules_key)"
                 " DO UPDATE SET last_seq = excluded.last_seq", (rules_key, last_seq))

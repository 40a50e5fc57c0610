"""PostgreSQL behind the same calls as sqlite3: SQL written for SQLite runs here through a thin translation.

Everything in datagen writes its SQL once, in SQLite's dialect, and calls `conn.execute(sql, params)`. A
`PgConnection` takes the same calls (psycopg 3 underneath) and rewrites each statement once (cached):

- placeholders: qmark `?` -> `%s`, named `:name` -> `%(name)s`; a literal `%` -> `%%`;
- `INSERT OR IGNORE INTO t ...` -> `INSERT INTO t ... ON CONFLICT DO NOTHING`;
  `INSERT OR REPLACE INTO t (cols) ...` / `REPLACE INTO` -> `... ON CONFLICT (primary key) DO UPDATE SET` the
  other listed columns (SQLite replaces on any unique constraint; here the primary key decides);
- `BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE]` -> `BEGIN` plus the store's write lock (see `WRITE_LOCK`); `COMMIT` and
  `ROLLBACK` as they are;
- types: `INTEGER PRIMARY KEY [AUTOINCREMENT]` -> `BIGSERIAL PRIMARY KEY`, `INTEGER` -> `BIGINT`,
  `REAL` -> `DOUBLE PRECISION`, `BLOB` -> `BYTEA`, `BOOLEAN` -> `BIGINT` (SQLite keeps booleans as 0/1);
- functions: `IFNULL(` -> `COALESCE(`, `last_insert_rowid()` -> `lastval()`; `LIKE` -> `ILIKE` (SQLite's LIKE
  ignores ASCII case); `GROUP_CONCAT(x)` -> `string_agg(x::text, ',')` (one-argument form only);
- values: Python bools are sent as 0/1; comparisons (`SELECT a = b`) come back as 0/1 and whole NUMERIC results
  (`sum()` of integers) as int, as SQLite returns them; `cursor.lastrowid` is the inserted row's serial column
  (an INSERT into a table with one gets `RETURNING` that column), `rowcount` as usual;
- a unique-constraint violation raises `sqlite3.IntegrityError` (the psycopg error is its `__cause__`).

Not translated (write portable SQL instead): PRAGMA, sqlite_master, rowid, json_* functions, date functions,
GLOB, `LIMIT -1`, a subquery in FROM without an alias (PostgreSQL 15 needs `AS name`). One behaviour differs and cannot be hidden: after an error inside a transaction PostgreSQL
refuses further statements until rollback, so "try the INSERT, catch IntegrityError, carry on in the same
transaction" must become `INSERT OR IGNORE` (or an explicit check) to work on both.

Connections run in autocommit mode like the store's sqlite3 connections (isolation_level=None); a write
transaction is `BEGIN` + `pg_advisory_xact_lock(WRITE_LOCK)`, which serialises writers exactly as SQLite's
`BEGIN IMMEDIATE` does. That keeps the store's ordering guarantee: examples.seq is assigned and committed under
the lock, so every writer's index catch-up (`seq > last seen`) sees rows in commit order and misses none.
"""
from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import adapt, postgres
from psycopg.conninfo import conninfo_to_dict

from datagen.errors import DatagenError

WRITE_LOCK = 0x656E6772_61696E  # "engrain": one advisory lock per database, held by the writing transaction
CONNECT_TIMEOUT_S = 10

_PIECES = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/)""", re.S)
_CODE_REWRITES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bBOOLEAN\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\bIFNULL\s*\(", re.I), "COALESCE("),
    (re.compile(r"\blast_insert_rowid\s*\(\s*\)", re.I), "lastval()"),
    (re.compile(r"\bGROUP_CONCAT\s*\(\s*([^(),]+?)\s*\)", re.I), r"string_agg(\1::text, ',')"),
    (re.compile(r"(?<!I)\bLIKE\b", re.I), "ILIKE"),
]
_PARAM = re.compile(r"\?|%|(?<![:\w]):([A-Za-z_]\w*)")
_BEGIN = re.compile(r"^\s*BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$", re.I)
_INSERT_OR = re.compile(r"^\s*(INSERT\s+OR\s+(IGNORE|REPLACE)|REPLACE)\s+INTO\b", re.I)
_INSERT_TARGET = re.compile(r"^\s*INSERT\s+INTO\s+(\"?[\w.]+\"?)\s*(\(([^)]*)\))?", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
PK_MARKER = "/*pk*/"


class PgCursor:
    """The part of sqlite3.Cursor the store and its callers use: fetch*, iteration, rowcount, lastrowid."""

    def __init__(self, cursor: psycopg.Cursor, lastrowid: int | None = None, rows: bool = True):
        self._cursor = cursor
        self.lastrowid = lastrowid
        self._rows = rows  # False after an INSERT whose RETURNING was added here: sqlite3 would show no rows

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self):
        return self._cursor.description

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone() if self._has_rows() else None

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall() if self._has_rows() else []

    def fetchmany(self, size: int = 1) -> list[tuple]:
        return self._cursor.fetchmany(size) if self._has_rows() else []

    def _has_rows(self) -> bool:
        return self._rows and self._cursor.description is not None

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cursor.close()


class PgConnection:
    """A psycopg connection that takes SQLite-dialect SQL (see the module docstring)."""

    backend = "postgresql"

    def __init__(self, url: str):
        self.url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatagenError(f"cannot connect to PostgreSQL at {display_url(url)} ({detail}); check "
                               "[dataset] database_url (or ENGRAIN_DATABASE_URL) and that the server runs") from None
        self._conn.adapters.register_dumper(bool, _BoolAsInt)
        self._conn.adapters.register_loader("numeric", _WholeNumericAsInt)
        self._conn.adapters.register_loader("bool", _BoolAsIntLoader)
        self._serial: dict[str, str | None] = {}

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> PgCursor:
        if _BEGIN.match(sql):  # a hand-written BEGIN [IMMEDIATE] takes the writer lock like write_transaction
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            return PgCursor(self._conn.cursor())
        statement, serial_table = self._prepare(sql)
        cursor = self._conn.cursor()
        with _integrity_as_sqlite():
            cursor.execute(statement, _params(params))  # always params: '%%' then always means '%'
        lastrowid = None
        if serial_table is not None:
            row = cursor.fetchone()
            lastrowid = row[0] if row else None
        if _is_ddl(statement):
            self._serial.clear()
        return PgCursor(cursor, lastrowid, rows=serial_table is None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> PgCursor:
        cursor = self._conn.cursor()
        with _integrity_as_sqlite():
            cursor.executemany(self._prepare(sql, returning=False)[0], [_params(r) for r in rows])
        return PgCursor(cursor)

    @contextmanager
    def write_transaction(self) -> Iterator["PgConnection"]:
        """One transaction holding the store's write lock (committed on success, rolled back on any error)."""
        with _integrity_as_sqlite(), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield self

    def commit(self) -> None:
        """Autocommit: nothing pending outside `write_transaction` (sqlite3's isolation_level=None behaves alike)."""

    def close(self) -> None:
        self._conn.close()

    def _prepare(self, sql: str, returning: bool = True) -> tuple[str, str | None]:
        """The translated statement, with `RETURNING <serial column>` added to a plain INSERT (for lastrowid)."""
        statement = translate(sql)
        target = _INSERT_TARGET.match(statement)
        if target is not None and PK_MARKER in statement:
            statement = statement.replace(PK_MARKER, self._primary_key(target.group(1)))
        if not returning or target is None or _RETURNING.search(statement):
            return statement, None
        column = self.serial_column(target.group(1))
        if column is None:
            return statement, None
        return f"{statement.rstrip().rstrip(';')} RETURNING {column}", target.group(1)

    def serial_column(self, table: str) -> str | None:
        """The column filled from a sequence (BIGSERIAL / identity) of `table`, if it has one."""
        if table not in self._serial:
            row = self._conn.execute(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0"
                " AND NOT a.attisdropped AND (a.attidentity <> ''"
                " OR pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) IS NOT NULL)", (table,)).fetchone()
            self._serial[table] = row[0] if row else None
        return self._serial[table]


    def _primary_key(self, table: str) -> str:
        columns = [name for (name,) in self._conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary", (table,))]
        if not columns:
            raise DatagenError(f"INSERT OR REPLACE into {table} needs a primary key on PostgreSQL")
        return ", ".join(columns)


class _BoolAsInt(adapt.Dumper):
    oid = postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _BoolAsIntLoader(adapt.Loader):
    def load(self, data) -> int:
        return 1 if bytes(data) == b"t" else 0


class _WholeNumericAsInt(adapt.Loader):
    def load(self, data) -> int | float:
        text = bytes(data)
        return int(text) if text.lstrip(b"-").isdigit() else float(text)


@contextmanager
def _integrity_as_sqlite() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        raise sqlite3.IntegrityError(str(exc).strip()) from exc


def _params(params: Sequence[Any] | dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
    return params if isinstance(params, dict) else tuple(params)


def _is_ddl(statement: str) -> bool:
    return statement.lstrip().split(None, 1)[0].upper() in ("CREATE", "ALTER", "DROP")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite-dialect SQL -> PostgreSQL (string literals, quoted names and comments are left alone)."""
    pieces = _PIECES.split(sql)
    for i in range(0, len(pieces), 2):  # even pieces are code; odd ones literals, quoted names, comments
        code = pieces[i]
        for pattern, replacement in _CODE_REWRITES:
            code = pattern.sub(replacement, code)
        pieces[i] = _PARAM.sub(_param, code)
    for i in range(1, len(pieces), 2):  # psycopg reads placeholders everywhere, literals included
        pieces[i] = pieces[i].replace("%", "%%")
    statement = "".join(pieces)
    match = _INSERT_OR.match(statement)
    if match:
        statement = _conflict_clause(statement, match)
    return statement


def _param(match: re.Match) -> str:
    token = match.group(0)
    if token == "?":
        return "%s"
    if token == "%":
        return "%%"
    return f"%({match.group(1)})s"


def _conflict_clause(statement: str, match: re.Match) -> str:
    """INSERT OR IGNORE / OR REPLACE -> INSERT ... ON CONFLICT, placed before any RETURNING. The primary key of
    an OR REPLACE target is a marker here (`/*pk*/`) that the connection fills in from the catalog."""
    statement = ("INSERT INTO" + statement[match.end():]).rstrip().rstrip(";")
    returning = _RETURNING.search(statement)
    body, tail = (statement[:returning.start()], " " + statement[returning.start():]) if returning else (statement, "")
    if (match.group(2) or "").upper() == "IGNORE":
        return f"{body.rstrip()} ON CONFLICT DO NOTHING{tail}"
    target = _INSERT_TARGET.match(body)
    if target is None or target.group(3) is None:
        raise DatagenError(f"INSERT OR REPLACE needs an explicit column list to run on PostgreSQL: {statement[:120]}")
    columns = ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in target.group(3).split(","))
    return f"{body.rstrip()} ON CONFLICT ({PK_MARKER}) DO UPDATE SET {columns}{tail}"


def display_url(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, without user or password (for messages)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable database_url>"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"

"""The dataset's schema, one definition for both backends, as numbered migrations.

Each migration is SQLite-dialect SQL (`;`-separated statements); on PostgreSQL the store's adapter translates it
(datagen/postgres.py: INTEGER PRIMARY KEY -> BIGSERIAL, REAL -> DOUBLE PRECISION, BLOB -> BYTEA, ...). The store
applies the ones a database lacks, in order, inside one write transaction, and records each in
`schema_migrations`; `engrain db migrate` does the same on request. Add a change as a new entry at the end; never
edit one that has shipped (databases that already applied it would never see the edit).
"""
from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return [s.strip() for s in self.sql.split(";") if s.strip()]


MIGRATIONS = [
    # IF NOT EXISTS: databases made before migrations existed already hold these tables and record version 1 only.
    Migration(1, "examples, reviews, knowledge chunks", """
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
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks(source, ordinal)
"""),
    # The review page (issue 15; SQL in datagen/review_store.py). IF NOT EXISTS: databases where the page created
    # these tables on first use, before this migration, adopt them.
    Migration(2, "review page: edit revisions, rule-failure cache, queue indexes", """
CREATE TABLE IF NOT EXISTS example_revisions (
    example_id TEXT NOT NULL REFERENCES examples(id),
    revision INTEGER NOT NULL,               -- 1 = the example as first stored, counting up with each edit
    content_hash TEXT NOT NULL,
    data TEXT NOT NULL,                      -- the replaced Example as JSON
    review_id INTEGER NOT NULL,              -- the edit event that replaced it
    created_at REAL NOT NULL,
    PRIMARY KEY (example_id, revision)
);
CREATE TABLE IF NOT EXISTS rule_failures (
    rules_key TEXT NOT NULL,                 -- hash of the rules the check used: a changed plan starts afresh
    example_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    PRIMARY KEY (rules_key, rule, example_id)
);
CREATE TABLE IF NOT EXISTS rule_scans (
    rules_key TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS examples_by_category_seq ON examples(category, status, seq);
CREATE INDEX IF NOT EXISTS examples_by_generator ON examples(generator, seq);
CREATE INDEX IF NOT EXISTS reviews_by_kind ON reviews(kind, verdict)
"""),
    # Knowledge chunks mapped to the plan's categories (datagen/mapping.py).
    Migration(3, "knowledge chunks by category", """
CREATE TABLE IF NOT EXISTS chunk_categories (
    chunk_id TEXT NOT NULL,
    category TEXT NOT NULL,
    origin TEXT NOT NULL,
    score REAL,
    PRIMARY KEY (chunk_id, category)
)
"""),
]

LATEST = MIGRATIONS[-1].version

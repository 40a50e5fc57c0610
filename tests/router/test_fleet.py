"""Issue 16: the workers of `engrain serve --workers 2` act as one server. A deployment one worker found failing
is skipped by the other (cooldowns shared through the router's SQLite file), and /metrics, whichever worker
answers it, counts every worker's requests (prometheus_client's multiprocess mode). Routers on several machines
share cooldowns through a real Redis server (`redis_url`)."""
from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import socket
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes import hosted_server
from tests.fakes.base import closed_port_url
from tests.router.serving import running_router

CONFIG = """[router]
retries = 0
cooldown_s = 300
[[router.models]]
name = "primary"
provider = "openai"
model = "p"
api_base = "{primary}/v1"
api_key = "k"
[[router.models]]
name = "secondary"
provider = "openai"
model = "s"
api_base = "{secondary}/v1"
api_key = "k"
[[router.tiers]]
name = "local"
models = ["primary"]
[[router.tiers]]
name = "hosted"
models = ["secondary"]
"""


def _start(workspace: Path, config: str) -> tuple[subprocess.Popen, str]:
    """`engrain serve --workers 2` in a workspace whose engrain.toml holds `config`."""
    (workspace / "engrain.toml").write_text(config)
    url = closed_port_url()
    proc = subprocess.Popen([sys.executable, "-m", "engrain", "serve", "--port", url.rsplit(":", 1)[1],
                             "--workers", "2"], cwd=workspace,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "router did not start"
        time.sleep(0.3)


def _ask(url: str, i: int) -> httpx.Response:
    # a fresh connection per request: the workers take turns accepting them
    return httpx.post(url + "/v1/chat/completions", timeout=30, headers={"connection": "close"},
                      json={"model": "local", "messages": [{"role": "user", "content": f"rename variable {i}"}]})


def _requests_by_worker(folder: Path, scratch: Path) -> dict[str, float]:
    """engrain_requests counted in each worker's own sample file (counter_<pid>.db), read one file at a time."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for path in folder.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[path.stem] = _metric(generate_latest(registry).decode(), "engrain_requests_total")
    return counts


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_two_workers_share_cooldowns_and_metrics(tmp_path):
    with hosted_server() as primary, hosted_server() as secondary:
        primary.fail("status", status=500, times=None)          # every call to primary fails
        proc, url = _start(tmp_path, CONFIG.format(primary=primary.url, secondary=secondary.url))
        try:
            first = _ask(url, 0)
            assert (first.status_code, first.headers["x-engrain-model"]) == (200, "secondary")
            assert len(primary.requests) == 1                    # one worker saw the fault and cooled primary
            metrics_dir = tmp_path / ".engrain" / f"router-metrics-{url.rsplit(':', 1)[1]}"
            with sqlite3.connect(tmp_path / ".engrain" / "router.db") as db:
                assert [r[0] for r in db.execute("SELECT model FROM cooldowns")] == ["primary"]

            sent = 1
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                while len([n for n in _requests_by_worker(metrics_dir, tmp_path / "by-worker").values() if n]) < 2:
                    assert sent < 200, "every connection went to one worker"
                    answers = list(pool.map(lambda i: _ask(url, i), range(sent, sent + 8)))
                    assert all(a.status_code == 200 and a.headers["x-engrain-model"] == "secondary" for a in answers)
                    assert all(a.headers["x-engrain-fallbacks"] == "0" for a in answers)   # primary not tried
                    sent += 8
            assert len(primary.requests) == 1                    # the other worker never called it
            assert len(secondary.requests) == sent

            text = httpx.get(url + "/metrics", timeout=10).text
            assert _metric(text, "engrain_requests_total") == sent
            assert _metric(text, "engrain_cooldowns_total") == 1
            health = httpx.get(url + "/health", timeout=10).json()
            assert health["models"]["primary"]["cooling_down_s"] > 200
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server on a loopback port of its own, nothing saved to disk."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it with apt-get)")
    port = closed_port_url().rsplit(":", 1)[1]
    proc = subprocess.Popen([exe, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.terminate()
        proc.wait(10)


def _routed(url: str) -> tuple[str, str]:
    r = httpx.post(url + "/v1/chat/completions", timeout=30,
                   json={"model": "local", "messages": [{"role": "user", "content": "rename variable x"}]})
    assert r.status_code == 200, r.text
    return r.headers["x-engrain-model"], r.headers["x-engrain-fallbacks"]


def test_routers_on_two_machines_share_cooldowns_through_redis(redis_url):
    import tomllib

    url, server = redis_url
    with hosted_server() as primary, hosted_server() as secondary:
        primary.fail("status", status=500, times=None)
        config = tomllib.loads(CONFIG.format(primary=primary.url, secondary=secondary.url))["router"]
        config["redis_url"] = url
        with running_router(config) as one, running_router(config) as two:
            assert _routed(one) == ("secondary", "1") and len(primary.requests) == 1
            assert _routed(two) == ("secondary", "0") and len(primary.requests) == 1   # told by Redis
            assert httpx.get(two + "/health").json()["models"]["primary"]["cooling_down_s"] > 200

            # Redis gone: routing goes on, each router on its own cooldowns (one failed call, then skipped)
            server.terminate()
            server.wait(10)
            primary.requests.clear()
            assert _routed(two) == ("secondary", "1") and len(primary.requests) == 1
            assert _routed(two) == ("secondary", "0") and len(primary.requests) == 1

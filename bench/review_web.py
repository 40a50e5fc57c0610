"""The review page's queue with 50,000 stored examples: latency per page kind, against OFFSET paging (the anchor).

    .venv/bin/python bench/review_web.py [--seed-count 50000] [--requests 200]

Seeds a workspace (70% pending, 20% approved, 10% rejected; four generators; cached under bench/results/), serves
it with `engrain review --web` on loopback (uvicorn, one worker), and times sequential GETs of real pages with
httpx: the first queue page, a deep page (keyset: `?after=<seq>`), filtered pages, one example. The anchor is
OFFSET paging at the same depth — what `engrain review --offset` and the MCP tool do (`datagen.list_examples`),
called in process, so it has no HTTP or HTML cost at all. The goal: queue page p95 <= 300 ms.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

import datagen  # noqa: E402
from bench.datagen import SEED_BASE, synthetic  # noqa: E402
from datagen import dedup, store  # noqa: E402
from datagen.schema import Example  # noqa: E402

GOAL_P95_MS = 300.0
RESULTS = Path(__file__).resolve().parent / "results"
GENERATORS = ["claude-code", "cli", "generate:anthropic/claude-sonnet", "import"]
RULE = '\n[[rules]]\nname = "no-retries-word"\nkind = "regex_must_not"\npattern = "\\\\bretries\\\\b"\n'
SERVE = [sys.executable, "-c",
         "import typer; from engrain import cmd_dataset; app = typer.Typer(); cmd_dataset.register(app); app()"]


def seed(root: Path, count: int) -> None:
    """Bulk insert through the real store (random unit vectors: the page never embeds)."""
    datagen.init_workspace(root)
    ws = datagen.find_workspace(root)
    ws.config_path.write_text(ws.config_path.read_text() + RULE)
    conn = store.connect(ws.db_path)
    rng, pick = np.random.default_rng(0), random.Random(0)
    for start in range(0, count, 1000):
        examples = [Example.model_validate(synthetic(SEED_BASE + i)) for i in range(start, min(count, start + 1000))]
        vectors = rng.standard_normal((len(examples), 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with store.transaction(conn):
            for example, vector in zip(examples, vectors):
                content_hash = dedup.content_hash(example)
                status = pick.choices(["pending", "approved", "rejected"], [7, 2, 1])[0]
                store.insert_example(conn, example_id="ex_" + content_hash[:16], content_hash=content_hash,
                                     example=example, status=status, generator=pick.choice(GENERATORS),
                                     minhash=dedup.signature_bytes(dedup.minhash(dedup.lexical_text(example))),
                                     embedding=vector.tobytes())
        print(f"  seeded {min(count, start + 1000):>6}/{count}", file=sys.stderr, flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def workspace(count: int, work: Path) -> datagen.Workspace:
    cached = RESULTS / f"review-web-seeded-{count}"
    if not (cached / "engrain.toml").exists():
        print(f"seeding {count} examples (first run only; cached in {cached})", file=sys.stderr)
        shutil.rmtree(cached, ignore_errors=True)
        seed(cached, count)
    shutil.copytree(cached, work / "ws")
    return datagen.find_workspace(work / "ws")


def timed(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def get(client: httpx.Client, path: str):
    def call():
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return call


def start_page(ws: datagen.Workspace, port: int) -> subprocess.Popen:
    process = subprocess.Popen([*SERVE, "review", "--web", "--port", str(port), "--workspace", str(ws.root)],
                               stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the review page did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-count", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--port", type=int, default=8719)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="engrain-bench-web-"))
    ws = workspace(args.seed_count, work)
    process = start_page(ws, args.port)
    try:
        rows = measure(ws, f"http://127.0.0.1:{args.port}", args.requests)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    report(rows, args)


def measure(ws: datagen.Workspace, base: str, n: int) -> list[tuple[str, list[float], bool]]:
    client = httpx.Client(base_url=base, timeout=60, cookies={"engrain_reviewer": "bench"})
    deep = datagen.queue_page(ws, datagen.QueueFilter(), limit=1, before=10**12).items[0]  # the last pending
    deep_after = int(deep.seq * 0.97)  # a page ~97% of the way down the queue
    depth = store.connect(ws.db_path).execute(  # the same page by OFFSET: pending rows before it
        "SELECT count(*) FROM examples WHERE status = 'pending' AND seq <= ?", (deep_after,)).fetchone()[0]
    example_id = datagen.queue_page(ws, datagen.QueueFilter(), limit=1).items[0].id
    started = time.perf_counter()
    get(client, "/?status=all&rule=no-retries-word")()
    first_rule_ms = (time.perf_counter() - started) * 1000
    get(client, f"/examples/{example_id}")()  # loads the dedup index once (neighbours)
    rows = [
        ("queue: first page (pending)", timed(get(client, "/"), n), True),
        ("queue: deep page, keyset ?after=", timed(get(client, f"/?after={deep_after}"), n), True),
        ("queue: category + generator filter", timed(get(client, "/?category=code-review&generator=cli"), n), True),
        ("queue: breaks a rule (cached scan)", timed(get(client, "/?status=all&rule=no-retries-word"), n), True),
        ("queue: text search ?q=", timed(get(client, "/?status=all&q=ticket%20%2349"), max(20, n // 4)), False),
        ("one example page (neighbours, rules)", timed(get(client, f"/examples/{example_id}"), max(20, n // 4)), False),
        ("in process: keyset page, deep (queue_page)", timed(lambda: datagen.queue_page(
            ws, datagen.QueueFilter(), after=deep_after, limit=50), n), False),
        ("anchor: OFFSET page, deep (list_examples)", timed(lambda: datagen.list_examples(
            ws, status="pending", offset=depth, limit=50), n), False),
    ]
    rows.append(("(first rule filter: scans every row once)", [first_rule_ms], False))
    return rows


def report(rows, args) -> None:
    print(f"\nreview page with {args.seed_count:,} stored examples; {args.requests} sequential requests per queue row; "
          f"uvicorn, 1 worker, loopback; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'page':<44}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  goal")
    for name, times, goal in rows:
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        verdict = (f"p95 <= {GOAL_P95_MS:.0f}: {'meets' if p95 <= GOAL_P95_MS else 'MISSES'}") if goal else ""
        print(f"{name:<44}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}  {verdict}")


if __name__ == "__main__":
    main()

"""Submit throughput and latency with 50,000 examples already stored, on SQLite and on PostgreSQL side by side,
against the goals (the anchor of this run).

    .venv/bin/python bench/datagen.py [--seed-count 50000] [--seed-embeddings minilm|random]
                                      [--batches 16] [--batch-size 64] [--singles 200]
                                      [--backends sqlite,postgresql] [--database-url postgresql://...]
                                      [--precisions fp32,auto] [--reworded K] [--no-replay]
    .venv/bin/python bench/datagen.py --check-precision 3400   (bf16 vs fp32 verdicts: bench/datagen_precision.py)

Every measured submit runs the whole path: format detection, validation (structure, tool schemas, fenced code,
rules), exact hash, MinHash LSH, MiniLM embedding + cosine search over all stored vectors, and a durable commit
(SQLite synchronous=FULL; PostgreSQL's default synchronous_commit). The 50,000 seed examples are inserted in bulk
through the real store with their signatures and embeddings (embedded in batches), without judging each other;
the seeded workspace is cached under bench/results/ so later runs start in seconds, and the PostgreSQL side gets
the same rows through `datagen.copy_database` (a throwaway server from tests/postgres_server.py unless
--database-url names an empty database). Both backends then take the same measured examples. Embedding 50,000
seeds with MiniLM takes tens of minutes on 2 busy cores; `--seed-embeddings random` stores random unit vectors
instead, which costs the measured submits exactly as much (the cosine search is a full matrix product whatever
the values) but never matches. Submit's embedding precisions (fp32, the anchor: what submit used before; auto: a
bf16 first pass where the CPU has bf16 instructions, near-threshold cosines redone in fp32) take turns batch by
batch on the same workspace, so a change in load hits both alike. Printed per column: the mean number of embedding
workers dedup chose (2 on two idle cores, 1 while another process holds one), and how many verdicts differ from
an fp32 replay of every measured submit, in order, on a fresh copy of the seeded workspace (--no-replay skips it).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import datagen  # noqa: E402
from datagen import dedup, parallel, store  # noqa: E402
from datagen.config import DEFAULT_TOML, parse_config  # noqa: E402
from datagen.schema import Example  # noqa: E402

GOAL_THROUGHPUT = 200.0  # examples/s, batched submit
GOAL_P99_MS = 100.0      # single-example submit
CATEGORIES = [c.name for c in parse_config(tomllib.loads(DEFAULT_TOML)).categories]  # the default plan's
RESULTS = Path(__file__).resolve().parent / "results"
SEED_BASE = 1_000_000_000  # stored examples use synthetic(SEED_BASE + i); measured ones count up from 1

NOUNS = ("parser config cache retry timeout queue worker schema migration index token session router handler "
         "payload invoice shipment carrier webhook ledger metric trace span buffer socket lock tenant billing "
         "export archive snapshot backup replica shard cursor batch stream window codec header cookie upload "
         "thumbnail locale currency discount coupon refund scheduler cron lease quota throttle circuit breaker "
         "serializer validator fixture mock factory adapter repository gateway proxy pool connection pipeline "
         "checksum digest signature certificate keystore secret vault audit log rotation compaction vacuum").split()
VERBS = ("rename split extract inline cache memoize validate sanitize retry paginate debounce profile document "
         "parallelize batch stream shard index denormalize encrypt compress deduplicate migrate deprecate").split()
LANGS = ["Python", "TypeScript", "Go", "Rust", "Java", "Ruby", "Kotlin", "C#"]
FILES = ["service", "models", "api", "utils", "core", "handlers", "jobs", "storage", "client", "views"]
OPENERS = ["Can you", "Please", "I need you to", "Could you", "Help me", "We should", "Let's", "Go ahead and"]
REASONS = ["it is called on every request", "two modules duplicate it", "the tests cover only the happy path",
           "it grew past 300 lines", "errors are swallowed silently", "it holds a lock across I/O",
           "the names no longer match what it does", "it retries without backoff"]


def synthetic(seed: int) -> dict:
    """One plausible, distinct example per seed (random task over a large vocabulary)."""
    rng = random.Random(seed)
    lang, module = rng.choice(LANGS), f"{rng.choice(FILES)}_{rng.choice(NOUNS)}"
    things = rng.sample(NOUNS, 4)
    user = (f"{rng.choice(OPENERS)} {rng.choice(VERBS)} the {things[0]} {things[1]} logic in {module} "
            f"({lang})? It touches {things[2]} and {things[3]}. Ticket #{seed}.")
    answer = (f"I looked at `{module}`: the {things[0]} {things[1]} code should be changed because "
              f"{rng.choice(REASONS)}. First I {rng.choice(VERBS)} the {rng.choice(NOUNS)} step, then "
              f"{rng.choice(VERBS)} the {rng.choice(NOUNS)} {rng.choice(NOUNS)} so {things[2]} no longer depends "
              f"on {things[3]}. I ran the tests after each step; {rng.randint(20, 400)} passed.")
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "category": rng.choice(CATEGORIES), "meta": {"language": lang.lower()}}


def measured(number: int, reworded_every: int) -> dict:
    """The `number`th measured example: synthetic(number), except that with reworded_every = k every kth one asks
    for the task of the example 3 before it, reworded (a word or two swapped, or only its first sentence; so near
    the semantic threshold), under a fresh answer: a case for the semantic layer, not MinHash."""
    record = synthetic(number)
    if reworded_every and number % reworded_every == 0:
        from bench.datagen_precision import reworded

        task = synthetic(number - 3)["messages"][0]["content"]
        record["messages"][0]["content"] = reworded(task, number)[number % 3]
    return record


def seed_workspace(root: Path, count: int, embeddings: str) -> float:
    """Insert `count` examples in bulk (batches of 1,000: one embedding call and one transaction each)."""
    datagen.init_workspace(root)
    ws = datagen.find_workspace(root)
    conn = store.connect(ws.db_path)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, count, 1000):
        examples = [Example.model_validate(synthetic(SEED_BASE + i)) for i in range(start, min(count, start + 1000))]
        if embeddings == "minilm":
            vectors = dedup.embed([dedup.semantic_text(e) for e in examples], ws.config.embedding_model)
        else:
            vectors = rng.standard_normal((len(examples), 384), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with store.transaction(conn):
            for example, vector in zip(examples, vectors):
                content_hash = dedup.content_hash(example)
                store.insert_example(conn, example_id="ex_" + content_hash[:16], content_hash=content_hash,
                                     example=example, status="approved", generator="bench-seed",
                                     minhash=dedup.signature_bytes(dedup.minhash(dedup.lexical_text(example))),
                                     embedding=vector.astype(np.float32).tobytes())
        print(f"  seeded {min(count, start + 1000):>6}/{count}  ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    return time.perf_counter() - started


def seeded_sqlite(args, work: Path, name: str = "sqlite") -> Path:
    """A workspace holding the seed examples on SQLite (from the cache when there is one)."""
    cached = RESULTS / f"datagen-seeded-{args.seed_count}-{args.seed_embeddings}"
    root = work / name
    if (cached / "engrain.toml").exists():
        shutil.copytree(cached, root)
        print(f"reusing seeded workspace {cached}", file=sys.stderr)
        return root
    print(f"seeding {args.seed_count} examples (first run only; cached in {cached})", file=sys.stderr)
    seconds = seed_workspace(root, args.seed_count, args.seed_embeddings)
    print(f"seeded in {seconds:.0f} s ({args.seed_count / seconds:.0f} ex/s bulk)", file=sys.stderr)
    store.connect(root / ".engrain" / "engrain.db").execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(root, cached, dirs_exist_ok=True)
    return root


def seeded_postgres(sqlite_root: Path, url: str, work: Path) -> Path:
    """A second workspace whose engrain.toml names `url`, filled with the SQLite workspace's rows."""
    root = work / "postgresql"
    shutil.copytree(sqlite_root, root)
    shutil.rmtree(root / ".engrain")
    config = root / "engrain.toml"
    config.write_text(config.read_text().replace("[dataset]\n", f'[dataset]\ndatabase_url = "{url}"\n', 1))
    started = time.perf_counter()
    result = datagen.copy_database(datagen.find_workspace(sqlite_root), url)
    print(f"copied {result.examples} examples into PostgreSQL in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return root


@contextlib.contextmanager
def precision(mode: str):
    """Submit's embedding precision for this block: "fp32" (the previous path, the anchor) or "auto"."""
    previous = os.environ.pop(dedup.PRECISION_ENV, None)
    if mode == "fp32":
        os.environ[dedup.PRECISION_ENV] = "fp32"
    try:
        yield
    finally:
        os.environ.pop(dedup.PRECISION_ENV, None)
        if previous is not None:
            os.environ[dedup.PRECISION_ENV] = previous


def measure(root: Path, args, modes: list[str]) -> tuple[dict[str, dict], list[tuple[str, list, list]]]:
    """Batched throughput, then single-submit latencies, on one workspace, per precision mode: the modes take
    turns batch by batch (and submit by submit), so a change in the machine's load hits each alike. Every backend
    gets the same examples. Also returns every submit as (mode, records, verdicts), in order, for replay()."""
    ws = datagen.find_workspace(root)
    stored = datagen.list_examples(ws, limit=1).total
    started = time.perf_counter()
    dedup._model(ws.config.embedding_model)
    model_s = time.perf_counter() - started
    started = time.perf_counter()
    datagen.submit(ws, [synthetic(0)])  # the first submit loads every stored signature into the index
    catch_up_s = time.perf_counter() - started
    dedup._embed_cache.clear()  # the other backend's run must not find these embeddings already computed

    fresh = iter(range(1, SEED_BASE))
    runs = {mode: {"seconds": 0.0, "cpu": 0.0, "latencies": [], "accepted": 0, "total": 0, "workers": []}
            for mode in modes}
    log = []
    for size, rounds in ((args.batch_size, args.batches), (1, args.singles)):
        for _ in range(rounds):
            for mode in modes:
                records = [measured(next(fresh), args.reworded) for _ in range(size)]
                with precision(mode), counted_workers() as workers:
                    started, cpu = time.perf_counter(), time.process_time()
                    verdicts = datagen.submit(ws, records)
                    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                run = runs[mode]
                if size == 1:
                    run["latencies"].append(seconds * 1000)
                else:
                    run["seconds"] += seconds
                    run["cpu"] += cpu
                    run["workers"] += workers
                run["accepted"] += sum(v.accepted for v in verdicts)
                run["total"] += len(verdicts)
                log.append((mode, records, verdicts))
    dedup._embed_cache.clear()
    return {mode: _summary(run, args, stored=stored, model_s=model_s, catch_up_s=catch_up_s)
            for mode, run in runs.items()}, log


@contextlib.contextmanager
def counted_workers():
    """The worker counts dedup chose in this block (embedding and search; reported: while another process holds
    a core it takes one, and the figures are then one core's)."""
    chosen, choose = [], parallel.idle_workers

    def counting(pieces: int) -> int:
        chosen.append(choose(pieces))
        return chosen[-1]

    parallel.idle_workers = counting
    try:
        yield chosen
    finally:
        parallel.idle_workers = choose


def replay(args, work: Path, log: list[tuple[str, list, list]]) -> list[list]:
    """Every logged submit again, in order, on a fresh copy of the seeded SQLite workspace, all in fp32: the
    verdicts the exact path gives for the same examples in the same order."""
    ws = datagen.find_workspace(seeded_sqlite(args, work, "replay"))
    dedup._embed_cache.clear()
    with precision("fp32"):
        datagen.submit(ws, [synthetic(0)])
        verdicts = [datagen.submit(ws, records) for _, records, _ in log]
    dedup._embed_cache.clear()
    return verdicts


def _summary(run: dict, args, **extra) -> dict:
    latencies = sorted(run["latencies"]) or [float("nan")]
    batched = args.batches * args.batch_size
    return {"throughput": batched / run["seconds"] if run["seconds"] else float("nan"),
            "workers": statistics.mean(run["workers"]) if run["workers"] else float("nan"),
            "cpu_ms": 1000 * run["cpu"] / batched if batched else float("nan"),
            "p50": statistics.median(latencies), "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "accepted": run["accepted"], "total": run["total"], **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-count", type=int, default=50_000)
    parser.add_argument("--seed-embeddings", choices=["minilm", "random"], default="minilm")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--precisions", default="fp32,auto",
                        help="embedding precisions to measure, taking turns: fp32 (the anchor), auto (bf16 where "
                             "the CPU has it, near-threshold cosines redone in fp32)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: start a throwaway server)")
    parser.add_argument("--reworded", type=int, default=0, metavar="K",
                        help="make every Kth measured example (K >= 4) a rewording of an earlier one's task")
    parser.add_argument("--no-replay", action="store_true",
                        help="skip replaying every measured submit in fp32 to count changed verdicts")
    parser.add_argument("--check-precision", type=int, metavar="TASKS",
                        help="instead: compare bf16 and fp32 verdicts on TASKS tasks, each reworded 3 ways")
    args = parser.parse_args()
    if args.check_precision:
        from bench import datagen_precision

        datagen_precision.check(args.check_precision)
        return
    if args.reworded and args.reworded < 4:
        parser.error("--reworded K needs K >= 4 (a reworded example rewords the one 3 before it)")
    backends, modes = args.backends.split(","), args.precisions.split(",")

    work = Path(tempfile.mkdtemp(prefix="engrain-bench-"))
    server = None
    try:
        roots = {"sqlite": seeded_sqlite(args, work)}
        if "postgresql" in backends:
            url = args.database_url
            if url is None:
                from tests import postgres_server

                server = postgres_server.start()
                url = server.create_database("bench")
            roots["postgresql"] = seeded_postgres(roots["sqlite"], url, work)
        load_before = os.getloadavg()[0]
        results, logs = {}, {}
        for name in backends:
            results[name], logs[name] = measure(roots[name], args, modes)
        load_after = os.getloadavg()[0]
        if not args.no_replay:
            exact = replay(args, work, logs[backends[0]])
            for name in backends:
                _count_changed(results[name], logs[name], exact)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, args, load_before, load_after)


def _count_changed(results: dict[str, dict], log: list[tuple[str, list, list]], exact: list[list]) -> None:
    """Per mode: how many verdicts (accepted, id, reasons, duplicate of) differ from the fp32 replay's."""
    for mode in results:
        results[mode]["changed"] = 0
    for (mode, _, verdicts), replayed in zip(log, exact):
        results[mode]["changed"] += sum(a.model_dump() != b.model_dump() for a, b in zip(verdicts, replayed))


def report(results: dict[str, dict[str, dict]], args, load_before: float, load_after: float) -> None:
    first = next(iter(next(iter(results.values())).values()))
    reworded = f", every {args.reworded}th measured one a reworded task" if args.reworded else ""
    print(f"\ndatagen submit with {first['stored']:,} examples stored ({args.seed_embeddings} seed embeddings"
          f"{reworded}); "
          f"validate + exact + MinHash LSH + MiniLM cosine + durable commit; {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} before, {load_after:.1f} after; auto = {dedup.fast_precision('bundled')} here")
    for name, modes in results.items():
        r = next(iter(modes.values()))
        print(f"({name}: model load {r['model_s']:.1f} s, index catch-up over stored rows {r['catch_up_s']:.1f} s, "
              + ", ".join(f"{m}: {v['accepted']}/{v['total']} accepted" for m, v in modes.items()) + ")")
    rows = [("batched throughput (ex/s)", "throughput", "{:.0f}", f">= {GOAL_THROUGHPUT:.0f}",
             lambda v: v >= GOAL_THROUGHPUT),
            ("batched CPU time (ms/ex)", "cpu_ms", "{:.2f}", "", None),
            ("embedding workers (mean)", "workers", "{:.2f}", "", None),
            ("single submit p50 (ms)", "p50", "{:.1f}", "", None),
            ("single submit p99 (ms)", "p99", "{:.1f}", f"<= {GOAL_P99_MS:.0f}", lambda v: v <= GOAL_P99_MS)]
    if "changed" in first:
        rows.append(("verdicts changed vs fp32", "changed", "{:d}", "0", lambda v: v == 0))
    columns = [(name, mode) for name, modes in results.items() for mode in modes]
    print(f"\n{'metric':<28}" + "".join(f"{f'{n} {m}':>18}" for n, m in columns) + f"{'goal':>10}  result")
    for label, key, fmt, goal, ok in rows:
        values = [results[n][m][key] for n, m in columns]
        verdict = "" if ok is None else " / ".join("meets" if ok(v) else "MISSES" for v in values)
        print(f"{label:<28}" + "".join(f"{fmt.format(v):>18}" for v in values) + f"{goal:>10}  {verdict}")
    for name, modes in results.items():
        if "fp32" in modes and len(modes) > 1:
            print(f"{name}: batched throughput " + ", ".join(
                f"{m} / fp32 = {v['throughput'] / modes['fp32']['throughput']:.2f}x" for m, v in modes.items()
                if m != "fp32"))


if __name__ == "__main__":
    main()

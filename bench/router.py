"""Router overhead vs the LiteLLM proxy (the anchor), both in front of the same loopback mock upstream.

    .venv/bin/python bench/router.py [--concurrency 8] [--requests 400] [--api openai|anthropic]

`--api anthropic` measures Anthropic's `/v1/messages` instead: our `anthropic` provider (passed through) against
the LiteLLM proxy's `/v1/messages`, both in front of the mock's `/v1/messages`.

Starts, as separate processes: the mock upstream (tests/fakes, OpenAI wire protocol), `engrain serve` twice
(one worker each; model "auto", so every request is scored and routed; once with the `openai` provider a user
would pick for an OpenAI-compatible upstream, once with the `litellm` provider hosted models go through) and
`litellm --config` (one worker). Then sends
the same non-streaming chat request to the mock directly and through each proxy at a fixed concurrency and
prints p50/p99 latency, the latency added over the direct path, and requests/s; plus the routing decision
p50 (scoring + policy) measured in this process over the bundled labelled prompts.

litellm[proxy] would change package versions in .venv (it pins an older rich), so the bench installs the
proxy into its own virtualenv under /tmp (reused between runs).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# run as `python bench/router.py`, this file's folder comes first on sys.path and its name would shadow
# the `router` package it measures
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
PROXY_VENV = Path(tempfile.gettempdir()) / "engrain-bench-litellm"
ANCHOR_LITELLM = "1.106.12"
MASTER_KEY = "sk-engrain-bench"
# distinct prompts, as in real traffic: a router that cached one prompt's score would otherwise look free
PROMPTS = [json.loads(line)["prompt"] for line in (ROOT / "router" / "data" / "labels.jsonl").read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def litellm_proxy_bin() -> Path:
    # A pinned anchor release whose [proxy] extra resolves on the package index: newer ones (1.108+) pin
    # litellm-proxy / litellm-proxy-extras releases the index does not have (checked with `pip install --dry-run`).
    version = ANCHOR_LITELLM
    exe, done = PROXY_VENV / "bin" / "litellm", PROXY_VENV / f".installed-{version}"
    if done.exists():
        return exe
    print(f"installing litellm[proxy]=={version} into {PROXY_VENV} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PROXY_VENV)], check=True)
    subprocess.run([str(PROXY_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={version}"], check=True)
    done.touch()
    return exe


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}; see its log beside the config")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=out,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def load(url: str, model: str, n: int, concurrency: int, headers: dict,
               overhead_header: str | None) -> dict:
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0

    def body(i: int) -> dict:
        return {"model": model, "max_tokens": 16,
                "messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} (request {i})"}]}

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:
        for i in range(20):                                    # warm-up: connections, lazy imports, caches
            await client.post(url, json=body(i))
        queue = list(range(n))

        async def worker() -> None:
            nonlocal errors
            while queue:
                i = queue.pop()
                t0 = time.perf_counter()
                r = await client.post(url, json=body(i))
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    errors += 1
                elif overhead_header and r.headers.get(overhead_header):
                    overheads.append(float(r.headers[overhead_header]))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"p50": statistics.median(latencies), "p99": latencies[int(0.99 * (len(latencies) - 1))],
            "rps": n / wall, "errors": errors, "self_reported_p50": statistics.median(overheads) if overheads else None}


def decision_p50(n: int = 200) -> float:
    from router.config import load_config
    from router.policy import decide
    from router.scoring import Scorer

    cfg = load_config(None)
    scorer = Scorer()
    scorer.score([{"role": "user", "content": "warm up"}])
    times = []
    for i in range(n):
        d = decide(cfg, scorer, {"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}, "auto")
        times.append(d.decision_ms)
    return statistics.median(times)


def start_mock() -> tuple[subprocess.Popen, str]:
    mock = subprocess.Popen([sys.executable, "-c", "import time; from tests.fakes.hosted import start_hosted; "
                             "print(start_hosted().url, flush=True); time.sleep(1e9)"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    return mock, mock.stdout.readline().strip()


def mock_router_toml(provider: str, model: str, api_base: str) -> str:
    """A router config whose one model, the mock, serves both tiers: every request is scored, then forwarded."""
    return f"""[router]
[[router.models]]
name = "mock"
provider = "{provider}"
model = "{model}"
api_base = "{api_base}"
api_key = "x"
[[router.tiers]]
name = "local"
models = ["mock"]
[[router.tiers]]
name = "hosted"
models = ["mock"]
"""


def anthropic_bench(n: int, c: int, proxy_bin: Path) -> None:
    """Anthropic's API: our /v1/messages (the `anthropic` provider, passed through) vs the LiteLLM proxy's
    /v1/messages, both in front of the mock's /v1/messages."""
    procs: list[subprocess.Popen] = []
    try:
        mock, mock_url = start_mock()
        procs.append(mock)
        work = Path(tempfile.mkdtemp(prefix="engrain-bench-anthropic-"))
        (work / "router.toml").write_text(mock_router_toml("anthropic", "mock", mock_url))
        (work / "litellm.yaml").write_text(f"""model_list:
  - model_name: mock
    litellm_params:
      model: anthropic/mock
      api_base: {mock_url}
      api_key: x
""")
        ours_port, theirs_port = free_port(), free_port()
        ours = start([sys.executable, "-c", "from engrain.cli import main; main()", "serve", "--config",
                      str(work / "router.toml"), "--port", str(ours_port)], work / "engrain.log")
        theirs = start([str(proxy_bin), "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                        "--port", str(theirs_port), "--num_workers", "1"], work / "litellm.log",
                       env={"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                            "LITELLM_LOG": "ERROR"})
        procs += [ours, theirs]
        wait_ready(f"http://127.0.0.1:{ours_port}/health", ours)
        wait_ready(f"http://127.0.0.1:{theirs_port}/health/liveliness", theirs)
        version = {"anthropic-version": "2023-06-01"}
        results = {
            "direct to mock": asyncio.run(load(f"{mock_url}/v1/messages", "mock", n, c, version, None)),
            "engrain (anthropic)": asyncio.run(load(f"http://127.0.0.1:{ours_port}/v1/messages", "auto", n, c,
                                                    version, "x-engrain-overhead-ms")),
            "LiteLLM proxy": asyncio.run(load(f"http://127.0.0.1:{theirs_port}/v1/messages", "mock", n, c,
                                              {**version, "x-api-key": MASTER_KEY},
                                              "x-litellm-overhead-duration-ms")),
        }
    finally:
        for proc in procs:
            stop(proc)
    print(f"\nAnthropic /v1/messages, {n} requests per target at concurrency {c}, non-streaming, one worker each")
    table(results)
    base = results["direct to mock"]["p50"]
    ratio = (results["engrain (anthropic)"]["p50"] - base) / max(results["LiteLLM proxy"]["p50"] - base, 1e-9)
    print(f"engrain (anthropic) added p50 / LiteLLM added p50 = {ratio:.2f} (goal <= 0.2)")


def table(results: dict) -> None:
    base, base99 = results["direct to mock"]["p50"], results["direct to mock"]["p99"]
    print(f"{'target':<22}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}{'req/s':>8}{'errors':>8}"
          f"{'self-reported p50':>19}")
    for name, r in results.items():
        added = "" if name.startswith("direct") else f"{r['p50'] - base:.1f}"
        added99 = "" if name.startswith("direct") else f"{r['p99'] - base99:.1f}"
        own = f"{r['self_reported_p50']:.1f}" if r["self_reported_p50"] is not None else "-"
        print(f"{name:<22}{r['p50']:>9.1f}{r['p99']:>9.1f}{added:>11}{added99:>11}{r['rps']:>8.0f}{r['errors']:>8}"
              f"{own:>19}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--api", choices=["openai", "anthropic"], default="openai",
                        help="which API to measure: OpenAI chat completions, or Anthropic messages")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    proxy_bin = litellm_proxy_bin()
    if args.api == "anthropic":
        anthropic_bench(args.requests, args.concurrency, proxy_bin)
        return
    procs: list[subprocess.Popen] = []
    try:
        theirs_port = free_port()
        work = Path(tempfile.mkdtemp(prefix="engrain-bench-"))
        mock, mock_url = start_mock()
        procs.append(mock)
        # ours twice: the mock speaks OpenAI, so a user would pick the `openai` provider (forwarded as is);
        # the `litellm` provider (what hosted Claude/GPT go through) is measured beside it
        for provider, model in (("openai", "mock"), ("litellm", "openai/mock")):
            (work / f"router-{provider}.toml").write_text(mock_router_toml(provider, model, f"{mock_url}/v1"))
        (work / "litellm.yaml").write_text(f"""model_list:
  - model_name: mock
    litellm_params:
      model: openai/mock
      api_base: {mock_url}/v1
      api_key: x
litellm_settings:
  drop_params: true
""")
        ours = {provider: (port, start([sys.executable, "-c", "from engrain.cli import main; main()", "serve",
                                        "--config", str(work / f"router-{provider}.toml"), "--port", str(port)],
                                       work / f"engrain-{provider}.log"))
                for provider, port in (("openai", free_port()), ("litellm", free_port()))}
        theirs = start([str(proxy_bin), "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                        "--port", str(theirs_port), "--num_workers", "1"], work / "litellm.log",
                       env={"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                            "LITELLM_LOG": "ERROR"})
        procs += [proc for _, proc in ours.values()] + [theirs]
        for port, proc in ours.values():
            wait_ready(f"http://127.0.0.1:{port}/health", proc)
        wait_ready(f"http://127.0.0.1:{theirs_port}/health/liveliness", theirs)

        n, c = args.requests, args.concurrency
        results = {
            "direct to mock": asyncio.run(load(f"{mock_url}/v1/chat/completions", "mock", n, c, {}, None)),
            **{f"engrain ({provider})": asyncio.run(load(f"http://127.0.0.1:{port}/v1/chat/completions", "auto", n,
                                                         c, {}, "x-engrain-overhead-ms"))
               for provider, (port, _) in ours.items()},
            "LiteLLM proxy": asyncio.run(load(f"http://127.0.0.1:{theirs_port}/v1/chat/completions", "mock", n, c,
                                              {"authorization": f"Bearer {MASTER_KEY}"},
                                              "x-litellm-overhead-duration-ms")),
        }
    finally:
        for proc in procs:
            stop(proc)
    base = results["direct to mock"]["p50"]
    base99 = results["direct to mock"]["p99"]
    print(f"\nrouter overhead, {n} requests per target at concurrency {c}, non-streaming, one worker each")
    print(f"{'target':<20}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}{'req/s':>8}{'errors':>8}"
          f"{'self-reported p50':>19}")
    for name, r in results.items():
        added = "" if name.startswith("direct") else f"{r['p50'] - base:.1f}"
        added99 = "" if name.startswith("direct") else f"{r['p99'] - base99:.1f}"
        own = f"{r['self_reported_p50']:.1f}" if r["self_reported_p50"] is not None else "-"
        print(f"{name:<20}{r['p50']:>9.1f}{r['p99']:>9.1f}{added:>11}{added99:>11}{r['rps']:>8.0f}{r['errors']:>8}"
              f"{own:>19}")
    for provider in ours:
        ratio = (results[f"engrain ({provider})"]["p50"] - base) / max(results["LiteLLM proxy"]["p50"] - base, 1e-9)
        print(f"engrain ({provider}) added p50 / LiteLLM added p50 = {ratio:.2f} (goal <= 0.5)")
    print(f"routing decision p50 (static MiniLM + head + policy, one prompt): {decision_p50():.2f} ms (goal <= 5)")


if __name__ == "__main__":
    main()

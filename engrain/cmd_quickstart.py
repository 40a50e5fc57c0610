"""`engrain quickstart` and `engrain eval`: the project's main job end to end on the bundled model, and the
behaviour A/B eval that proves the rules moved from the system prompt into the weights."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from engrain.cmd_dataset import QUICKSTART
from engrain.shared import INTERRUPTED, WorkspaceOption, open_workspace, reported

console = Console(stderr=True)  # the story goes to stderr so `--json` leaves stdout to the headline

SIMPLE_PROMPT = "What does Python's enumerate() return? One sentence."
COMPLEX_PROMPT = ("Design the architecture for splitting our monolithic order service into event-driven "
                  "microservices across two regions: data ownership, the migration plan, consistency guarantees "
                  "for payments, failure modes, and how we debug cross-service latency spikes in production.")


def eval_(
    run_id: str = typer.Argument(..., help="Run id (see `engrain models`)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="JSONL of held-out {\"prompt\", \"category\"} "
                                           "(default: the run's held-out split)."),
    base_with_prompt: bool = typer.Option(True, "--base-with-prompt/--no-base-with-prompt",
                                          help="Also replay the base model with the full system prompt (slowest arm)."),
    seed: int = typer.Option(0, "--seed"),
    max_tokens: int = typer.Option(200, "--max-tokens"),
    as_json: bool = typer.Option(False, "--json", help="Print the report's headline as JSON on stdout."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Router deployment (a [[router.models]] name in "
                                        "engrain.toml) that grades `judge` rules."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Replay held-out prompts: base with the system prompt vs base and fine-tuned without it, scored by the rules."""
    from training import RunNotFound

    with reported():
        ws = open_workspace(workspace)
        try:
            report, paths = _run_eval(ws, run_id, prompts, seed=seed, max_tokens=max_tokens,
                                      base_with_prompt=base_with_prompt, judge=judge)
        except RunNotFound as exc:
            raise _error(str(exc).strip("'\"")) from None
    _show_eval(report, paths)
    if as_json:
        print(json.dumps(report.headline()))


def _run_eval(ws, run_id: str, prompts: Optional[Path], *, seed: int, max_tokens: int, base_with_prompt: bool,
              judge: Optional[str] = None):
    import router
    import training

    record = training.get_run(ws, run_id)
    finetuned = record.artifacts.get("gguf") or record.artifacts.get("gguf_f16")
    if not finetuned:
        raise _error(f"run {run_id} has no GGUF yet; run `engrain package {run_id}` first")
    source = prompts or (Path(record.artifacts["heldout"]) if record.artifacts.get("heldout") else None)
    if source is None:
        raise _error(f"run {run_id} has no held-out split: training holds out 10% of each category's examples and "
                     "its data had too few (a category needs at least 2); pass --prompts FILE (JSONL of "
                     "{\"prompt\", \"category\"}, or any exported examples file)")
    items = training.load_prompts(source)
    base_gguf = record.artifacts.get("base_gguf") or str(router.bundled_gguf())
    # The base arm carries the whole system prompt, so give every arm a window that holds it.
    window = 8192
    base = router.ModelConfig(name="base", provider="llamacpp", model=base_gguf, context_window=window,
                              supports_tools=False)
    tuned = router.ModelConfig(name="finetuned", provider="llamacpp", model=finetuned, context_window=window,
                               supports_tools=False)
    done = {"n": 0}
    total = len(items) * (3 if base_with_prompt else 2)

    def tick(answer) -> None:
        done["n"] += 1
        if done["n"] % 10 == 0 or done["n"] == total:
            console.print(f"  eval: {done['n']}/{total} answers", highlight=False)

    grader = None
    if judge:
        deployment = training.find_deployment(router.load_config(ws.config_path), judge)
        grader = training.router_judge(deployment, Path(ws.state_dir) / "judge-cache.jsonl")
    report = training.evaluate(ws, run_id, base=base, finetuned=tuned, prompts=items, seed=seed,
                               max_tokens=max_tokens, base_with_prompt=base_with_prompt, judge=grader,
                               on_answer=tick)
    paths = training.write_eval_report(report, Path(ws.state_dir) / "runs" / run_id)
    training.record_eval(ws, run_id, report.headline(), {f"eval_{k}": str(v) for k, v in paths.items()})
    return report, paths


def _error(message: str):
    from datagen import DatagenError

    return DatagenError(message)


def _show_eval(report, paths: dict[str, Path]) -> None:
    table = Table(title=f"Behaviour eval — {len(report.prompts)} held-out prompts", title_justify="left")
    for column in ("arm", "system prompt", "adherence", "fully adherent", "tool calls valid", "prompt tokens"):
        table.add_column(column)
    for arm in report.arms:
        table.add_row(arm.arm.replace("_", " "), "yes" if arm.with_system_prompt else "no", f"{arm.adherence:.1%}",
                      f"{arm.prompts_fully_adherent:.1%}",
                      "—" if arm.tool_call_validity is None else f"{arm.tool_call_validity:.0%}",
                      f"{arm.prompt_tokens_mean:.0f}")
    console.print(table)
    _show_rules(report)
    console.print(f"prompt tokens saved: {report.prompt_tokens_saved_pct:.1%}; report: {paths['markdown']}, "
                  f"{paths['plot']}", highlight=False)


def _show_rules(report) -> None:
    from training import eval_cell, headline_sentence

    table = Table(title="Per rule: passes/applicable = rate [95% interval]", title_justify="left")
    for column in ("rule", "status", *(arm.arm.replace("_", " ") for arm in report.arms)):
        table.add_column(column)
    for v in report.rules:
        table.add_row(v.rule, v.status, *(eval_cell(v.arms.get(arm.arm)) for arm in report.arms))
    console.print(table)
    console.print(headline_sentence(report).replace("**", ""), highlight=False)


def quickstart(
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w",
                                             help="Directory for the demo workspace (default: a new temporary one)."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model (default: the bundled SmolLM2-135M)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Training steps (default: the bundled "
                                            "recipe's epochs, see [training] in its engrain.toml)."),
    backend: str = typer.Option("auto", "--backend"),
    as_json: bool = typer.Option(False, "--json", help="Print the headline as JSON on the last line of stdout."),
) -> None:
    """init → knowledge → import → coverage → train → package → route → eval, on the bundled model."""
    # Ctrl-C and SIGTERM both unwind through the finally blocks, so the router never outlives us.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(workspace or tempfile.mkdtemp(prefix="engrain-quickstart-")).resolve()
    started = time.monotonic()
    try:
        headline = _quickstart(root, base=base, max_steps=max_steps, backend=backend)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopped everything the quickstart started[/yellow]")
        raise typer.Exit(INTERRUPTED) from None
    console.print(f"[bold]done in {time.monotonic() - started:.0f} s[/bold]; the workspace stays at {root}",
                  highlight=False)
    if as_json:
        print(json.dumps(headline))


def _step(number: int, text: str) -> None:
    # the clock time shows where the minutes go (the budget is 20 on 2 cores); first, so a narrow terminal keeps it
    console.rule(f"[dim]{time.strftime('%H:%M:%S')}[/dim] [bold]{number}/9[/bold] {text}", align="left")


def _quickstart(root: Path, *, base: Optional[str], max_steps: Optional[int], backend: str) -> dict:
    import datagen
    import training

    _step(1, f"init: a workspace from the bundled template in {root}")
    with reported():
        datagen.init_workspace(root, template=QUICKSTART, force=True)
        ws = datagen.find_workspace(root)
    console.print(f"plan: {', '.join(c.name for c in datagen.plan(ws))}; "
                  f"rules: {', '.join(r.name for r in datagen.load_rules(ws))}", highlight=False)

    _step(2, "knowledge: splitting CLAUDE.md, rules, workflows and skills into citable chunks")
    chunks = datagen.add_knowledge(ws, [QUICKSTART / "sources"])
    console.print(f"{len(chunks)} chunks from {len({c.source for c in chunks})} files", highlight=False)

    _step(3, "import: validating and de-duplicating the bundled examples (and a file of broken ones)")
    accepted = rejected = 0
    for path in sorted((QUICKSTART / "examples").glob("*.jsonl")):
        for verdict in datagen.import_file(ws, path, status="approved"):
            accepted += verdict.accepted
            rejected += not verdict.accepted
    console.print(f"{accepted} examples accepted (approved), {rejected} rejected", highlight=False)
    for verdict in datagen.import_file(ws, QUICKSTART / "flawed.jsonl"):
        reason = verdict.reasons[0] if verdict.reasons else f"duplicate of {verdict.duplicate_of}"
        mark = "[green]accepted[/green]" if verdict.accepted else "[red]rejected[/red]"
        console.print(f"  flawed.jsonl #{verdict.index}: {mark} {reason}")

    _step(4, "coverage: approved examples per category against the plan's quotas")
    for cat in datagen.coverage(ws).categories:
        bar = "█" * round(16 * min(1, cat.approved / max(1, cat.quota)))
        console.print(f"  {cat.name:<18} {bar:<16} {cat.approved:>3}/{cat.quota}", highlight=False)

    length = f"{max_steps} steps" if max_steps else "the recipe's epochs"
    _step(5, f"train: LoRA on the approved examples ({length}, CPU is fine)")
    from engrain.cmd_train import progress_display

    with progress_display(console) as on_progress:
        record = training.train(ws, backend=backend, base=base, max_steps=max_steps, on_progress=on_progress)
    losses = record.losses
    console.print(f"run {record.id}: loss {losses[0]:.3f} → {losses[-1]:.3f} ({record.backend})", highlight=False)

    _step(6, "package: merge, GGUF f16 + q4_k_m, parity checks, Modelfile (and `ollama create` if Ollama answers)")
    record = training.package(ws, record.id)
    for name, path in sorted(record.artifacts.items()):
        console.print(f"  {name:<12} {path}", highlight=False)
    if record.ollama_name:
        console.print(f"  ollama model: {record.ollama_name}", highlight=False)
    # Nothing goes into the source checkout: the run's own Modelfile sits beside its GGUF.
    console.print(f"  for Ollama: ollama create engrain-quickstart -f {record.artifacts['modelfile']}",
                  highlight=False)

    _step(7, "route: the router on the new model; one simple and one complex request")
    routed = _route_demo(root, Path(record.artifacts["gguf"]))

    _step(8, "eval: held-out prompts — base with the system prompt vs base and fine-tuned without it")
    report, paths = _run_eval(ws, record.id, QUICKSTART / "eval_prompts.jsonl", seed=0, max_tokens=128,
                              base_with_prompt=True)
    _show_eval(report, paths)

    _step(9, "headline")
    headline = {**report.headline(), "routed": routed}
    console.print(
        f"Behaviours transferred into the weights: [bold]{headline['behaviours_transferred']} of "
        f"{headline['substantive_rules']}[/bold] substantive rules. "
        f"Without the system prompt the fine-tuned model followed the rules on "
        f"[bold]{headline['adherence_finetuned_without_prompt']:.0%}[/bold] of checks "
        f"(base model with the full prompt: {headline['adherence_base_with_prompt']:.0%}, "
        f"base without it: {headline['adherence_base_without_prompt']:.0%}), "
        f"using [bold]{headline['prompt_tokens_saved_pct']:.0%}[/bold] fewer prompt tokens per request.")
    headline["routing_learned"] = _learn_routing(root, paths["json"])
    return headline


def _learn_routing(root: Path, eval_json: Path) -> dict:
    """`engrain router learn --from-eval`: a head fitted on where this fine-tune kept or broke the rules, and
    where the held-out prompts route before (default head) and after (learned head)."""
    from engrain.cmd_router import eval_outcomes
    from router import BUNDLED_HEAD, head_scores, learn_head, load_head, save_head

    records = eval_outcomes(eval_json)
    base = load_head(BUNDLED_HEAD)
    learned, report = learn_head(records, base, source=str(eval_json))
    path = save_head(learned, root / ".engrain" / "router" / "head.json")
    prompts = [r.prompt for r in records]
    before = head_scores(base, prompts) >= base.threshold
    after = head_scores(learned, prompts) >= learned.threshold
    console.print(f"routing learned from this eval ({report.local_failed} of {report.n} fine-tuned answers broke a "
                  f"rule) -> {path}", highlight=False)
    for record, was, now in zip(records, before, after):
        mark = "  " if was == now else "->"
        console.print(f"  {'hosted' if was else 'local':<6} {mark} {'hosted' if now else 'local':<6} "
                      f"{'broke a rule' if not record.weak else 'kept the rules':<14} {record.prompt[:70]}",
                      highlight=False, markup=False)
    return {"prompts": len(records), "local_failed": report.local_failed,
            "strong_before": int(before.sum()), "strong_after": int(after.sum())}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _route_demo(root: Path, gguf: Path) -> list[dict]:
    import httpx

    import router

    config = root / ".engrain" / "quickstart-router.toml"
    config.write_text(router.router_toml(gguf, name="engrain-finetuned", context_window=4096), encoding="utf-8")
    port = _free_port()
    command = [sys.executable, "-m", "engrain", "serve", "--config", str(config), "--port", str(port)]
    console.print("$ engrain serve --config .engrain/quickstart-router.toml --port " + str(port), highlight=False)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    routed = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(base_url, server)
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for prompt in (SIMPLE_PROMPT, COMPLEX_PROMPT):
                body = {"model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 60}
                decision = client.post("/v1/route", json=body).json()
                response = client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                headers = response.headers
                entry = {"prompt": prompt, "tier": headers["x-engrain-tier"], "model": headers["x-engrain-model"],
                         "score": float(headers["x-engrain-score"])}
                routed.append(entry)
                fallbacks = headers.get("x-engrain-fallbacks", "0")
                console.print(f"  [bold]{prompt[:60]}…[/bold]" if len(prompt) > 60 else f"  [bold]{prompt}[/bold]")
                console.print(f"    score {entry['score']:.2f} → decided {decision.get('tier')} "
                              f"({'; '.join(decision.get('reasons', []))}); answered by {entry['model']} "
                              f"on the {entry['tier']} tier, fallbacks: {fallbacks}", highlight=False, markup=False)
    finally:
        _stop(server)
    return routed


def _wait_healthy(base_url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the router exited with status {server.returncode}: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(base_url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the router did not answer /health within {timeout:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
    app.command("quickstart")(quickstart)

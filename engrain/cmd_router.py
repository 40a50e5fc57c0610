"""`engrain serve` and `engrain router train|calibrate|score|eval|learn`."""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import typer

from engrain.shared import WorkspaceOption

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _workspace_root(start: Path | None = None) -> Path | None:
    from datagen import workspace_root   # here: datagen's import is not free, and `serve` may run without one

    return workspace_root(start)


def _workspace_head(start: Path | None = None) -> Path:
    """Where train/calibrate write the head and serve looks for it: <workspace>/.engrain/router/head.json."""
    return (_workspace_root(start) or Path.cwd()) / ".engrain" / "router" / "head.json"


def _config(path: Path | None, start: Path | None = None):
    import tomllib

    from datagen import setting_problems
    from pydantic import ValidationError
    from router import load_config

    root = _workspace_root(start)
    source = path if path else (root / "engrain.toml" if root else None)
    try:
        cfg = load_config(source, state_dir=root / ".engrain" if root else None)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError) as exc:
        problems = setting_problems(exc, "router") if isinstance(exc, ValidationError) else exc
        raise typer.BadParameter(f"router config {source}: {problems}") from None
    if cfg.head is None and _workspace_head(start).exists():
        cfg.head = _workspace_head(start)
    return cfg


class WorkspaceRules:
    """The cascade's reply check: which of the opted-in rules (`only`; "*" = all) a reply breaks, whatever their
    categories. Judge rules take part when a judge is given (`serve --judge`), asked only when every other
    opted-in rule passed (one model call saved per failing reply); a judge that fails leaves the reply standing
    (logged), since a verdict nobody gave must not double every request's cost."""

    def __init__(self, root: Path, judge=None, only: Sequence[str] = ("*",)) -> None:
        import datagen

        rules = [r.model_copy(update={"categories": ["*"]}) for r in datagen.load_rules(datagen.find_workspace(root))]
        self.names = {r.name for r in rules if r.kind != "judge" or judge}
        rules = [r for r in rules if "*" in only or r.name in only]
        self.rules = [r for r in rules if r.kind != "judge"]
        self.judged = [r for r in rules if r.kind == "judge"] if judge else []
        self.judge = judge

    def __call__(self, prompt: str, reply: str) -> list[str]:
        import datagen

        conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        broken = [r.name for r in datagen.check_rules(self.rules, conversation, None) if r.applicable and not r.passed]
        if broken or not self.judged:
            return broken
        try:
            results = datagen.check_rules(self.judged, conversation, None, judge=self.judge)
        except datagen.JudgeError as exc:
            logging.getLogger("engrain.cascade").warning("judge rules not checked, the local reply stands: %s", exc)
            return []
        return [r.name for r in results if r.applicable and not r.passed]


def _reply_check(cfg, judge: str | None, start: Path | None) -> "WorkspaceRules | None":
    if not cfg.cascade:
        return None
    root = _workspace_root(start)
    if root is None:
        raise typer.BadParameter("cascade checks replies against the workspace's rules: run inside a workspace")
    check = WorkspaceRules(root, _rule_judge(cfg, judge, root / ".engrain" / "judge-cache.jsonl") if judge else None,
                           cfg.cascade)
    unknown = sorted(set(cfg.cascade) - check.names - {"*"})
    if unknown:
        raise typer.BadParameter(f"cascade names rules the workspace does not have (judge rules need --judge): "
                                 f"{unknown}")
    return check


def _rule_judge(cfg, name: str, cache: Path | None):
    """training's judge (datagen's prompt and verdict cache, as eval's judge rules) on the router deployment
    `name`."""
    import training
    from datagen import DatagenError

    try:
        return training.router_judge(training.find_deployment(cfg, name), cache)
    except DatagenError as exc:   # no such deployment
        raise typer.BadParameter(str(exc), param_hint="--judge") from None


def _head_path(head: Path | None, cfg_path: Path | None = None) -> Path:
    from router import BUNDLED_HEAD

    if head:
        return head
    cfg = _config(cfg_path)
    return cfg.head or BUNDLED_HEAD


def serve(config: Optional[Path] = typer.Option(None, "--config", help="TOML file ([router] table or whole file)"),
          host: str = typer.Option("127.0.0.1", help="Interface to bind; beyond loopback needs an API key"),
          port: int = typer.Option(8700, help="Port"),
          workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
          api_key: Optional[str] = typer.Option(None, "--api-key", envvar="ENGRAIN_API_KEY",
                                                help="Key clients must send (Bearer or x-api-key)"),
          judge: Optional[str] = typer.Option(None, "--judge", help="Router deployment (a [[models]] name) that "
                                              "grades the workspace's judge rules in the cascade"),
          workspace: Optional[Path] = WorkspaceOption) -> None:
    """Serve routed completions: OpenAI /v1/chat/completions and Anthropic /v1/messages."""
    import router

    if api_key is not None and not api_key.strip():
        typer.echo("error: --api-key (or ENGRAIN_API_KEY) is blank; pass a real key, or leave it unset to serve "
                   "on loopback without one", err=True)
        raise typer.Exit(2)
    if host not in _LOOPBACK and not api_key:
        typer.echo(f"error: binding {host} exposes the router beyond this machine; pass --api-key or set "
                   "ENGRAIN_API_KEY", err=True)
        raise typer.Exit(2)
    cfg = _config(config, workspace)
    check = _reply_check(cfg, judge, workspace)
    if check and workers > 1:
        typer.echo("error: the cascade runs with one worker for now (--workers 1)", err=True)
        raise typer.Exit(2)
    typer.echo(f"engrain router on http://{host}:{port}  (tiers: "
               + ", ".join(f"{t.name}={'/'.join(t.models)}" for t in cfg.tiers) + ")", err=True)
    router.serve(cfg, host=host, port=port, workers=workers, api_key=api_key, reply_check=check)


router_app = typer.Typer(help="Train, calibrate, score and evaluate the router's scorer.", no_args_is_help=True)


@router_app.command()
def train(labels: Path = typer.Option(..., "--labels", help="RouteLLM CSV (prompt, weak-correct, strong-correct), "
                                      "prompt+label CSV/JSONL, or a directory of them"),
          out: Optional[Path] = typer.Option(None, "--out", help="Head file to write (default: workspace's)"),
          target_strong: Optional[float] = typer.Option(None, "--target-strong",
                                                        help="Also calibrate: share of prompts sent strong")) -> None:
    """Train the scorer's head on labelled prompts (embedding, length, digits in one fit; the shipped default is a
    blend of the two, built by bench/router_head.py)."""
    from router import InputError, evaluate_scores, head_scores, load_labels, save_head, threshold_for, train_head

    try:
        rows = load_labels(labels)
        y = [r.needs_strong for r in rows]
        head = train_head(rows, trained_on=str(labels))
    except (OSError, InputError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--labels") from exc
    scores = head_scores(head, [r.prompt for r in rows])
    if target_strong is not None:
        head.threshold = threshold_for(scores, target_strong)
    report = evaluate_scores(scores, rows)
    path = save_head(head, out or _workspace_head())
    typer.echo(f"trained on {len(rows)} prompts ({sum(y)} need the strong model), L2={head.l2:g}, "
               f"threshold {head.threshold:.3f}; training-set APGR {report.apgr:.3f}")
    typer.echo(f"wrote {path}")


@router_app.command()
def calibrate(prompts: Path = typer.Option(..., "--prompts", help="JSONL {\"prompt\"}, CSV with a prompt column, "
                                           "or labelled data"),
              target_strong: float = typer.Option(0.3, "--target-strong", min=0.0, max=1.0,
                                                  help="Share of these prompts to send to the strong tier"),
              head: Optional[Path] = typer.Option(None, "--head", help="Head to calibrate (default: current)"),
              out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default: workspace's head)")
              ) -> None:
    """Set the score threshold so a target share of typical prompts goes to the strong tier."""
    from router import head_scores, load_head, save_head, threshold_for

    texts = _read_prompts(prompts)
    h = load_head(_head_path(head))
    scores = head_scores(h, texts)
    h.threshold = threshold_for(scores, target_strong)
    path = save_head(h, out or _workspace_head())
    share = float((scores >= h.threshold).mean())
    typer.echo(f"threshold {h.threshold:.4f}: {share:.1%} of {len(texts)} prompts go to the strong tier")
    typer.echo(f"wrote {path}")


def _read_prompts(path: Path) -> list[str]:
    from router import InputError, load_labels

    try:
        if path.suffix == ".jsonl":
            texts = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
        elif path.suffix == ".csv" or path.is_dir():
            texts = [r.prompt for r in load_labels(path)]
        else:
            texts = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, InputError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--prompts") from exc
    if not texts:
        raise typer.BadParameter(f"{path}: no prompts", param_hint="--prompts")
    return texts


@router_app.command()
def score(config: Optional[Path] = typer.Option(None, "--config", help="Router config (tier names, threshold)"),
          head: Optional[Path] = typer.Option(None, "--head", help="Head file (default: current)")) -> None:
    """Read JSONL {"prompt": ...} on stdin, write {"score", "tier"} per line (errors as {"error"})."""
    from router import head_scores, load_head, threshold_of, tier_by_score

    cfg = _config(config)
    h = load_head(head or cfg.head or _head_path(None, config))
    threshold = threshold_of(cfg, h)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)["prompt"]
            if not isinstance(prompt, str):
                raise TypeError("'prompt' must be a string")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            print(json.dumps({"error": f"line needs a JSON object with a string 'prompt' ({exc})"}), flush=True)
            continue
        s = float(head_scores(h, [prompt])[0])
        print(json.dumps({"score": round(s, 6), "tier": tier_by_score(cfg, s, threshold)}), flush=True)


@router_app.command("eval")
def eval_(labels: Path = typer.Option(..., "--labels", help="RouteLLM CSV(s), prompt+label file/directory, or an "
                                      "arena-hard-auto directory (question.jsonl + model_judgment/)"),
          head: Optional[Path] = typer.Option(None, "--head", help="Head file (default: current)"),
          cv: int = typer.Option(0, "--cv", min=0, help="Instead of scoring with the head, K-fold cross-validate "
                                 "its recipe on these prompts (folds of whole groups: MMLU subjects, files)"),
          samples: int = typer.Option(1000, "--bootstrap", min=100, help="Bootstrap resamples for the intervals")
          ) -> None:
    """Print CPT(50%), CPT(80%), APGR with bootstrap 95% intervals, and the oracle line (RouteLLM's definitions)."""
    from rich.console import Console
    from rich.table import Table

    from router import InputError, bootstrap, cross_validated_scores, evaluate_scores, head_scores, load_head, \
        load_labels

    try:
        data = load_labels(labels)
    except (OSError, InputError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--labels") from exc
    path = _head_path(head)
    h = load_head(path)
    prompts = [d.prompt for d in data]
    scores = cross_validated_scores(data, k=cv, feature_names=h.features, embedding=h.embedding_model,
                                    blend=h.blend) if cv > 1 else head_scores(h, prompts)
    r = evaluate_scores(scores, data)
    ci = bootstrap(scores, data, samples=samples)
    how = f"{cv}-fold cross-validation of head {path.name}'s recipe" if cv > 1 else f"head {path.name}"
    table = Table(title=f"router eval: {labels} ({r.n} prompts), {how}")
    for col in ("router", "CPT(50%)", "CPT(80%)", "APGR", "quality"):
        table.add_column(col)
    graded = max(r.weak, r.strong) > 1.0        # a judge's score, not right/wrong
    q = (lambda v: f"{v:.2f} (judge score)") if graded else (lambda v: f"{v:.1%}")
    table.add_row("engrain head", f"{r.cpt50:.1%}", f"{r.cpt80:.1%}", f"{r.apgr:.3f}", "")
    table.add_row("  95% interval (bootstrap)", f"[{ci['cpt50'].low:.1%}, {ci['cpt50'].high:.1%}]",
                  f"[{ci['cpt80'].low:.1%}, {ci['cpt80'].high:.1%}]",
                  f"[{ci['apgr'].low:.3f}, {ci['apgr'].high:.3f}]", "")
    table.add_row("random (expected)", "50.0%", "80.0%", "0.500", "")
    table.add_row("weak only", "", "", "", f"{q(r.weak)}  (0% strong)")
    table.add_row("strong only", "", "", "", f"{q(r.strong)}  (100% strong)")
    table.add_row("oracle", f"{r.oracle_cpt50:.1%}", f"{r.oracle_cpt80:.1%}", "",
                  f"{q(r.oracle)}  ({r.oracle_strong_share:.1%} strong)")
    Console(width=130).print(table)


def eval_outcomes(report: Path) -> list:
    """Labels from a behaviour eval (training's eval.json): each held-out prompt's fine-tuned answer, without the
    system prompt, kept every applicable rule (good for the local tier) or broke one."""
    from router import InputError, Labelled

    data = json.loads(report.read_text(encoding="utf-8"))
    prompts = data["prompts"]
    out = []
    for answer in data["answers"]:
        if answer["arm"] != "finetuned_without_prompt":
            continue
        item = prompts[answer["prompt_index"]]
        good = all(answer["rules"].values()) and answer.get("tool_calls_valid") is not False
        out.append(Labelled(item["prompt"], float(good), 1.0, item.get("category") or ""))
    if not out:
        raise InputError(f"{report}: no fine-tuned answers in this eval")
    return out


def _eval_report(run: str) -> Path:
    path = Path(run)
    if path.is_file():
        return path
    if (path / "eval.json").is_file():
        return path / "eval.json"
    root = _workspace_root()
    candidate = (root / ".engrain" / "runs" / run / "eval.json") if root else None
    if candidate is None or not candidate.is_file():
        raise typer.BadParameter(f"no eval for {run!r}: run `engrain eval {run}` first (or pass an eval.json)",
                                 param_hint="--from-eval")
    return candidate


def _local_model(cfg, name: Optional[str]):
    name = name or next(iter(cfg.tier(cfg.weak_tier).models), None)
    model = cfg.model(name) if name else None
    if model is None:
        raise typer.BadParameter(f"no model {name!r} in the router config", param_hint="--model")
    return model


def _task_judge(cfg, name: str):
    """(criterion, prompt, reply) -> passed, graded by the router deployment `name`."""
    judge = _rule_judge(cfg, name, cfg.state_db.parent / "judge-cache.jsonl" if cfg.state_db else None)
    return lambda criterion, prompt, reply: judge.grade(criterion, prompt, reply)[0]


@router_app.command()
def learn(from_eval: Optional[str] = typer.Option(None, "--from-eval", help="Run id (or eval.json) of a behaviour "
                                                  "eval: rule-breaking fine-tuned answers mean 'needs strong'"),
          tasks: Optional[Path] = typer.Option(None, "--tasks", help="JSONL {prompt, answer | tests | judge}: the "
                                               "local model answers each, graded by exact answer, by running the "
                                               "tests, or by the --judge model against the criterion"),
          from_feedback: bool = typer.Option(False, "--from-feedback", help="Good/bad verdicts sent to "
                                             "POST /v1/feedback about local answers"),
          model: Optional[str] = typer.Option(None, "--model", help="Local model for --tasks (default: the weak "
                                              "tier's first)"),
          judge: Optional[str] = typer.Option(None, "--judge", help="Router deployment (a [[models]] name) that "
                                              "grades --tasks lines with a `judge` criterion"),
          timeout: float = typer.Option(10.0, "--timeout", help="Seconds each task's tests may run"),
          max_tokens: int = typer.Option(512, "--max-tokens", help="Answer length for --tasks"),
          config: Optional[Path] = typer.Option(None, "--config", help="Router config (models, tiers)"),
          head: Optional[Path] = typer.Option(None, "--head", help="Head to start from (default: current)"),
          out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default: the workspace's head)")
          ) -> None:
    """Learn routing from what the local model actually did: fit and calibrate a head on those outcomes."""
    from router import InputError, feedback_outcomes, label_tasks, labels_from_feedback, learn_head, load_head, \
        load_tasks, save_head

    if sum(bool(x) for x in (from_eval, tasks, from_feedback)) != 1:
        raise typer.BadParameter("give exactly one of --from-eval, --tasks, --from-feedback")
    cfg = _config(config)
    base = load_head(head or cfg.head or _head_path(None, config))
    anonymous: list = []
    try:
        if from_eval:
            source = _eval_report(from_eval)
            records = eval_outcomes(source)
        elif tasks:
            source = tasks
            local = _local_model(cfg, model)
            typer.echo(f"grading {local.name} on {tasks} ...", err=True)
            records = label_tasks(load_tasks(tasks), local, max_tokens=max_tokens, timeout=timeout,
                                  judge=_task_judge(cfg, judge) if judge else None)
        else:
            source = cfg.state_db
            if source is None or not source.exists():
                raise typer.BadParameter("no decision log yet: serve inside a workspace and send POST /v1/feedback")
            records, anonymous = labels_from_feedback(feedback_outcomes(source), cfg.weak_tier)
    except (OSError, json.JSONDecodeError, KeyError, InputError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not records and not anonymous:
        raise typer.BadParameter(f"{source}: no outcomes about the local tier to learn from")
    learned, report = learn_head(records, base, anonymous=anonymous, source=str(source))
    path = save_head(learned, out or _workspace_head())
    typer.echo(f"learned from {report.n} outcomes ({report.local_failed} where the local answer failed): "
               + ("refitted the embedding head" if report.refit else "kept the head, moved per-topic priors"))
    if report.refit:
        typer.echo(f"cross-validated APGR on these prompts: learned {_apgr(report.cv_apgr_learned)}, "
                   f"previous head {_apgr(report.apgr_base)}")
    typer.echo("priors: " + (", ".join(f"{k} {v:+.2f}" for k, v in report.priors.items()) or "none")
               + f"; threshold {learned.threshold:.3f}")
    typer.echo(f"wrote {path}")


def _apgr(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(router_app, name="router")

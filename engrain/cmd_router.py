"""`engrain serve` and `engrain router train|calibrate|score|eval`."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _workspace_root() -> Path | None:
    for env in ("ENGRAIN_WORKSPACE", "CLAUDE_PROJECT_DIR"):
        if os.environ.get(env) and (Path(os.environ[env]) / "engrain.toml").exists():
            return Path(os.environ[env])
    for d in [Path.cwd(), *Path.cwd().parents]:
        if (d / "engrain.toml").exists():
            return d
    return None


def _workspace_head() -> Path:
    """Where train/calibrate write the head and serve looks for it: <workspace>/.engrain/router/head.json."""
    return (_workspace_root() or Path.cwd()) / ".engrain" / "router" / "head.json"


def _config(path: Path | None):
    from router import load_config

    root = _workspace_root()
    source = path if path else (root / "engrain.toml" if root else None)
    try:
        cfg = load_config(source)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"router config {source}: {_problems(exc)}") from None
    if cfg.head is None and _workspace_head().exists():
        cfg.head = _workspace_head()
    return cfg


def _problems(exc: Exception) -> str:
    """A config error as one line per problem (`router.models.0.provider: Input should be ...`), not pydantic's
    multi-line dump with its URLs."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'router'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _head_path(head: Path | None, cfg_path: Path | None = None) -> Path:
    from router.config import BUNDLED_HEAD

    if head:
        return head
    cfg = _config(cfg_path)
    return cfg.head or BUNDLED_HEAD


def serve(config: Optional[Path] = typer.Option(None, "--config", help="TOML file ([router] table or whole file)"),
          host: str = typer.Option("127.0.0.1", help="Interface to bind; beyond loopback needs an API key"),
          port: int = typer.Option(8700, help="Port"),
          workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
          api_key: Optional[str] = typer.Option(None, "--api-key", envvar="ENGRAIN_API_KEY",
                                                help="Key clients must send (Bearer or x-api-key)")) -> None:
    """Serve routed completions: OpenAI /v1/chat/completions and Anthropic /v1/messages."""
    import uvicorn

    from router.listen import uvicorn_options

    if api_key is not None and not api_key.strip():
        typer.echo("error: --api-key (or ENGRAIN_API_KEY) is blank; pass a real key, or leave it unset to serve "
                   "on loopback without one", err=True)
        raise typer.Exit(2)
    if host not in _LOOPBACK and not api_key:
        typer.echo(f"error: binding {host} exposes the router beyond this machine; pass --api-key or set "
                   "ENGRAIN_API_KEY", err=True)
        raise typer.Exit(2)
    cfg = _config(config)
    typer.echo(f"engrain router on http://{host}:{port}  (tiers: "
               + ", ".join(f"{t.name}={'/'.join(t.models)}" for t in cfg.tiers) + ")", err=True)
    if workers > 1:
        with tempfile.TemporaryDirectory(prefix="engrain-router-") as scratch:
            _share_between_workers(cfg, Path(scratch), port)
            os.environ["ENGRAIN_ROUTER_CONFIG_JSON"] = cfg.model_dump_json()
            if api_key:
                os.environ["ENGRAIN_API_KEY"] = api_key
            uvicorn.run("router.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level="warning", **uvicorn_options(cfg))
        return
    from router.app import create_app

    uvicorn.run(create_app(cfg, api_key=api_key), host=host, port=port, log_level="warning", **uvicorn_options(cfg))


def _share_between_workers(cfg, scratch: Path, port: int) -> None:
    """The workers share cooldowns through the router's SQLite file (the workspace's .engrain/router.db, else
    one in `scratch`) and answer /metrics for the whole server (router/fleet.py)."""
    from router import fleet

    root = _workspace_root()
    state = root / ".engrain" if root else scratch
    cfg.cooldown_db = cfg.cooldown_db or state / "router.db"
    fleet.prepare_metrics_dir(state / f"router-metrics-{port}")


router_app = typer.Typer(help="Train, calibrate, score and evaluate the router's scorer.", no_args_is_help=True)


@router_app.command()
def train(labels: Path = typer.Option(..., "--labels", help="RouteLLM CSV (prompt, weak-correct, strong-correct), "
                                      "prompt+label CSV/JSONL, or a directory of them"),
          out: Optional[Path] = typer.Option(None, "--out", help="Head file to write (default: workspace's)"),
          target_strong: Optional[float] = typer.Option(None, "--target-strong",
                                                        help="Also calibrate: share of prompts sent strong")) -> None:
    """Train the scorer's head on labelled prompts."""
    from router import evaluate, features, scoring
    from router.head import fit, save_head

    try:
        rows = evaluate.load_labels(labels)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--labels") from exc
    x = scoring.rows([r.prompt for r in rows])
    import numpy as np

    y = [r.needs_strong for r in rows]
    try:
        head = fit(x, np.array(y), embedding_model=scoring.BUNDLED_EMBEDDER, feature_names=features.NAMES,
                   trained_on=str(labels))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--labels") from exc
    scores = head.predict(x)
    if target_strong is not None:
        head.threshold = evaluate.threshold_for(scores, target_strong)
    report = evaluate.evaluate(scores, rows)
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
    from router import evaluate
    from router.head import load_head, save_head
    from router.scoring import rows

    texts = _read_prompts(prompts)
    h = load_head(_head_path(head))
    scores = h.predict(rows(texts, name=h.embedding_model))
    h.threshold = evaluate.threshold_for(scores, target_strong)
    path = save_head(h, out or _workspace_head())
    share = float((scores >= h.threshold).mean())
    typer.echo(f"threshold {h.threshold:.4f}: {share:.1%} of {len(texts)} prompts go to the strong tier")
    typer.echo(f"wrote {path}")


def _read_prompts(path: Path) -> list[str]:
    from router import evaluate

    try:
        if path.suffix == ".jsonl":
            texts = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
        elif path.suffix == ".csv" or path.is_dir():
            texts = [r.prompt for r in evaluate.load_labels(path)]
        else:
            texts = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--prompts") from exc
    if not texts:
        raise typer.BadParameter(f"{path}: no prompts", param_hint="--prompts")
    return texts


@router_app.command()
def score(config: Optional[Path] = typer.Option(None, "--config", help="Router config (tier names, threshold)"),
          head: Optional[Path] = typer.Option(None, "--head", help="Head file (default: current)")) -> None:
    """Read JSONL {"prompt": ...} on stdin, write {"score", "tier"} per line (errors as {"error"})."""
    from router.head import load_head
    from router.scoring import rows

    cfg = _config(config)
    h = load_head(head or cfg.head or _head_path(None, config))
    threshold = cfg.threshold if cfg.threshold is not None else h.threshold
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)["prompt"]
            if not isinstance(prompt, str):
                raise TypeError("'prompt' must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            print(json.dumps({"error": f"line needs a JSON object with a string 'prompt' ({exc})"}), flush=True)
            continue
        s = float(h.predict(rows([prompt], name=h.embedding_model))[0])
        print(json.dumps({"score": round(s, 6), "tier": cfg.strong_tier if s >= threshold else cfg.weak_tier}),
              flush=True)


@router_app.command("eval")
def eval_(labels: Path = typer.Option(..., "--labels", help="RouteLLM CSV(s) or prompt+label file/directory"),
          head: Optional[Path] = typer.Option(None, "--head", help="Head file (default: current)")) -> None:
    """Print CPT(50%), CPT(80%), APGR and the oracle line (RouteLLM's definitions)."""
    from rich.console import Console
    from rich.table import Table

    from router import evaluate
    from router.head import load_head
    from router.scoring import rows

    try:
        data = evaluate.load_labels(labels)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--labels") from exc
    path = _head_path(head)
    h = load_head(path)
    r = evaluate.evaluate(h.predict(rows([d.prompt for d in data], name=h.embedding_model)),
                          data)
    table = Table(title=f"router eval: {labels} ({r.n} prompts), head {path.name}")
    for col in ("router", "CPT(50%)", "CPT(80%)", "APGR", "quality"):
        table.add_column(col)
    table.add_row("engrain head", f"{r.cpt50:.1%}", f"{r.cpt80:.1%}", f"{r.apgr:.3f}", "")
    table.add_row("random (expected)", "50.0%", "80.0%", "0.500", "")
    table.add_row("weak only", "", "", "", f"{r.weak:.1%}  (0% strong)")
    table.add_row("strong only", "", "", "", f"{r.strong:.1%}  (100% strong)")
    table.add_row("oracle", f"{r.oracle_cpt50:.1%}", f"{r.oracle_cpt80:.1%}", "",
                  f"{r.oracle:.1%}  ({r.oracle_strong_share:.1%} strong)")
    Console(width=110).print(table)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(router_app, name="router")

"""`engrain train`, `engrain package`, `engrain models`: the training commands."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from engrain.shared import INTERRUPTED, WorkspaceOption, open_workspace, reported

models_app = typer.Typer(help="The training run registry.", invoke_without_command=True, no_args_is_help=False)


def clock(seconds: float | None) -> str:
    """An ETA as H:MM:SS (or '-' before the first step has a time)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@contextmanager
def progress_display(console) -> Iterator[Callable]:
    """A progress bar per stage (step, loss, tokens/s, ETA) for training's on_progress callback; where stderr is
    not a terminal (logs, CI), a plain line every 10 steps instead, since rich draws nothing live there."""
    from rich.progress import BarColumn, Progress, TextColumn

    def fields(status) -> dict:
        return {"loss": f"{status.loss:.4f}" if status.loss is not None else "-",
                "tps": f"{status.tokens_per_s:.0f}" if status.tokens_per_s else "-", "eta": clock(status.eta_s)}

    if not console.is_terminal:
        def line(status) -> None:
            if status.step and (status.step % 10 == 0 or status.step == status.total_steps):
                eta = f", ETA {status.eta_s:.0f} s" if status.eta_s else ""
                values = fields(status)
                console.print(f"  {status.stage} step {status.step}/{status.total_steps} loss {values['loss']} "
                              f"{values['tps']} tok/s{eta}", highlight=False)

        yield line
        return
    columns = (TextColumn("[bold]{task.fields[stage]}"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
               TextColumn("ETA {task.fields[eta]}"))  # engrain's estimate: rich's own gives up on slow steps
    tasks: dict[str, int] = {}
    with Progress(*columns, console=console, transient=False) as progress:
        def show(status) -> None:
            if status.stage not in tasks:
                tasks[status.stage] = progress.add_task("", total=status.total_steps or None, stage=status.stage,
                                                        **fields(status))
            progress.update(tasks[status.stage], completed=status.step, total=status.total_steps or None,
                            **fields(status))

        yield show


def train_cmd(
    backend: str = typer.Option("auto", help="auto | unsloth | mlx | hf | hosted"),
    base: Optional[str] = typer.Option(None, help="'smollm2', an HF folder, a .gguf, or a run id to continue"),
    stage: Optional[str] = typer.Option(None, help="run only this [[training.stages]] stage"),
    max_steps: Optional[int] = typer.Option(None, min=1, help="steps per stage (overrides engrain.toml)"),
    include_pending: bool = typer.Option(False, help="train on pending examples too (default: approved only)"),
    resume: Optional[str] = typer.Option(None, help="resume this run from its last checkpoint"),
    workspace: Optional[Path] = WorkspaceOption,
    processes: int = typer.Option(1, min=1, help="train with N local processes under torchrun (hf backend, "
                                  "torch.distributed DDP: NCCL on CUDA, one GPU each; gloo on CPU)"),
) -> None:
    """Fine-tune a LoRA adapter on the workspace's examples; prints the run id on the last line."""
    from rich.console import Console

    import training

    if backend not in ("auto", "unsloth", "mlx", "hf", "hosted"):
        raise typer.BadParameter("choose auto, unsloth, mlx, hf or hosted", param_hint="--backend")
    with reported():
        ws = open_workspace(workspace)
        if processes > 1:
            args = ["train", "--backend", backend, "--workspace", str(ws.root)]
            for flag, value in (("--base", base), ("--stage", stage), ("--max-steps", max_steps),
                                ("--resume", resume)):
                args += [flag, str(value)] if value is not None else []
            raise typer.Exit(training.launch(ws, processes, backend,
                                             args + (["--include-pending"] if include_pending else [])))
        if not training.main_process():   # another rank of a multi-process run: rank 0 reports
            training.train(ws, backend=backend, base=base, stage=stage, max_steps=max_steps,
                           include_pending=include_pending, run_id=resume)
            return
    console = Console(stderr=True)
    training.interrupt_on_sigterm()
    with progress_display(console) as show, reported():
        try:
            record = training.train(ws, backend=backend, base=base, stage=stage, max_steps=max_steps,
                                    include_pending=include_pending, run_id=resume, on_progress=show)
        except KeyboardInterrupt:
            _interrupted(ws, resume)
    for warning in record.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if record.hosted_model:
        typer.echo(f"hosted model: {record.hosted_model}", err=True)
    metrics = record.metrics
    if metrics:
        console.print(f"loss {metrics['first_loss']:.4f} -> {metrics['final_loss']:.4f} over "
                      f"{int(metrics['steps'])} steps; plot: {record.artifacts.get('loss_plot')}")
    typer.echo(record.id)


def _interrupted(ws, resume: Optional[str]) -> None:
    """Ctrl-C or SIGTERM: say which run stopped and how to resume it (the runner recorded both), exit 130."""
    import training

    runs = [r for r in training.list_runs(ws) if r.id == resume] if resume else training.list_runs(ws)
    stopped = next((r for r in runs if r.error and r.error.startswith("interrupted")), None)
    message = (f"run {stopped.id} {stopped.error}" if stopped
               else "interrupted before a run was recorded; nothing to resume")
    typer.secho(message, fg=typer.colors.YELLOW, err=True)
    raise typer.Exit(INTERRUPTED)


def package_cmd(
    run: str = typer.Argument(..., help="run id (see `engrain models`)"),
    quant: Optional[str] = typer.Option(None, help="GGUF quantization (default from engrain.toml: q4_k_m)"),
    name: Optional[str] = typer.Option(None, help="Ollama model name (default engrain-<run id>)"),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Merge, convert to GGUF, check, quantize, write the LoRA GGUF and a Modelfile, `ollama create`."""
    import training

    with reported():
        record = training.package(open_workspace(workspace), run, quant=quant, name=name,
                                  on_status=lambda m: typer.echo(f"- {m}", err=True))
    for key in ("gguf", "lora_gguf", "modelfile"):
        typer.echo(f"{key}: {record.artifacts[key]}")
    typer.echo(f"ollama: {record.ollama_name or 'not created (no server answered)'}")


@models_app.callback()
def models_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="print the registry as JSON"),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """List training runs (newest first)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = workspace
        return
    import training

    with reported():
        runs = training.list_runs(open_workspace(workspace))
    if as_json:
        # Through model_dump_json: a NaN loss becomes "NaN", so the output stays valid JSON.
        typer.echo(json.dumps([json.loads(r.model_dump_json()) for r in runs], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "state", "backend", "base", "dataset", "final loss", "ollama", "artifacts")
    for r in runs:
        loss = r.metrics.get("final_loss")
        table.add_row(r.id, r.state, r.backend, Path(r.base).name or r.base, r.dataset_hash[:8],
                      f"{loss:.4f}" if loss is not None else "-", r.ollama_name or r.hosted_model or "-",
                      ", ".join(sorted(k for k in r.artifacts if ":" not in k)))
    Console(width=200).print(table)


@models_app.command("show")
def show_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id"),
             workspace: Optional[Path] = WorkspaceOption) -> None:
    """Everything recorded about one run, as JSON (config, stages, metrics, artifacts with paths)."""
    import training

    with reported():
        record = training.get_run(open_workspace(workspace or ctx.obj), run)
    typer.echo(record.model_dump_json(indent=2))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("package")(package_cmd)
    app.add_typer(models_app, name="models")

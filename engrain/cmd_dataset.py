"""Dataset commands: init, knowledge, import, export, review, generate, coverage (all over the datagen package)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape
from rich.table import Table

from engrain.shared import FAILED, USAGE, WorkspaceOption, console, errors, fail, open_workspace, reported

if TYPE_CHECKING:
    from datagen import Workspace

QUICKSTART = Path(__file__).parent / "quickstart" / "workspace"

knowledge_app = typer.Typer(help="Knowledge sources (CLAUDE.md, rules, workflows, skills) the briefs draw on.",
                            no_args_is_help=True)


def init(
    directory: Path = typer.Argument(Path("."), help="Project directory to initialize."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing engrain.toml."),
    template: Optional[str] = typer.Option(None, "--template",
                                           help="A workspace directory whose engrain.toml to copy, or 'quickstart'."),
    claude: bool = typer.Option(False, "--claude", help="Also register the MCP server for Claude Code."),
    router: Optional[str] = typer.Option(None, "--router", metavar="URL",
                                         help="With --claude: the project's Claude Code goes through the router at "
                                              "URL (.claude/settings.json env)."),
) -> None:
    """Write engrain.toml (commented, with the default plan) and .engrain/; safe to run again."""
    from datagen import init_workspace

    if router and not claude:
        fail("--router configures Claude Code: use it with --claude", USAGE)
    fragments = []
    try:
        from training import TOML_TEMPLATE as training_toml  # until training exports it, init writes no [training]

        fragments.append(training_toml)
    except ImportError:
        pass
    try:
        from router import TOML_TEMPLATE as router_toml

        fragments.append(router_toml)
    except ImportError:
        pass
    source = QUICKSTART if template == "quickstart" else (Path(template) if template else None)
    with reported():
        written = init_workspace(directory, force=force, template=source, extra_toml=fragments)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    if not written:
        console.print(f"{directory.resolve()} is already an engrain workspace (use --force to rewrite engrain.toml)",
                      highlight=False)
    if claude:
        from server import register_for_claude_code

        with reported():
            result = register_for_claude_code(directory.resolve(), router_url=router, on_change=lambda message:
                                              console.print(message, highlight=False, markup=False))
        if router:
            console.print(f"Claude Code in {directory.resolve()} now goes through the router at {router} "
                          "(.claude/settings.json)", highlight=False)
        if result:
            console.print(str(result), highlight=False)


@knowledge_app.command("add")
def knowledge_add(
    paths: list[Path] = typer.Argument(..., help="Markdown/text files or directories of them."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Ingest sources into chunks; re-adding a changed file replaces its chunks."""
    from datagen import add_knowledge

    with reported():
        chunks = add_knowledge(open_workspace(workspace), paths)
    sources = sorted({c.source for c in chunks})
    console.print(f"{len(chunks)} chunks from {len(sources)} files", highlight=False)


@knowledge_app.command("list")
def knowledge_list(
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Only chunks serving this category."),
    as_json: bool = typer.Option(False, "--json", help="One JSON chunk per line (text included)."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Show every chunk: id, source and lines, heading, the categories it serves, how often briefs handed it out."""
    from datagen import list_knowledge

    with reported():
        chunks = [c for c in list_knowledge(open_workspace(workspace)) if category is None or category in c.categories]
    if as_json:
        for chunk in chunks:
            print(chunk.model_dump_json())
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("source")
    table.add_column("lines", no_wrap=True)
    table.add_column("heading")
    table.add_column("categories")
    table.add_column("uses")
    for chunk in chunks:
        table.add_row(chunk.id, escape(chunk.source), f"{chunk.line_start}-{chunk.line_end}", escape(chunk.heading),
                      ", ".join(chunk.categories) or "-", str(chunk.uses))
    console.print(table)


@knowledge_app.command("tag")
def knowledge_tag(
    chunk: str = typer.Argument(..., help="Chunk id (see `engrain knowledge list`)."),
    category: str = typer.Option(..., "--category", "-c", help="The plan category it serves (or does not)."),
    remove: bool = typer.Option(False, "--remove", help="Take the chunk out of the category instead."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Edit which categories a chunk serves; your edits win over the automatic mapping and survive `map`."""
    from datagen import tag_knowledge

    with reported():
        updated = tag_knowledge(open_workspace(workspace), chunk, category, remove=remove)
    console.print(f"{updated.id} serves: {', '.join(updated.categories) or 'no category'}", highlight=False,
                  markup=False)


@knowledge_app.command("map")
def knowledge_map(workspace: Optional[Path] = WorkspaceOption) -> None:
    """Re-map every chunk to the plan's categories (run it after editing categories, sources or keywords)."""
    from datagen import remap_knowledge

    with reported():
        chunks = remap_knowledge(open_workspace(workspace))
    unmapped = sum(not c.categories for c in chunks)
    console.print(f"{len(chunks)} chunks mapped; {unmapped} serve no category", highlight=False)


def import_(
    files: list[Path] = typer.Argument(..., help="Alpaca, ShareGPT, OpenAI chat or engrain JSON/JSONL files, or "
                                       "export folders (mlx, openai, HF save_to_disk)."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Category for records that carry none."),
    approve: bool = typer.Option(False, "--approve", help="Store accepted examples as approved, not pending."),
    as_json: bool = typer.Option(False, "--json", help="Stream one JSON verdict per line as each batch commits."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Validate, dedup and store examples; exit status 1 when any was rejected."""
    from datagen import import_file

    accepted = rejected = skipped = 0
    with reported():
        ws = open_workspace(workspace)
        for path in files:
            if not path.exists():
                fail(f"{path} does not exist", USAGE)
            for verdict in import_file(ws, path, category=category, status="approved" if approve else "pending"):
                accepted += verdict.accepted
                skipped += verdict.skipped
                rejected += not (verdict.accepted or verdict.skipped)
                if as_json:
                    print(verdict.model_dump_json(), flush=True)
                elif not (verdict.accepted or verdict.skipped):
                    console.print(f"[red]rejected[/red] {escape(str(path))}#{verdict.index}:", highlight=False)
                    for reason in verdict.reasons:
                        console.print(f"  - {reason}", highlight=False, markup=False)
    if not as_json:
        status = "approved" if approve else "pending"
        extra = f", {skipped} skipped (per-turn prefixes of an mlx export)" if skipped else ""
        console.print(f"{accepted} accepted ({status}), {rejected} rejected{extra}", highlight=False)
    if rejected:
        raise typer.Exit(FAILED)


def export(
    fmt: str = typer.Option(..., "--format", "-f",
                            help="native (lossless: ids, status, reviews) | openai | alpaca | sharegpt | mlx | hf"),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory, relative to the workspace "
                             "(inside it unless --force)."),
    status: str = typer.Option("approved", "--status", help="approved | pending | rejected | all"),
    split: float = typer.Option(0.9, "--split", help="Share of each category that goes to train."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed for the split."),
    category: Optional[list[str]] = typer.Option(None, "--category", "-c", help="Only these categories."),
    force: bool = typer.Option(False, "--force",
                               help="Allow an output directory outside the workspace, and overwrite existing files."),
    reviews: bool = typer.Option(True, "--reviews/--no-reviews", help="native: include the review history."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Write the dataset in a training format, split by category (native: one lossless file)."""
    from datagen import export as run_export

    if status not in ("approved", "pending", "rejected", "all"):
        fail("--status must be approved, pending, rejected or all", USAGE)
    with reported():
        result = run_export(open_workspace(workspace), fmt, out, status=status, split=split, seed=seed,
                            force=force, categories=category or None, reviews=reviews)
    counts = ", ".join(f"{name} {n}" for name, n in result.counts.items())
    console.print(f"{fmt} export in {result.out}: {counts}", highlight=False)
    if result.skipped:
        console.print(f"skipped {result.skipped} examples the {fmt} format cannot hold (tool calls)", highlight=False)


def review(
    approve: Optional[list[str]] = typer.Option(None, "--approve", help="Approve this example id (repeatable)."),
    reject: Optional[list[str]] = typer.Option(None, "--reject", help="Reject this example id (repeatable)."),
    notes: str = typer.Option("", "--notes", help="Notes recorded with the decisions."),
    reviewer: str = typer.Option("human", "--reviewer", help="Who decides (recorded with each event)."),
    show: Optional[str] = typer.Option(None, "--show", help="Print one example in full, with its review events."),
    show_json: bool = typer.Option(False, "--json", help="With --show: the stored row as JSON instead."),
    judge: Optional[str] = typer.Option(None, "--judge", help="PROVIDER/MODEL that suggests verdicts (litellm)."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL for the judge's API."),
    status: str = typer.Option("pending", "--status", help="Which examples to list: pending|approved|rejected|all."),
    category: Optional[str] = typer.Option(None, "--category", "-c"),
    offset: int = typer.Option(0, "--offset"),
    limit: int = typer.Option(20, "--limit"),
    web: bool = typer.Option(False, "--web", help="Serve the review web page (queue, examples, dashboard)."),
    host: str = typer.Option("127.0.0.1", "--host", help="With --web: address to listen on (loopback by default)."),
    port: int = typer.Option(8710, "--port", help="With --web: port to listen on."),
    token: Optional[str] = typer.Option(None, "--token", envvar="ENGRAIN_REVIEW_TOKEN", show_envvar=True,
                                        help="With --web: secret the page requires; needed for a non-loopback host."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """List examples (paged), record approve/reject decisions, ask a model judge, or serve the review page."""
    import datagen

    with reported():
        ws = open_workspace(workspace)
        if web:
            _serve_web(ws, host, port, token)
            return
        if approve or reject:
            for verdict, ids in (("approve", approve or []), ("reject", reject or [])):
                for example_id in ids:
                    datagen.review_example(ws, example_id, verdict, notes=notes, reviewer=reviewer)
                    console.print(f"{verdict}d {example_id}", highlight=False)
            return
        if show:
            stored = datagen.get_example(ws, show)
            if show_json:
                print(stored.model_dump_json(indent=2))
            else:
                _print_example(stored)
            return
        if judge:
            events = datagen.judge_pending(ws, judge, limit=limit, api_base=api_base, on_event=lambda e: console.print(
                f"{e.example_id}: suggests {e.verdict} (score {e.score:.2f}) {e.notes}", highlight=False,
                markup=False))
            console.print(f"{len(events)} suggestions recorded", highlight=False)
            return
        page = datagen.list_examples(ws, category=category, status=None if status == "all" else status,
                                     offset=offset, limit=limit)
    table = Table()
    for column in ("id", "category", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("first user message")
    table.add_column("latest review")
    with reported():
        for item in page.items:
            first = next((m.content or "" for m in item.example.messages if m.role == "user"), "")
            events = datagen.get_example(ws, item.id).reviews
            last = events[-1] if events else None
            latest = f"{last.reviewer}: {last.verdict}" if last else ""
            table.add_row(item.id, item.example.category or "", item.status, " ".join(first.split())[:70], latest)
    console.print(table)
    end = min(page.offset + len(page.items), page.total)
    more = f"; next page: --offset {end}" if end < page.total else ""
    console.print(f"{page.offset + 1 if page.items else 0}-{end} of {page.total} {status}{more}", highlight=False)


def _serve_web(ws: "Workspace", host: str, port: int, token: Optional[str]) -> None:
    from server import ExposureError, serve_web

    try:
        serve_web(ws, host=host, port=port, token=token)
    except ExposureError as exc:
        fail(str(exc), USAGE)


def _when(timestamp: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _plain(text: str = "") -> None:
    console.print(text, highlight=False, markup=False)


def _print_example(stored) -> None:
    """One example as a reader wants it: who/when, then the conversation turn by turn, then the review events."""
    example = stored.example
    say = _plain
    say(f"{stored.id}  {example.category}  {stored.status}  by {stored.generator}")
    say(f"created {_when(stored.created_at)}, updated {_when(stored.updated_at)}")
    if example.source_refs:
        say(f"cites: {', '.join(example.source_refs)}")
    if example.tools:
        say(f"tools: {', '.join(t.get('function', {}).get('name', '?') for t in example.tools)}")
    for message in example.messages:
        label = message.role if message.role != "tool" else f"tool result ({message.tool_call_id})"
        console.rule(label, align="left", style="dim")
        if message.content:
            say(message.content)
        for call in message.tool_calls or []:
            say(f"→ {call.function.name}({call.function.arguments})  [{call.id}]")
    console.rule("reviews", align="left", style="dim")
    for event in stored.reviews or []:
        score = f" score {event.score:.2f}" if event.score is not None else ""
        say(f"{_when(event.created_at)}  {event.reviewer}: {event.kind} {event.verdict}{score}  {event.notes}".rstrip())
    if not stored.reviews:
        say("none yet")


def generate(
    category: str = typer.Option(..., "--category", "-c"),
    count: int = typer.Option(10, "--count", "-n", min=1),
    model: str = typer.Option(..., "--model", "-m", help="PROVIDER/MODEL as litellm names it."),
    workers: int = typer.Option(4, "--workers", "-k", min=1),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of the model's API."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Generate examples headlessly from the category's brief; each goes through validation and dedup."""
    import datagen

    def show(verdict) -> None:
        if verdict.accepted:
            console.print(f"[green]accepted[/green] {verdict.id}", highlight=False)
        else:
            console.print(f"[red]rejected[/red]: {escape('; '.join(verdict.reasons))}", highlight=False)

    with reported():
        result = datagen.generate(open_workspace(workspace), category, count, model, workers=workers,
                                  api_base=api_base, on_verdict=show)
    for error in result.errors:
        errors.print(f"model call failed: {error}", highlight=False, markup=False)
    console.print(f"{len(result.accepted)}/{count} accepted, {len(result.rejected)} rejected, "
                  f"{len(result.errors)} failed calls", highlight=False)
    console.print(result.usage.describe(model), highlight=False, markup=False)
    if len(result.accepted) < count:
        raise typer.Exit(FAILED)


def coverage(
    as_json: bool = typer.Option(False, "--json", help="Print {\"categories\": [...]} as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the coverage chart to this PNG."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Per category: approved / pending / rejected against the plan's quota."""
    import datagen

    with reported():
        report = datagen.coverage(open_workspace(workspace))
    if as_json:
        print(report.model_dump_json())
    else:
        table = Table("category", "approved", "pending", "rejected", "quota")
        table.add_column("progress", no_wrap=True)
        for row in report.categories:
            table.add_row(row.name, str(row.approved), str(row.pending), str(row.rejected), str(row.quota),
                          _bar(row.approved, row.pending, row.quota))
        console.print(table)
    if plot:
        _plot(report, plot)
        if not as_json:
            console.print(f"wrote {plot}", highlight=False)


def _bar(approved: int, pending: int, quota: int, width: int = 16) -> str:
    """Approved in green, pending in yellow, the rest of the quota dim."""
    total = max(quota, approved + pending, 1)
    done = round(width * approved / total)
    waiting = min(width - done, round(width * pending / total))
    percent = f" {100 * approved / quota:.0f}%" if quota else ""
    rest = width - done - waiting
    return f"[green]{'█' * done}[/green][yellow]{'█' * waiting}[/yellow][dim]{'░' * rest}[/dim]{percent}"


def _plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row.name for row in report.categories]
    approved = [row.approved for row in report.categories]
    pending = [row.pending for row in report.categories]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(names, approved, color="tab:green", label="approved")
    ax.barh(names, pending, left=approved, color="tab:olive", label="pending")
    ax.scatter([row.quota for row in report.categories], names, marker="|", s=300, color="black", label="quota")
    ax.invert_yaxis()
    ax.set_xlabel("examples")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(knowledge_app, name="knowledge")
    app.command("import")(import_)
    app.command("export")(export)
    app.command("review")(review)
    app.command("generate")(generate)
    app.command("coverage")(coverage)


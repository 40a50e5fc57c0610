"""The MCP tools: each a plain function `(workspace, input) -> result` over datagen and training, registered from
the TOOLS table at the end (the shape of mcp-server-git)."""
from __future__ import annotations

import inspect
import json
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, get_type_hints

import anyio
import datagen
import training
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import BaseModel, create_model

from server.models import (
    MAX_BATCH,
    BriefInput,
    BriefResult,
    CategoryCount,
    CoverageInput,
    CoverageResult,
    ExampleItem,
    ExamplesInput,
    ExamplesPage,
    ExportInput,
    ExportResult,
    KnowledgeChunk,
    ReviewInput,
    ReviewResult,
    RunStatusInput,
    RunStatusResult,
    SubmitInput,
    SubmitResult,
    TrainInput,
    TrainResult,
    Verdict,
)
from server.paths import inside_workspace
from server.schemas import compact

# datagen rejects examples over [dataset] max_chars with a reason; this guard only stops absurd payloads
# (megabytes) before validation, embedding and dedup spend time on them.
MAX_EXAMPLE_BYTES = 256 * 1024
PREVIEW_CHARS = 160
POLL_S = 2.0
# Claude Code warns above 10k tokens of tool output: a full page stops short of that (~4 characters a token).
FULL_PAGE_CHARS = 32_000
STATUS_AFTER = {"approve": "approved", "reject": "rejected"}

Progress = Callable[[float, "float | None", str], Awaitable[None]]


def _hints(*, read_only: bool, destructive: bool = False, idempotent: bool, open_world: bool = False):
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


def examples(ws: datagen.Workspace, args: ExamplesInput) -> ExamplesPage:
    """Page through stored examples (oldest first). Use full=true to read them before review."""
    if args.category and ws.config.category(args.category) is None:
        raise ToolError(f"unknown category {args.category!r}; choose one of: {_names(ws)}")
    page = datagen.list_examples(ws, category=args.category or None, status=args.status, offset=args.offset,
                                 limit=args.limit)
    items: list[ExampleItem] = []
    spent = 0
    for s in page.items:
        messages = [m.model_dump(exclude_none=True) for m in s.example.messages] if args.full else []
        spent += len(json.dumps(messages))
        if items and spent > FULL_PAGE_CHARS:
            break  # the rest of the page comes with next_offset
        preview = _first_user(s.example.messages)
        items.append(ExampleItem(id=s.id, category=s.example.category, status=s.status, preview=preview,
                                 messages=messages))
    end = args.offset + len(items)
    return ExamplesPage(total=page.total, items=items, next_offset=end if end < page.total else None)


def coverage(ws: datagen.Workspace, args: CoverageInput) -> CoverageResult:
    """Per-category counts against each quota, and what to generate next."""
    cats = [
        CategoryCount(name=c.name, quota=c.quota, approved=c.approved, pending=c.pending, rejected=c.rejected,
                      remaining=max(c.quota - c.approved - c.pending, 0))
        for c in datagen.coverage(ws).categories
    ]
    return CoverageResult(categories=cats, next_step=_next_step(cats))


async def run_status(ws: datagen.Workspace, args: RunStatusInput, report_progress: Progress) -> RunStatusResult:
    """A training run's state, stage, step, loss, ETA and artifacts. wait_s > 0 waits for the end (with
    progress notifications)."""
    deadline = anyio.current_time() + args.wait_s
    while True:
        status = await anyio.to_thread.run_sync(_run_status, ws, args.run_id)
        if status.state in ("done", "failed") or anyio.current_time() >= deadline:
            return status
        await report_progress(status.step, status.total_steps or None, _progress_line(status))
        await anyio.sleep(POLL_S)


def brief(ws: datagen.Workspace, args: BriefInput) -> BriefResult:
    """How to write training examples for a category: guidance, rules, knowledge to cite, the format
    with a valid sample, tool schemas, openings to avoid. Then write them and call submit."""
    b = datagen.build_brief(ws, args.category, args.count)
    return BriefResult(
        category=b.category,
        remaining=b.remaining,
        description=b.description,
        guidance=b.guidance,
        rules=[f"{r.name}: {r.description}" for r in b.rules],
        knowledge=[KnowledgeChunk(id=c.id, source=c.source, heading=c.heading, text=c.text) for c in b.knowledge],
        format=b.format,
        sample=b.sample,
        tools=b.tools,
        avoid=b.avoid,
    )


def submit(ws: datagen.Workspace, args: SubmitInput) -> SubmitResult:
    """Store examples. Each gets a verdict: accepted with an id, every reason it was rejected, or the id
    it duplicates. Fix and resubmit the rejected ones."""
    _check_batch(args.examples)
    verdicts = [Verdict.model_validate(v, from_attributes=True)
                for v in datagen.submit(ws, args.examples, generator="mcp")]
    accepted = sum(v.accepted for v in verdicts)
    return SubmitResult(accepted=accepted, rejected=len(verdicts) - accepted, verdicts=verdicts)


def review(ws: datagen.Workspace, args: ReviewInput) -> ReviewResult:
    """Approve or reject examples against their category's rules and guidance; a reject needs notes.
    Only approved examples are trained on."""
    unnoted = [d.id for d in args.decisions if d.verdict == "reject" and not d.notes.strip()]
    if unnoted:
        raise ToolError(f"add notes saying what is wrong to each reject: {', '.join(unnoted)}")
    missing = [d.id for d in args.decisions if not _exists(ws, d.id)]
    if missing:
        raise ToolError(f"no example with id {', '.join(missing)}; list ids with the examples tool")
    for d in args.decisions:
        datagen.review_example(ws, d.id, d.verdict, notes=d.notes, reviewer="mcp")
    return ReviewResult(recorded=[f"{d.id}: {STATUS_AFTER[d.verdict]}" for d in args.decisions])


def export(ws: datagen.Workspace, args: ExportInput) -> ExportResult:
    """Write the approved examples to a training format (stratified train/valid split)."""
    target = inside_workspace(ws.root, ws.state_dir, args.out or f"exports/{args.format}")
    result = datagen.export(ws, args.format, target, force=args.force)
    root = ws.root.resolve()
    return ExportResult(format=args.format, files=[str(Path(f).resolve().relative_to(root)) for f in result.files],
                        counts=dict(result.counts))


def train(ws: datagen.Workspace, args: TrainInput) -> TrainResult:
    """Start fine-tuning on the approved examples in the background ([training] config). Returns a run
    id; follow it with run_status."""
    try:
        run_id = training.start_training(ws, stage=args.stage or None, max_steps=args.max_steps or None,
                                         include_pending=args.include_pending)
    except training.TrainingError as exc:   # a bad [training] config or an unknown stage, saying what to fix
        raise ToolError(str(exc)) from exc
    return TrainResult(run_id=run_id)


TOOLS: list[tuple[Callable[..., Any], ToolAnnotations]] = [
    (examples, _hints(read_only=True, idempotent=True)),
    (coverage, _hints(read_only=True, idempotent=True)),
    (run_status, _hints(read_only=True, idempotent=True)),
    # Each brief counts the knowledge chunks it hands out (so the next brief gets others): a write, not idempotent.
    (brief, _hints(read_only=False, idempotent=False)),
    # Resubmitting the same example is caught by dedup, so a repeated call adds nothing: idempotent.
    (submit, _hints(read_only=False, idempotent=True)),
    # A decision is recorded as an event; the example's status ends the same however often it is repeated.
    (review, _hints(read_only=False, idempotent=True)),
    (export, _hints(read_only=False, destructive=True, idempotent=True)),
    # The workspace's [training] config may name the hosted backend, which uploads to a fine-tuning API.
    (train, _hints(read_only=False, idempotent=False, open_world=True)),
]


def build_tools(ws: datagen.Workspace, *, read_only: bool) -> list[Tool]:
    """The tools over `ws`; read_only leaves out every tool that writes."""
    return [_mcp_tool(ws, fn, hints) for fn, hints in TOOLS if hints.read_only_hint or not read_only]


def _mcp_tool(ws: datagen.Workspace, fn: Callable[..., Any], hints: ToolAnnotations) -> Tool:
    # Built here rather than with @mcp.tool() so the schemas can be compacted before anyone lists them.
    types = get_type_hints(fn)
    input_type: type[BaseModel] = types[list(inspect.signature(fn).parameters)[1]]
    arguments = create_model(f"{fn.__name__}Arguments", __base__=(input_type, ArgModelBase))
    metadata = FuncMetadata(arg_model=arguments, output_model=types["return"])
    metadata.output_schema = compact(metadata.output_schema)
    return Tool(fn=partial(_call, ws, fn, input_type), name=fn.__name__, annotations=hints, is_async=True,
                description=" ".join(inspect.cleandoc(fn.__doc__).split()), context_kwarg="ctx",
                parameters=compact(arguments.model_json_schema(by_alias=True)), fn_metadata=metadata)


async def _call(ws: datagen.Workspace, fn: Callable[..., Any], input_type: type[BaseModel], ctx: Context,
                **arguments: Any) -> BaseModel:
    """Run one tool; datagen's errors already say what to do, so the model reads them instead of a bare
    'Error executing tool'."""
    args = input_type.model_validate(arguments)
    try:
        if inspect.iscoroutinefunction(fn):
            return await fn(ws, args, ctx.report_progress)
        return await anyio.to_thread.run_sync(fn, ws, args)
    except datagen.DatagenError as exc:
        raise ToolError(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:     # a read-only .engrain/, a full disk
        raise ToolError(datagen.describe_failure(exc)) from exc


def _first_user(messages: list[Any]) -> str:
    for m in messages:
        if m.role == "user":
            text = " ".join((m.content or "").split())
            return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return ""


def _check_batch(examples: list[dict[str, Any]]) -> None:
    """Refuse the whole call before anything is stored, so an oversized batch leaves the dataset unchanged."""
    if len(examples) > MAX_BATCH:
        raise ToolError(f"{len(examples)} examples in one call; send at most {MAX_BATCH} per call")
    for i, ex in enumerate(examples):
        size = len(json.dumps(ex, ensure_ascii=False).encode(errors="surrogatepass"))  # bad text gets its verdict later
        if size > MAX_EXAMPLE_BYTES:
            raise ToolError(
                f"example {i} is {size:,} bytes of JSON; the limit is {MAX_EXAMPLE_BYTES:,} bytes per example "
                "(and [dataset] max_chars characters of message text); shorten it and submit again. Nothing was stored."
            )


def _names(ws: datagen.Workspace) -> str:
    return ", ".join(c.name for c in ws.config.categories)


def _exists(ws: datagen.Workspace, example_id: str) -> bool:
    try:
        datagen.get_example(ws, example_id)
    except datagen.ExampleNotFound:
        return False
    return True


def _run_status(ws: datagen.Workspace, run_id: str) -> RunStatusResult:
    try:
        s = training.run_status(ws, run_id)
    except training.RunNotFound as exc:
        raise ToolError(str(exc)) from exc
    return RunStatusResult(
        run_id=s.run_id,
        state=s.state,
        stage=s.stage or "",
        step=s.step,
        total_steps=s.total_steps,
        loss=s.loss,
        eta_s=s.eta_s,
        artifacts=s.artifacts,
        error=s.error or "",
    )


def _progress_line(s: RunStatusResult) -> str:
    parts = [s.state]
    if s.stage:
        parts.append(f"stage {s.stage}")
    if s.total_steps:
        parts.append(f"step {s.step}/{s.total_steps}")
    if s.loss is not None:
        parts.append(f"loss {s.loss:.4f}")
    if s.eta_s is not None:
        parts.append(f"ETA {s.eta_s:.0f}s")
    return ", ".join(parts)


def _next_step(cats: list[CategoryCount]) -> str:
    short = sorted((c for c in cats if c.remaining), key=lambda c: -c.remaining)
    if short:
        c = short[0]
        count = min(c.remaining, 10)
        return f"Generate for '{c.name}' next ({c.remaining} to go): call brief(category='{c.name}', count={count})."
    if any(c.pending for c in cats):
        return "Every quota is filled with approved or pending examples; review the pending ones."
    return "Every quota is met with approved examples; export or train."

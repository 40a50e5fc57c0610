"""The MCP tools: thin, typed adapters from the protocol to datagen and training."""
from __future__ import annotations

import inspect
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import datagen
import training
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import Field

from server.models import (
    BriefResult,
    CategoryCount,
    CoverageResult,
    Decision,
    ExampleItem,
    ExamplesPage,
    ExportFormat,
    ExportResult,
    KnowledgeChunk,
    ReviewResult,
    RunStatusResult,
    StatusFilter,
    SubmitResult,
    TrainResult,
    Verdict,
)
from server.paths import inside_workspace
from server.schemas import compact

# datagen rejects examples over [dataset] max_chars with a reason; this guard only stops absurd payloads
# (megabytes) before validation, embedding and dedup spend time on them.
MAX_EXAMPLE_BYTES = 256 * 1024
MAX_BATCH = 50
PREVIEW_CHARS = 160
POLL_S = 2.0
# Claude Code warns above 10k tokens of tool output: a full page stops short of that (~4 characters a token).
FULL_PAGE_CHARS = 32_000
STATUS_AFTER = {"approve": "approved", "reject": "rejected"}


def _hints(*, read_only: bool, destructive: bool = False, idempotent: bool, open_world: bool = False):
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """datagen's errors already say what to do; hand them to the model instead of a bare 'Error executing tool'."""
    try:
        yield
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


def _remaining(quota: int, approved: int, pending: int) -> int:
    return max(quota - approved - pending, 0)


def build_tools(ws: datagen.Workspace, *, read_only: bool) -> list[Tool]:
    """The tools over `ws`; read_only leaves out every tool that writes."""
    built: list[Tool] = []

    def tool(hints: ToolAnnotations):
        def add(fn):
            built.append(_compact_tool(fn, hints))
            return fn

        return add

    @tool(_hints(read_only=True, idempotent=True))
    def examples(
        category: Annotated[str, Field(description="empty for all")] = "",
        status: StatusFilter = "all",
        offset: Annotated[int, Field(ge=0)] = 0,
        limit: Annotated[int, Field(ge=1, le=20)] = 10,
        full: Annotated[bool, Field(description="include messages")] = False,
    ) -> ExamplesPage:
        """Page through stored examples (oldest first). Use full=true to read them before review."""
        if category and ws.config.category(category) is None:
            raise ToolError(f"unknown category {category!r}; choose one of: {_names(ws)}")
        with _as_tool_errors():
            page = datagen.list_examples(ws, category=category or None, status=status, offset=offset, limit=limit)
        items: list[ExampleItem] = []
        spent = 0
        for s in page.items:
            messages = [m.model_dump(exclude_none=True) for m in s.example.messages] if full else []
            spent += len(json.dumps(messages))
            if items and spent > FULL_PAGE_CHARS:
                break  # the rest of the page comes with next_offset
            preview = _first_user(s.example.messages)
            items.append(ExampleItem(id=s.id, category=s.example.category, status=s.status, preview=preview,
                                     messages=messages))
        end = offset + len(items)
        return ExamplesPage(total=page.total, items=items, next_offset=end if end < page.total else None)

    @tool(_hints(read_only=True, idempotent=True))
    def coverage() -> CoverageResult:
        """Per-category counts against each quota, and what to generate next."""
        with _as_tool_errors():
            cov = datagen.coverage(ws)
        cats = [
            CategoryCount(
                name=c.name,
                quota=c.quota,
                approved=c.approved,
                pending=c.pending,
                rejected=c.rejected,
                remaining=_remaining(c.quota, c.approved, c.pending),
            )
            for c in cov.categories
        ]
        return CoverageResult(categories=cats, next_step=_next_step(cats))

    @tool(_hints(read_only=True, idempotent=True))
    async def run_status(
        run_id: Annotated[str, Field(description="from train")],
        ctx: Context,
        wait_s: Annotated[int, Field(ge=0, le=600)] = 0,
    ) -> RunStatusResult:
        """A training run's state, stage, step, loss, ETA and artifacts. wait_s > 0 waits for the end (with
        progress notifications)."""
        deadline = anyio.current_time() + wait_s
        while True:
            status = await anyio.to_thread.run_sync(_run_status, ws, run_id)
            if status.state in ("done", "failed") or anyio.current_time() >= deadline:
                return status
            await ctx.report_progress(status.step, status.total_steps or None, _progress_line(status))
            await anyio.sleep(POLL_S)

    if read_only:
        return built

    # Each brief counts the knowledge chunks it hands out (so the next brief gets others): a write, not idempotent.
    @tool(_hints(read_only=False, idempotent=False))
    def brief(
        category: Annotated[str, Field(description="plan category")],
        count: Annotated[int, Field(ge=1, le=20)] = 5,
    ) -> BriefResult:
        """How to write training examples for a category: guidance, rules, knowledge to cite, the format
        with a valid sample, tool schemas, openings to avoid. Then write them and call submit."""
        with _as_tool_errors():
            b = datagen.build_brief(ws, category, count)
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

    # Resubmitting the same example is caught by dedup, so a repeated call adds nothing: idempotent.
    @tool(_hints(read_only=False, idempotent=True))
    def submit(
        examples: Annotated[
            list[dict[str, Any]],
            Field(min_length=1, description=f"1-{MAX_BATCH} examples in the brief's format"),
        ],
    ) -> SubmitResult:
        """Store examples. Each gets a verdict: accepted with an id, every reason it was rejected, or the id
        it duplicates. Fix and resubmit the rejected ones."""
        _check_batch(examples)
        with _as_tool_errors():
            stored = datagen.submit(ws, examples, generator="mcp")
        verdicts = [Verdict.model_validate(v, from_attributes=True) for v in stored]
        accepted = sum(v.accepted for v in verdicts)
        return SubmitResult(accepted=accepted, rejected=len(verdicts) - accepted, verdicts=verdicts)

    # A decision is recorded as an event; the example's status ends the same however often it is repeated.
    @tool(_hints(read_only=False, idempotent=True))
    def review(decisions: Annotated[list[Decision], Field(min_length=1, max_length=50)]) -> ReviewResult:
        """Approve or reject examples against their category's rules and guidance; a reject needs notes.
        Only approved examples are trained on."""
        unnoted = [d.id for d in decisions if d.verdict == "reject" and not d.notes.strip()]
        if unnoted:
            raise ToolError(f"add notes saying what is wrong to each reject: {', '.join(unnoted)}")
        with _as_tool_errors():
            missing = [d.id for d in decisions if not _exists(ws, d.id)]
            if missing:
                raise ToolError(f"no example with id {', '.join(missing)}; list ids with the examples tool")
            for d in decisions:
                datagen.review_example(ws, d.id, d.verdict, notes=d.notes, reviewer="mcp")
        return ReviewResult(recorded=[f"{d.id}: {STATUS_AFTER[d.verdict]}" for d in decisions])

    @tool(_hints(read_only=False, destructive=True, idempotent=True))
    def export(
        format: ExportFormat,
        out: Annotated[str, Field(description="in the workspace; default exports/<format>")] = "",
        force: Annotated[bool, Field(description="overwrite existing files")] = False,
    ) -> ExportResult:
        """Write the approved examples to a training format (stratified train/valid split)."""
        target = inside_workspace(ws.root, ws.state_dir, out or f"exports/{format}")
        with _as_tool_errors():
            result = datagen.export(ws, format, target, force=force)
        root = ws.root.resolve()
        return ExportResult(
            format=format,
            files=[str(Path(f).resolve().relative_to(root)) for f in result.files],
            counts=dict(result.counts),
        )

    # The workspace's [training] config may name the hosted backend, which uploads to a fine-tuning API.
    @tool(_hints(read_only=False, idempotent=False, open_world=True))
    def train(
        stage: Annotated[str, Field(description="empty for all stages")] = "",
        max_steps: Annotated[int, Field(ge=0, description="0 for the config's")] = 0,
        include_pending: bool = False,
    ) -> TrainResult:
        """Start fine-tuning on the approved examples in the background ([training] config). Returns a run
        id; follow it with run_status."""
        try:
            run_id = training.start_training(
                ws, stage=stage or None, max_steps=max_steps or None, include_pending=include_pending
            )
        except ValueError as exc:
            # training reports a bad [training] config or an unknown stage as ValueError saying what to fix.
            raise ToolError(str(exc)) from exc
        return TrainResult(run_id=run_id)

    return built


def _compact_tool(fn, hints: ToolAnnotations) -> Tool:
    # Built here rather than with @mcp.tool() so the schemas can be compacted before anyone lists them.
    tool = Tool.from_function(fn, description=" ".join(inspect.cleandoc(fn.__doc__).split()), annotations=hints)
    tool.parameters = compact(tool.parameters)
    tool.fn_metadata.output_schema = compact(tool.fn_metadata.output_schema)
    return tool


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

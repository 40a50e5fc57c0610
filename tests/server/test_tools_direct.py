"""Each MCP tool as the plain function it is: (workspace, input model) -> result model, without a server or client.
The SDK-client tests (test_tools.py) check the same tools as Claude Code sees them."""
from __future__ import annotations

import datagen
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from training import registry

from server import tools
from server.models import (BriefInput, CoverageInput, Decision, ExamplesInput, ExportInput, ReviewInput,
                           RunStatusInput, SubmitInput, TrainInput)
from tests.server.conftest import invalid_example, stored_total, valid_example


def _stored(ws: datagen.Workspace, count: int) -> list[str]:
    return [v.id for v in tools.submit(ws, SubmitInput(examples=[valid_example(i) for i in range(count)])).verdicts]


def test_submit_gives_one_verdict_per_example(workspace):
    result = tools.submit(workspace, SubmitInput(examples=[valid_example(1), invalid_example(), valid_example(1)]))
    assert (result.accepted, result.rejected) == (1, 2)
    first, bad, again = result.verdicts
    assert first.accepted and first.id and not bad.accepted and bad.reasons
    assert again.duplicate_of == first.id and stored_total(workspace) == 1


def test_examples_pages_and_previews(workspace):
    ids = _stored(workspace, 3)
    page = tools.examples(workspace, ExamplesInput(limit=2))
    assert [i.id for i in page.items] == ids[:2] and page.total == 3 and page.next_offset == 2
    assert page.items[0].preview.startswith("Explain how") and page.items[0].messages == []
    full = tools.examples(workspace, ExamplesInput(offset=2, full=True))
    assert [i.id for i in full.items] == ids[2:] and full.next_offset is None
    assert [m["role"] for m in full.items[0].messages] == ["user", "assistant"]


def test_coverage_counts_against_quotas_and_says_what_next(workspace):
    _stored(workspace, 2)
    result = tools.coverage(workspace, CoverageInput())
    counts = {c.name: (c.quota, c.pending, c.remaining) for c in result.categories}
    assert counts == {"tool-use": (20, 2, 18), "code-review": (10, 0, 10)}
    assert "brief(category='tool-use', count=10)" in result.next_step


def test_brief_carries_rules_format_and_a_valid_sample(workspace):
    result = tools.brief(workspace, BriefInput(category="tool-use", count=3))
    assert result.category == "tool-use" and result.remaining == 20
    assert any(r.startswith("no-todo: ") for r in result.rules)
    assert tools.submit(workspace, SubmitInput(examples=[result.sample])).accepted == 1


def test_review_records_each_decision(workspace):
    keep, drop = _stored(workspace, 2)
    decisions = [Decision(id=keep, verdict="approve"), Decision(id=drop, verdict="reject", notes="off topic")]
    result = tools.review(workspace, ReviewInput(decisions=decisions))
    assert result.recorded == [f"{keep}: approved", f"{drop}: rejected"]
    assert datagen.get_example(workspace, drop).status == "rejected"


def test_export_writes_inside_the_workspace(workspace):
    (keep,) = _stored(workspace, 1)
    tools.review(workspace, ReviewInput(decisions=[Decision(id=keep, verdict="approve")]))
    result = tools.export(workspace, ExportInput(format="openai"))
    assert result.format == "openai" and all(f.startswith("exports/openai/") for f in result.files)
    assert sum(result.counts.values()) == 1


async def test_run_status_reports_progress_until_the_deadline(workspace, monkeypatch):
    monkeypatch.setattr(tools, "POLL_S", 0.05)
    record = registry.save(workspace, registry.RunRecord(id=registry.new_run_id(), created_at=registry.now(),
                                                         state="running", backend="hf"))
    registry.write_status(workspace, registry.RunStatus(run_id=record.id, state="running", stage="all", step=3,
                                                        total_steps=10, loss=1.5))
    seen: list[tuple[float, float | None, str]] = []

    async def report(done: float, total: float | None, message: str) -> None:
        seen.append((done, total, message))

    status = await tools.run_status(workspace, RunStatusInput(run_id=record.id, wait_s=1), report)
    assert (status.state, status.stage, status.step, status.loss) == ("running", "all", 3, 1.5)
    assert seen and seen[0] == (3, 10, "running, stage all, step 3/10, loss 1.5000")


async def test_train_starts_a_run_that_run_status_follows_to_its_end(workspace):
    # The hosted backend needs no base model on disk, so with nothing approved the detached run fails at once.
    with workspace.config_path.open("a") as toml:
        toml.write('\n[training]\nbackend = "hosted"\n')
    ws = datagen.find_workspace(workspace.root)
    started = tools.train(ws, TrainInput(max_steps=1))

    async def report(*_: object) -> None:
        pass

    status = await tools.run_status(ws, RunStatusInput(run_id=started.run_id, wait_s=120), report)
    assert (status.run_id, status.state) == (started.run_id, "failed") and "approve" in status.error


# tool, input, what the refusal must say: each is refused before anything is stored or started.
REFUSED = [
    (tools.examples, ExamplesInput(category="poetry"), "unknown category 'poetry'; choose one of: tool-use"),
    (tools.submit, SubmitInput(examples=[valid_example(i) for i in range(51)]), "send at most 50 per call"),
    (tools.submit, SubmitInput(examples=[valid_example(1) | {"pad": "x" * 300_000}]), "Nothing was stored"),
    (tools.review, ReviewInput(decisions=[Decision(id="ex_1", verdict="reject")]), "add notes"),
    (tools.review, ReviewInput(decisions=[Decision(id="ex_nope", verdict="approve")]), "no example with id ex_nope"),
    (tools.export, ExportInput(format="openai", out="../elsewhere"), "outside the workspace"),
    (tools.export, ExportInput(format="openai", out=".engrain/x"), "inside .engrain/"),
    (tools.export, ExportInput(format="openai", out="-rf"), "starts with '-'"),
    (tools.train, TrainInput(stage="no-such-stage"), "no-such-stage"),
]


@pytest.mark.parametrize(("tool", "args", "says"), REFUSED, ids=[f"{t.__name__}-{i}" for i, (t, _, _) in
                                                                  enumerate(REFUSED)])
def test_refusals_say_what_to_do_and_change_nothing(workspace, tool, args, says):
    with pytest.raises(ToolError, match=says.replace("(", r"\(")):
        tool(workspace, args)
    assert stored_total(workspace) == 0 and registry.list_runs(workspace) == []


async def test_run_status_of_an_unknown_run_is_a_tool_error(workspace):
    async def report(*_: object) -> None:
        raise AssertionError("no progress for an unknown run")

    with pytest.raises(ToolError, match="no training run"):
        await tools.run_status(workspace, RunStatusInput(run_id="20990101-000000-abcd"), report)


async def test_datagen_errors_pass_through_the_function_and_reach_the_model_as_tool_errors(workspace):
    with pytest.raises(datagen.DatagenError, match="poetry"):
        tools.brief(workspace, BriefInput(category="poetry"))
    with pytest.raises(ToolError, match="poetry") as caught:
        await tools._call(workspace, tools.brief, BriefInput, None, category="poetry", count=1)
    assert isinstance(caught.value.__cause__, datagen.DatagenError)


def test_the_table_registers_every_tool_once_and_read_only_keeps_the_readers(workspace):
    names = [fn.__name__ for fn, _ in tools.TOOLS]
    assert [t.name for t in tools.build_tools(workspace, read_only=False)] == names
    readers = [t.name for t in tools.build_tools(workspace, read_only=True)]
    assert readers == [fn.__name__ for fn, hints in tools.TOOLS if hints.read_only_hint] == [
        "examples", "coverage", "run_status"]

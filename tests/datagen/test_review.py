"""Review decisions are events: they set the status, keep history, and show up in coverage and listings."""
from __future__ import annotations

import json

import pytest

import datagen
from tests.datagen.conftest import both_backends, varied


@both_backends
def test_approve_and_reject_from_the_cli_are_recorded_as_events(ws, cli):
    first, second, third = datagen.submit(ws, [varied(1), varied(2), varied(3)])

    result = cli("review", "--approve", first.id, "--approve", second.id, "--reject", third.id,
                 "--notes", "checked by hand", "-w", ws.root)
    assert result.exit_code == 0, result.output
    changed = cli("review", "--reject", second.id, "--notes", "on second thought", "--reviewer", "ana",
                  "-w", ws.root)
    assert changed.exit_code == 0

    stored = datagen.get_example(ws, second.id)
    assert stored.status == "rejected"
    assert [(e.verdict, e.reviewer, e.notes) for e in stored.reviews] == [
        ("approve", "human", "checked by hand"), ("reject", "ana", "on second thought")]
    coverage = json.loads(cli("coverage", "--json", "-w", ws.root).stdout)
    craft = next(c for c in coverage["categories"] if c["name"] == "craftsmanship")
    assert craft == {"name": "craftsmanship", "quota": 300, "approved": 1, "pending": 0, "rejected": 2}


@both_backends
def test_review_lists_pending_examples_in_pages(ws, cli):
    verdicts = datagen.submit(ws, [varied(i) for i in range(5)])

    first = cli("review", "--limit", "2", "-w", ws.root)
    last = cli("review", "--limit", "2", "--offset", "4", "-w", ws.root)

    assert verdicts[0].id in first.stdout and verdicts[2].id not in first.stdout
    assert "1-2 of 5 pending; next page: --offset 2" in first.stdout
    assert verdicts[4].id in last.stdout and "5-5 of 5 pending" in last.stdout
    shown = cli("review", "--show", verdicts[1].id, "--json", "-w", ws.root)
    assert json.loads(shown.stdout)["example"]["category"] == "craftsmanship"


@both_backends
def test_unknown_example_id_is_a_clear_error(ws, cli):
    result = cli("review", "--approve", "ex_doesnotexist", "-w", ws.root)
    assert result.exit_code == 2
    assert "no example with id 'ex_doesnotexist'" in result.stderr
    with pytest.raises(datagen.ExampleNotFound):
        datagen.review_example(ws, "ex_doesnotexist", "approve")


@both_backends
def test_coverage_table_and_plot(ws, cli, tmp_path):
    datagen.submit(ws, [varied(1), varied(2)], status="approved")
    plot = tmp_path / "coverage.png"

    result = cli("coverage", "--plot", plot, "-w", ws.root)

    assert result.exit_code == 0
    assert "craftsmanship" in result.stdout and "1%" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@both_backends
def test_snapshot_hash_changes_only_with_the_approved_set(ws):
    [a] = datagen.submit(ws, [varied(1)], status="approved")
    before = datagen.snapshot_hash(ws)
    [b] = datagen.submit(ws, [varied(2)])
    assert datagen.snapshot_hash(ws) == before
    datagen.review_example(ws, b.id, "approve")
    assert datagen.snapshot_hash(ws) != before
    datagen.review_example(ws, b.id, "reject")
    assert datagen.snapshot_hash(ws) == before

"""The review desk's store functions: keyset pages, filters, optimistic concurrency, edits with history, neighbours."""
from __future__ import annotations

import re

import pytest

import datagen
from tests.datagen.conftest import chat, varied


@pytest.fixture
def filled(ws):
    verdicts = datagen.submit(ws, [varied(i, "craftsmanship" if i % 2 else "problem-solving") for i in range(12)],
                              generator="cli")
    verdicts += datagen.submit(ws, [varied(100 + i) for i in range(3)], generator="mcp")
    assert all(v.accepted for v in verdicts)
    return ws, [v.id for v in verdicts]


def walk(ws, filters, limit):
    pages, after = [], None
    while True:
        page = datagen.queue_page(ws, filters, after=after, limit=limit)
        pages.append([i.id for i in page.items])
        if not page.has_next:
            return pages, page.total
        after = page.items[-1].seq


def test_keyset_pages_visit_every_example_once_in_both_directions(filled):
    ws, ids = filled
    pages, total = walk(ws, datagen.QueueFilter(), limit=4)
    assert [i for p in pages for i in p] == ids and total == 15 and [len(p) for p in pages] == [4, 4, 4, 3]
    last = datagen.queue_page(ws, datagen.QueueFilter(), after=datagen.queue_page(ws, datagen.QueueFilter(),
                                                                                    limit=8).items[-1].seq, limit=4)
    back = datagen.queue_page(ws, datagen.QueueFilter(), before=last.items[0].seq, limit=4)
    assert [i.id for i in back.items] == ids[4:8] and back.has_prev and back.has_next


@pytest.mark.parametrize("filters, expected", [
    ({"category": "craftsmanship"}, lambda ids: [i for n, i in enumerate(ids) if (n >= 12 or n % 2) and n != 3]),
    ({"generator": "mcp"}, lambda ids: ids[12:]),
    ({"status": "approved"}, lambda ids: [ids[3]]),
    ({"status": None, "category": "problem-solving", "generator": "cli"}, lambda ids: ids[0:12:2]),
    ({"text": "TASK 7:"}, lambda ids: [ids[7]]),      # case-insensitive, punctuation literal
    ({"text": "100%_"}, lambda ids: []),              # LIKE wildcards are matched literally
])
def test_queue_filters(filled, filters, expected):
    ws, ids = filled
    datagen.decide(ws, ids[3], "approve", reviewer="ana")  # the default status filter is pending
    page = datagen.queue_page(ws, datagen.QueueFilter(**filters), limit=100)
    assert [i.id for i in page.items] == expected(ids) and page.total == len(expected(ids))


def test_rule_filter_finds_examples_a_newer_plan_rejects(filled):
    ws, ids = filled
    text = ws.config_path.read_text()
    ws.config_path.write_text(text + '\n[[rules]]\nname = "no-parser"\nkind = "regex_must_not"\n'
                                     'pattern = "\\\\bparser\\\\b"\n')
    ws = datagen.load_workspace(ws.root)
    breaking = [i for i in ids if re.search(r"\bparser\b", datagen.get_example(ws, i).example.messages[1].content)]
    assert 0 < len(breaking) < 15
    page = datagen.queue_page(ws, datagen.QueueFilter(rule="no-parser"), limit=100)
    assert [i.id for i in page.items] == breaking
    with pytest.raises(datagen.DatagenError, match="no rule named 'nope'"):
        datagen.queue_page(ws, datagen.QueueFilter(rule="nope"))


def test_a_stale_decision_is_refused_and_stores_nothing(filled):
    ws, ids = filled
    seen = datagen.example_version(ws, ids[0])
    first = datagen.decide(ws, ids[0], "approve", reviewer="ana", expected_version=seen)
    with pytest.raises(datagen.ReviewConflict, match=f"ana approved example {ids[0]}"):
        datagen.decide(ws, ids[0], "reject", reviewer="bo", notes="no", expected_version=seen)
    assert [e.id for e in datagen.get_example(ws, ids[0]).reviews] == [first.id]
    assert datagen.example_version(ws, ids[0]) == first.id


def test_edit_keeps_the_old_text_and_is_validated_and_deduplicated_again(filled):
    ws, ids = filled
    stored = datagen.get_example(ws, ids[0])
    record = stored.example.wire()

    broken = {**record, "messages": record["messages"][:1]}
    result = datagen.edit_example(ws, ids[0], broken, reviewer="ana")
    assert not result.saved and any("must end with an assistant message" in r for r in result.reasons)

    copy = datagen.get_example(ws, ids[1]).example.wire()
    result = datagen.edit_example(ws, ids[0], {**copy, "category": record["category"]}, reviewer="ana")
    assert not result.saved and result.duplicate_of == ids[1]

    fixed = {**record, "messages": [record["messages"][0], {"role": "assistant", "content": "A careful new answer."}]}
    result = datagen.edit_example(ws, ids[0], fixed, reviewer="ana", notes="rewrote the answer",
                                  expected_version=datagen.example_version(ws, ids[0]))
    assert result.saved and result.revision == 1
    now = datagen.get_example(ws, ids[0])
    assert now.example.messages[1].content == "A careful new answer." and now.status == "pending"
    assert [(e.kind, e.reviewer, e.notes) for e in now.reviews] == [("edit", "ana", "rewrote the answer")]
    [old] = datagen.example_revisions(ws, ids[0])
    assert old.example.messages == stored.example.messages and old.review_id == now.reviews[0].id
    [again] = datagen.submit(ws, [fixed])
    assert not again.accepted and again.duplicate_of == ids[0]  # dedup knows the edited text
    with pytest.raises(datagen.ReviewConflict, match="ana edited"):
        datagen.decide(ws, ids[0], "approve", reviewer="bo", expected_version=0)


def test_nearest_examples_rank_by_similarity_without_the_example_itself(ws):
    verdicts = datagen.submit(ws, [
        chat("How do I retry a failed HTTP request with exponential backoff in Python?", "Use a loop with sleep."),
        chat("What is a good way to retry HTTP calls with backoff in Python?", "Wrap the call and back off."),
        chat("Write a haiku about the autumn moon over a quiet lake.", "Silver on water."),
    ], category="problem-solving")
    assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts]
    near = datagen.nearest_examples(ws, verdicts[0].id, k=5)
    assert [n.id for n in near] == [verdicts[1].id, verdicts[2].id]
    assert 1 > near[0].similarity > near[1].similarity


def test_rejection_reasons_are_counted(filled):
    ws, ids = filled
    for example_id, notes in zip(ids, ["near-duplicate", "near-duplicate", "vague", ""]):
        datagen.decide(ws, example_id, "reject", reviewer="ana", notes=notes)
    assert datagen.rejection_reasons(ws) == [("near-duplicate", 2), ("(no reason given)", 1), ("vague", 1)]


def test_a_text_search_counts_only_up_to_a_cap(filled, monkeypatch):
    ws, ids = filled
    monkeypatch.setattr("datagen.desk.TEXT_COUNT_CAP", 3)
    page = datagen.queue_page(ws, datagen.QueueFilter(text="task"), limit=100)
    assert page.total == 3 and page.more and len(page.items) == 15
    exact = datagen.queue_page(ws, datagen.QueueFilter(text="task 1"), limit=100)  # 1, 10, 11, 100, 101, 102
    assert exact.total == 3 and exact.more
    one = datagen.queue_page(ws, datagen.QueueFilter(text="task 11:"), limit=100)
    assert one.total == 1 and not one.more

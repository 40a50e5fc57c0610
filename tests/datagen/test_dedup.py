"""Acceptance 4: a reworded copy of a stored example is caught by the embedding layer (and names the original);
lexical copies by MinHash; and each process's index catches up with rows other processes stored."""
from __future__ import annotations

import datagen
from tests.datagen.conftest import chat, engrain, write_jsonl

ORIGINAL = chat(
    "The nightly export job crashes with a KeyError on 'customer_id' when an order has no customer. Can you fix it?",
    "The crash comes from `build_row` in exports/nightly.py, which indexes `order['customer_id']` directly. Guest "
    "orders have no customer, so I changed it to `order.get('customer_id')` and write an empty cell for guests. "
    "I added a test with a guest order; the test suite passes.")
PARAPHRASE = chat(
    "Our nightly export blows up with KeyError: 'customer_id' whenever an order lacks a customer. Please fix that.",
    "`build_row` in exports/nightly.py reads `order['customer_id']` without checking, and guest orders don't have "
    "one, hence the crash. I switched to `order.get('customer_id')` so guests get an empty cell, and added a "
    "guest-order test; all tests pass.")
SAME_AREA_OTHER_TASK = chat(
    "The nightly export job takes 40 minutes now. Can you find out why it got slow?",
    "I profiled `run_export` in exports/nightly.py: 90% of the time is spent in `build_row`, which issues one "
    "customer query per order. I batched the lookups into one query per 1,000 orders; the job now takes 3 "
    "minutes and the tests pass.")


def test_paraphrased_near_duplicate_is_caught_by_the_embedding_layer(ws):
    [original] = datagen.submit(ws, [ORIGINAL])
    [paraphrase, other] = datagen.submit(ws, [PARAPHRASE, SAME_AREA_OTHER_TASK])

    assert original.accepted
    assert not paraphrase.accepted
    assert paraphrase.duplicate_of == original.id
    assert paraphrase.reasons[0].startswith("semantic near-duplicate")
    assert other.accepted, other.reasons


def test_lexical_copy_is_caught_by_minhash(ws):
    [original] = datagen.submit(ws, [ORIGINAL])
    copy = chat(ORIGINAL["messages"][0]["content"],
                ORIGINAL["messages"][1]["content"].replace("the test suite passes", "the whole test suite passes"))

    [verdict] = datagen.submit(ws, [copy])

    assert not verdict.accepted
    assert verdict.reasons[0].startswith("near-duplicate (MinHash")
    assert verdict.duplicate_of == original.id


def test_near_duplicates_within_one_batch(ws):
    first, second = datagen.submit(ws, [ORIGINAL, PARAPHRASE])
    assert first.accepted and not second.accepted and second.duplicate_of == first.id


def test_index_catches_up_with_examples_another_process_stored(ws, tmp_path):
    datagen.submit(ws, [SAME_AREA_OTHER_TASK])  # this process's index is now built and current
    other = engrain("import", write_jsonl(tmp_path / "one.jsonl", [ORIGINAL]), "--json", "-w", ws.root)
    assert other.returncode == 0, other.stderr

    [verdict] = datagen.submit(ws, [PARAPHRASE])

    stored_by_other = datagen.list_examples(ws, category="problem-solving", limit=10).items[-1]
    assert not verdict.accepted
    assert verdict.duplicate_of == stored_by_other.id

"""Read-only views of the dataset: pages of examples, one example, coverage against the plan, snapshot hash."""
from __future__ import annotations

import hashlib

from datagen import store
from datagen.schema import Category, CategoryCoverage, Coverage, ExamplePage, StoredExample


def plan(ws) -> list[Category]:
    return list(ws.config.categories)


def list_examples(ws, *, category: str | None = None, status: str | None = None, offset: int = 0,
                  limit: int = 20) -> ExamplePage:
    return store.page(store.connect(ws.database), category=category, status=status, offset=max(0, offset),
                      limit=max(1, min(limit, 500)))


def get_example(ws, example_id: str) -> StoredExample:
    return store.get(store.connect(ws.database), example_id)


def coverage(ws) -> Coverage:
    """Per plan category (then any stored category the plan no longer has) approved/pending/rejected vs quota."""
    counts = store.counts(store.connect(ws.database))
    rows = {c.name: CategoryCoverage(name=c.name, quota=c.quota) for c in ws.config.categories}
    for (category, status), n in counts.items():
        row = rows.setdefault(category, CategoryCoverage(name=category, quota=0))
        setattr(row, status, n)
    return Coverage(categories=list(rows.values()))


def snapshot_hash(ws, *, status: str = "approved") -> str:
    """Stable id of the example set a training run uses: same examples (any order) -> same hash."""
    digest = hashlib.sha256(status.encode())
    for content_hash in store.content_hashes(store.connect(ws.database), status):
        digest.update(content_hash.encode())
    return digest.hexdigest()[:16]

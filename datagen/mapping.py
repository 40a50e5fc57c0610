"""Which plan categories each knowledge chunk serves, so a brief hands out only what its category needs.

A chunk is mapped, in order of precedence, by the plan: a category's `sources` (globs over the chunk's source path)
or `keywords` (whole words in its heading or text); a chunk that neither claims goes to the category whose
name, description and guidance its embedding is closest to (the bundled MiniLM — the same model dedup uses, so
no new download). Each mapping row records its origin; `manual` rows (added with `engrain knowledge tag`) and
`removed` rows (a user's "not this category") survive re-mapping, automatic rows are recomputed by
`engrain knowledge map` after the plan changes.
"""
from __future__ import annotations

import re
from fnmatch import fnmatch

import numpy as np

from datagen import dedup
from datagen.schema import Category, Chunk

# Other categories within this cosine of the best match share the chunk (a rule can serve two categories).
EMBED_MARGIN = 0.04
MANUAL = ("manual", "removed")

# The mapping lives in chunk_categories (datagen/migrations.py, migration 3).


def automatic(chunks: list[Chunk], categories: list[Category], embedding_model: str) -> dict[str, list[tuple]]:
    """chunk id -> [(category, origin, score)] from the plan's sources/keywords, else the nearest description."""
    mapped: dict[str, list[tuple]] = {}
    unclaimed: list[Chunk] = []
    for chunk in chunks:
        rows = [(c.name, "sources", None) for c in categories if any(fnmatch(chunk.source, p) for p in c.sources)]
        claimed = {name for name, _, _ in rows}
        rows += [(c.name, "keywords", None) for c in categories
                 if c.name not in claimed and _mentions(chunk, c.keywords)]
        mapped[chunk.id] = rows
        if not rows:
            unclaimed.append(chunk)
    if unclaimed and categories:
        for chunk, rows in zip(unclaimed, _nearest(unclaimed, categories, embedding_model)):
            mapped[chunk.id] = rows
    return mapped


def _mentions(chunk: Chunk, keywords: list[str]) -> bool:
    """Whole-word match; a keyword with a capital letter matches only that spelling (`Read` the tool, not "read")."""
    text = f"{chunk.heading}\n{chunk.text}"
    return any(re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, 0 if k != k.lower() else re.I)
               for k in keywords if k.strip())


def _nearest(chunks: list[Chunk], categories: list[Category], embedding_model: str) -> list[list[tuple]]:
    described = [f"{c.name.replace('-', ' ')}: {c.description} {c.guidance}".strip() for c in categories]
    vectors = dedup.embed(described + [f"{c.heading}\n{c.text}" for c in chunks], embedding_model)
    similarity = vectors[len(categories):] @ vectors[:len(categories)].T
    out = []
    for row in similarity:
        best = float(np.max(row))
        out.append([(categories[i].name, "embedding", round(float(s), 4)) for i, s in enumerate(row)
                    if s >= best - EMBED_MARGIN])
    return out


def store_automatic(conn, mapped: dict[str, list[tuple]]) -> None:
    """Replace the automatic rows of these chunks; the user's manual and removed rows stay and win."""
    for chunk_id, rows in mapped.items():
        kept = {c for (c,) in conn.execute("SELECT category FROM chunk_categories WHERE chunk_id = ? AND origin IN"
                                           " (?, ?)", (chunk_id, *MANUAL))}
        conn.execute("DELETE FROM chunk_categories WHERE chunk_id = ? AND origin NOT IN (?, ?)", (chunk_id, *MANUAL))
        for category, origin, score in rows:
            if category not in kept:
                conn.execute("INSERT INTO chunk_categories (chunk_id, category, origin, score) VALUES (?, ?, ?, ?)",
                             (chunk_id, category, origin, score))


def set_manual(conn, chunk_id: str, category: str, *, remove: bool) -> None:
    conn.execute("DELETE FROM chunk_categories WHERE chunk_id = ? AND category = ?", (chunk_id, category))
    conn.execute("INSERT INTO chunk_categories (chunk_id, category, origin, score) VALUES (?, ?, ?, NULL)",
                 (chunk_id, category, "removed" if remove else "manual"))


def categories_of(conn) -> dict[str, list[str]]:
    """chunk id -> the categories it serves (removed rows excluded)."""
    out: dict[str, list[str]] = {}
    for chunk_id, category in conn.execute("SELECT chunk_id, category FROM chunk_categories WHERE origin != ?"
                                           " ORDER BY chunk_id, category", ("removed",)):
        out.setdefault(chunk_id, []).append(category)
    return out


def unmapped(conn) -> list[str]:
    """Chunks with no mapping row at all (stored before mapping existed, or never mapped)."""
    return [r[0] for r in conn.execute("SELECT id FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunk_categories)"
                                       " ORDER BY source, ordinal")]


def drop_missing(conn) -> None:
    """Rows of chunks that no longer exist (a re-added file lost a section)."""
    conn.execute("DELETE FROM chunk_categories WHERE chunk_id NOT IN (SELECT id FROM chunks)")


"""Knowledge sources (CLAUDE.md, rules, workflows, skills, prompts) split into citable chunks.

A chunk is one heading's section (split further at paragraphs when long), keyed by a hash of its source,
heading and text: re-adding a file keeps the ids and usage counts of sections that did not change. A file's
YAML front matter (skills carry one) is parsed, not chunked: its `name` heads the file's heading path. Each chunk
is mapped to the plan categories it serves (datagen/mapping.py), and a brief draws only from its category.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from datagen import mapping, store
from datagen.errors import DatagenError, UnknownCategory
from datagen.schema import Chunk

TEXT_SUFFIXES = {".md", ".markdown", ".mdx", ".mdc", ".txt", ".rst"}
MAX_CHUNK_CHARS = 1500
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_KEY_VALUE = re.compile(r"^([A-Za-z_][\w-]*):\s*(.*)$")


def add_knowledge(ws, paths: Iterable[Path | str]) -> list[Chunk]:
    """Ingest files (directories: their text files, recursively); returns the chunks now stored for them."""
    files = _files(ws, paths)
    conn = store.connect(ws.database)
    added: list[Chunk] = []
    for path, source in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DatagenError(f"{path} is not UTF-8 text; knowledge sources must be markdown or plain text") from None
        chunks = split(source, text)
        with store.transaction(conn):
            uses = dict(conn.execute("SELECT id, uses FROM chunks WHERE source = ?", (source,)))
            conn.execute("DELETE FROM chunks WHERE source = ?", (source,))
            for ordinal, chunk in enumerate(chunks):
                chunk.uses = uses.get(chunk.id, 0)
                conn.execute("INSERT INTO chunks (id, source, ordinal, heading, text, line_start, line_end, uses)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (chunk.id, source, ordinal, chunk.heading, chunk.text, chunk.line_start,
                              chunk.line_end, chunk.uses))
        added += chunks
    with store.transaction(conn):
        mapping.drop_missing(conn)
    _map(ws, conn, added)
    return added


def _map(ws, conn, chunks: list[Chunk]) -> None:
    """Map these chunks (embedding outside the write lock), then store the automatic rows in one transaction."""
    if not chunks:
        return
    mapped = mapping.automatic(chunks, ws.config.categories, ws.config.embedding_model)
    with store.transaction(conn):
        mapping.store_automatic(conn, mapped)


def remap(ws) -> list[Chunk]:
    """Recompute every automatic mapping from the current plan (after categories, sources or keywords changed)."""
    chunks = list_knowledge(ws)
    _map(ws, store.connect(ws.database), chunks)
    return list_knowledge(ws)


def tag(ws, chunk_id: str, category: str, *, remove: bool = False) -> Chunk:
    """The user's edit of one mapping: it wins over the automatic ones and survives `remap`."""
    if ws.config.category(category) is None:
        raise UnknownCategory(f"unknown category {category!r}; choose one of: "
                              f"{', '.join(c.name for c in ws.config.categories)}")
    conn = store.connect(ws.database)
    with store.transaction(conn):
        if not store.known_chunk_ids(conn, [chunk_id]):
            raise DatagenError(f"no knowledge chunk {chunk_id!r}; see `engrain knowledge list`")
        mapping.set_manual(conn, chunk_id, category, remove=remove)
    return next(c for c in list_knowledge(ws) if c.id == chunk_id)


def list_knowledge(ws) -> list[Chunk]:
    conn = store.connect(ws.database)
    categories = mapping.categories_of(conn)
    rows = conn.execute(
        "SELECT id, source, heading, text, line_start, line_end, uses FROM chunks ORDER BY source, ordinal")
    return [_chunk(row, categories.get(row[0], [])) for row in rows.fetchall()]


def take_least_used(ws, count: int, category: str | None = None) -> list[Chunk]:
    """Hand out the `count` least-used chunks (of `category`, when given) and count the use, so successive briefs
    spread over the sources."""
    conn = store.connect(ws.database)
    if category is not None:
        missing = set(mapping.unmapped(conn))
        _map(ws, conn, [c for c in list_knowledge(ws) if c.id in missing])
    query = ("SELECT id, source, heading, text, line_start, line_end, uses FROM chunks"
             + (" WHERE id IN (SELECT chunk_id FROM chunk_categories WHERE category = ? AND origin != 'removed')"
                if category is not None else "") + " ORDER BY uses, source, ordinal LIMIT ?")
    with store.transaction(conn):
        rows = conn.execute(query, (category, count) if category is not None else (count,)).fetchall()
        conn.executemany("UPDATE chunks SET uses = uses + 1 WHERE id = ?", [(r[0],) for r in rows])
    return [_chunk(row, [category] if category else []) for row in rows]


def split(source: str, text: str) -> list[Chunk]:
    """Sections under markdown headings (ignoring '#' lines inside code fences), each with its heading path.
    Front matter is blanked (line numbers stay the file's); its `name` becomes the root of every heading path."""
    lines, front = front_matter(text.splitlines())
    name = str(front.get("name") or "").strip()
    sections: list[tuple[str, int, list[str]]] = []
    path: list[str] = [name] if name else []
    body: list[str] = []
    start, in_fence = 1, False
    heading = name
    for number, line in enumerate(lines, 1):
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            sections.append((heading, start, body))
            level = len(match.group(1)) + bool(name)
            path = path[:level - 1] + [""] * (level - 1 - len(path)) + [match.group(2)]
            heading = " > ".join(p for p in path if p)
            start, body = number, [line]
        else:
            body.append(line)
    sections.append((heading, start, body))
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for heading, first_line, section in sections:
        for piece_start, piece in _pieces(first_line, section):
            content = "\n".join(piece).strip()
            if not content or _HEADING.fullmatch(content):
                continue
            chunk_id = "kn_" + hashlib.sha256(f"{source}\0{heading}\0{content}".encode()).hexdigest()[:12]
            while chunk_id in seen:  # the same text twice under the same heading: keep both
                chunk_id = "kn_" + hashlib.sha256(chunk_id.encode()).hexdigest()[:12]
            seen.add(chunk_id)
            chunks.append(Chunk(id=chunk_id, source=source, heading=heading, text=content,
                                line_start=piece_start, line_end=piece_start + len(piece) - 1))
    return chunks


def front_matter(lines: list[str]) -> tuple[list[str], dict]:
    """(the lines with a leading `---` YAML block blanked, that block parsed); {} when there is none or it does
    not parse as a mapping (then the lines are left as they are: it was not front matter)."""
    if not lines or lines[0].strip() != "---":
        return lines, {}
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        return lines, {}
    try:
        parsed = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        # Skill descriptions often hold an unquoted ": " that strict YAML refuses; read them as `key: value` lines.
        pairs = [_KEY_VALUE.match(line) for line in lines[1:end]]
        parsed = {m.group(1): m.group(2).strip() for m in pairs if m}
    if not isinstance(parsed, dict) or not parsed:
        return lines, {}
    return [""] * (end + 1) + lines[end + 1:], parsed


def _pieces(first_line: int, lines: list[str]) -> list[tuple[int, list[str]]]:
    """Split a long section at blank lines into pieces of at most ~MAX_CHUNK_CHARS."""
    pieces: list[tuple[int, list[str]]] = []
    current: list[str] = []
    current_start, size = first_line, 0
    for offset, line in enumerate(lines):
        if size > MAX_CHUNK_CHARS and not line.strip():
            pieces.append((current_start, current))
            current, current_start, size = [], first_line + offset + 1, 0
            continue
        current.append(line)
        size += len(line) + 1
    pieces.append((current_start, current))
    return pieces


def _files(ws, paths: Iterable[Path | str]) -> list[tuple[Path, str]]:
    """(file, source name): relative to the workspace root, or for outside files to the argument's parent."""
    files: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_absolute() and not path.exists():
            path = ws.root / path  # `-w DIR` from elsewhere: the workspace's own files
        path = path.resolve()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            raise DatagenError(f"{raw} does not exist; pass markdown/text files or directories of them")
        base = ws.root if path.is_relative_to(ws.root) else path.parent
        files += [(f, str(f.relative_to(base))) for f in found]
    return files


def _chunk(row: tuple, categories: list[str]) -> Chunk:
    chunk_id, source, heading, text, line_start, line_end, uses = row
    return Chunk(id=chunk_id, source=source, heading=heading, text=text, line_start=line_start, line_end=line_end,
                 uses=uses, categories=categories)

"""The generator subagents under `.claude/agents/`, kept in step with the plan.

engrain records what it wrote in `.engrain-agents.json` beside them (file -> sha256 of the text). A file is
engrain's while it still has the recorded text: then it is rewritten when its category changes and removed when
its category leaves the plan. A file the user edited, or one engrain did not write, is never touched."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

MANIFEST = ".engrain-agents.json"
PREFIX = "engrain-gen-"


def sync(folder: Path, wanted: dict[str, str], say: Callable[[str], None] = lambda _m: None) -> None:
    """Make `folder` hold `wanted` (file name -> text) as far as the files are engrain's own."""
    manifest = _load(folder / MANIFEST)
    for name, text in wanted.items():
        path = folder / name
        if not path.exists() or _ours(path, manifest.get(name)):
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                _write(path, text)
                say(f"wrote {path}")
            manifest[name] = _digest(text)
        elif name not in manifest:
            continue  # the user's own file under our name: theirs
    for name in sorted(set(manifest) - set(wanted)):
        path = folder / name
        if _ours(path, manifest[name]):
            path.unlink()
            say(f"removed {path}: its category is no longer in the plan")
            del manifest[name]
        elif not path.exists():
            del manifest[name]
        else:
            say(f"kept {path}: its category is no longer in the plan, but you edited it")
    for path in sorted(folder.glob(f"{PREFIX}*.md")):
        if path.name not in wanted and path.name not in manifest:
            say(f"left {path}: not written by engrain (or before it kept a record); its category is not in the plan")
    if manifest or (folder / MANIFEST).exists():
        _write(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _ours(path: Path, digest: str | None) -> bool:
    return digest is not None and path.is_file() and _digest(path.read_text(encoding="utf-8")) == digest


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # no record (or a damaged one): every existing file counts as the user's
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

"""Keep every path a tool receives inside the workspace (the jail of mcp-server-git)."""
from __future__ import annotations

from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError


def inside_workspace(root: Path, state_dir: Path, arg: str) -> Path:
    """Resolve `arg` against the workspace root; refuse anything that leaves it or touches `.engrain/`."""
    if arg.startswith("-"):
        # A leading dash reads as an option to any tool the path is later handed to.
        raise ToolError(f"path {arg!r} starts with '-'; give a path relative to the workspace, e.g. 'exports/openai'")
    base = root.resolve()
    target = (base / arg).resolve()
    try:
        target.relative_to(base)
    except ValueError:
        raise ToolError(f"path {arg!r} is outside the workspace {base}; give a path inside it, e.g. 'exports/openai'")
    try:
        target.relative_to(state_dir.resolve())
    except ValueError:
        return target
    raise ToolError(f"path {arg!r} is inside {state_dir.name}/, which holds the dataset; choose e.g. 'exports/openai'")

"""Assemble the engrain MCP server over one workspace and run it."""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Literal

import datagen
from mcp.server import MCPServer

from server.prompts import register_prompts
from server.resources import register_resources
from server.tools import build_tools

INSTRUCTIONS = """\
engrain builds a fine-tuning dataset that teaches a model this project's agent behaviour (its CLAUDE.md, \
rules, workflows and skills) so it no longer needs them in context.
To add examples: call coverage to see which category needs them, brief(category, count) for guidance, rules, \
knowledge and the format, write the examples, then submit them all in one call. Every rejected example comes \
back with every reason: fix and resubmit it. Review pending examples with examples(status='pending', \
full=true) and review(decisions). When quotas are met: export, or train and follow run_status.
"""

READ_ONLY_NOTE = "This server is read-only: brief, submit, review, export and train are not available.\n"


def build_server(workspace: datagen.Workspace | Path, read_only: bool = False) -> MCPServer:
    """An MCPServer over `workspace` (a Workspace, or a directory inside one); read_only drops the write tools."""
    ws = workspace if isinstance(workspace, datagen.Workspace) else datagen.find_workspace(Path(workspace))
    mcp = MCPServer(
        "engrain",
        title="engrain dataset",
        version=version("engrain"),
        instructions=INSTRUCTIONS + (READ_ONLY_NOTE if read_only else ""),
        log_level="WARNING",
        tools=build_tools(ws, read_only=read_only),
    )
    if not read_only:
        register_prompts(mcp, ws)
    register_resources(mcp, ws)
    return mcp


def run(
    workspace: datagen.Workspace | Path,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    port: int = 8000,
    read_only: bool = False,
) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP on 127.0.0.1:port)."""
    mcp = build_server(workspace, read_only=read_only)
    if transport == "stdio":
        mcp.run("stdio")
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=port)

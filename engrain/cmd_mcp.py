"""`engrain mcp`: serve the workspace's dataset to Claude Code (or any MCP client)."""
from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from engrain.shared import open_workspace, reported


class Transport(str, Enum):
    stdio = "stdio"
    http = "http"


WorkspaceOpt = Annotated[Optional[Path], typer.Option(
    help="Workspace directory (default: $ENGRAIN_WORKSPACE, the cwd upward, then $CLAUDE_PROJECT_DIR).")]
TransportOpt = Annotated[Transport, typer.Option(help="stdio for Claude Code; http serves streamable HTTP.")]
PortOpt = Annotated[int, typer.Option(help="Port for --transport http (on 127.0.0.1).")]
ReadOnlyOpt = Annotated[bool, typer.Option("--read-only", help="Serve only examples, coverage and run_status.")]


def mcp(
    workspace: WorkspaceOpt = None,
    transport: TransportOpt = Transport.stdio,
    port: PortOpt = 8765,
    read_only: ReadOnlyOpt = False,
) -> None:
    """Run the engrain MCP server. Stdout carries only the protocol; logs go to stderr."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="engrain mcp: %(levelname)s %(message)s")
    import server

    with reported():
        ws = open_workspace(workspace)
    server.run(ws, transport=transport.value, port=port, read_only=read_only)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)

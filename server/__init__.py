"""server — the engrain MCP server for Claude Code, over datagen and training."""
from server.app import build_server, run
from server.claude import register_for_claude_code

__all__ = ["build_server", "register_for_claude_code", "run"]

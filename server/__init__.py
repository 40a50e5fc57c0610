"""server — the engrain MCP server for Claude Code and the review web app, over datagen and training."""
from server.app import build_server, run
from server.claude import register_for_claude_code
from server.web import ExposureError
from server.web import serve as serve_web

__all__ = ["ExposureError", "build_server", "register_for_claude_code", "run", "serve_web"]

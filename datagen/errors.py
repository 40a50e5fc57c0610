"""Errors whose message tells the user (or the model calling the MCP server) what to do next."""
from __future__ import annotations


class DatagenError(ValueError):
    pass


class UnknownCategory(DatagenError):
    pass


class PathOutsideWorkspace(DatagenError):
    pass


class ExampleNotFound(DatagenError):
    pass


class WorkspaceNotFound(DatagenError):
    pass


class ReviewConflict(DatagenError):
    """Someone else decided or edited the example after the form was rendered; nothing was saved."""

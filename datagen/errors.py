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

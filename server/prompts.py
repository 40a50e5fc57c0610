"""Prompts: Claude Code turns them into the slash commands /mcp__engrain__generate and /mcp__engrain__review."""
from __future__ import annotations

from typing import Annotated

import datagen
from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp_types import INVALID_PARAMS
from pydantic import Field


def _known(ws: datagen.Workspace, category: str) -> str:
    names = [c.name for c in datagen.plan(ws)]
    if category not in names:
        # An MCPError reaches the client as is; any other exception is reduced to "Error rendering prompt".
        raise MCPError(INVALID_PARAMS, f"unknown category {category!r}; valid categories: {', '.join(names)}")
    return category


def register_prompts(mcp: MCPServer, ws: datagen.Workspace) -> None:
    @mcp.prompt(title="Generate training examples")
    def generate(
        category: Annotated[str, Field(description="plan category slug")],
        count: Annotated[int, Field(ge=1, le=50, description="how many examples")] = 5,
    ) -> str:
        """Write N new training examples for one category and get them accepted."""
        _known(ws, category)
        return (
            f"Generate {count} training examples for the engrain category '{category}'.\n"
            f"1. Call the engrain brief tool with category='{category}', count={min(count, 20)}. Read its guidance, "
            "rules, knowledge chunks, format and sample closely.\n"
            "2. Write the examples: realistic, varied user requests (do not reuse the openings in `avoid`), replies "
            "that pass every rule, grounded in the knowledge chunks (put the chunk ids you used in source_refs). "
            "For tool use, call only the tools in `tools`, with arguments that fit their schemas, and include the "
            "tool results.\n"
            "3. Call submit with all of them in one call.\n"
            "4. For every rejected verdict, fix the example by its reasons and submit it again; drop duplicates and "
            "write a different example instead. Repeat until all are accepted.\n"
            f"5. If you needed more than 20, ask for another brief and continue until {count} are accepted; then "
            "call coverage and report the counts."
        )

    @mcp.prompt(title="Review pending examples")
    def review(
        category: Annotated[str, Field(description="plan category slug; empty for all")] = "",
        count: Annotated[int, Field(ge=1, le=20, description="how many to review")] = 10,
    ) -> str:
        """Review a batch of pending examples: approve the good ones, reject the rest with notes."""
        where = f"category='{_known(ws, category)}', " if category else ""
        return (
            f"Review up to {count} pending engrain examples.\n"
            f"1. Call the engrain examples tool with {where}status='pending', full=true, limit={count}.\n"
            "2. Read the plan (resource engrain://plan) for each category's guidance and rules.\n"
            "3. Judge each example as training data: is the user request realistic, does every reply follow the "
            "rules and guidance, are tool calls and results coherent, is the code correct, is it free of "
            "placeholders and invented facts?\n"
            "4. Call review once with a decision for each: approve, or reject with notes that say exactly what is "
            "wrong.\n"
            "5. Summarise how many you approved and rejected, and the most common problems."
        )

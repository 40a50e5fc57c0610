"""Resources Claude Code can attach with @engrain:...: the plan and the current coverage."""
from __future__ import annotations

import datagen
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel


class PlanCategory(BaseModel):
    name: str
    description: str
    quota: int
    guidance: str
    rules: list[str]


class Plan(BaseModel):
    categories: list[PlanCategory]


def _plan(ws: datagen.Workspace) -> Plan:
    rules = datagen.load_rules(ws)
    return Plan(
        categories=[
            PlanCategory(
                name=c.name,
                description=c.description,
                quota=c.quota,
                guidance=c.guidance,
                rules=[f"{r.name}: {r.description}" for r in rules if "*" in r.categories or c.name in r.categories],
            )
            for c in datagen.plan(ws)
        ]
    )


def register_resources(mcp: MCPServer, ws: datagen.Workspace) -> None:
    @mcp.resource("engrain://plan", name="plan", title="Dataset plan", mime_type="application/json")
    def plan() -> str:
        """Categories with description, quota, guidance and the rules their examples must pass."""
        return _plan(ws).model_dump_json(indent=1)

    @mcp.resource("engrain://coverage", name="coverage", title="Dataset coverage", mime_type="application/json")
    def coverage() -> str:
        """Approved, pending and rejected counts per category against each quota."""
        return datagen.coverage(ws).model_dump_json(indent=1)

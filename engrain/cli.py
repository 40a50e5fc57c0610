"""The `engrain` command. Each command group lives in its own module and registers itself here."""
from __future__ import annotations

import typer

from engrain import cmd_dataset, cmd_mcp, cmd_router, cmd_train, cmd_quickstart

app = typer.Typer(
    name="engrain",
    help="Move coding-agent knowledge from context into weights, then serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for module in (cmd_dataset, cmd_mcp, cmd_train, cmd_router, cmd_quickstart):
    module.register(app)


def main() -> None:
    app()

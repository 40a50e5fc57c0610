"""Database commands: `engrain db migrate` and `engrain db copy --to URL` (over datagen's public surface)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from engrain.shared import WorkspaceOption, console, open_workspace, reported

db_app = typer.Typer(help="The dataset's database: schema migrations, moving a dataset to PostgreSQL.",
                     no_args_is_help=True)


@db_app.command("migrate")
def migrate(
    database: Optional[str] = typer.Option(None, "--database", help="A postgresql:// or sqlite:/// URL "
                                           "(default: the workspace's database)."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Bring the database to this engrain's schema version (the store also does this when it first connects)."""
    import datagen

    with reported():
        result = datagen.migrate_database(open_workspace(workspace), database)
    for applied in result.applied:
        console.print(f"applied migration {applied}", highlight=False)
    state = "now at" if result.applied else "already at"
    console.print(f"{result.database}: {state} schema version {result.version}", highlight=False)


@db_app.command("copy")
def copy(
    to: str = typer.Option(..., "--to", help="The empty target database: postgresql://USER@HOST:PORT/DB "
                           "(or sqlite:///PATH)."),
    source: Optional[str] = typer.Option(None, "--from", help="Copy this database instead of the workspace's."),
    workspace: Optional[Path] = WorkspaceOption,
) -> None:
    """Copy every example, review event and knowledge chunk into `--to`, verified (row counts, row digests,
    content hashes) before the target commits."""
    import datagen

    with reported():
        result = datagen.copy_database(open_workspace(workspace), to, source=source)
    table = Table("table", "rows", "digest (sha256, order-independent)")
    for copied in result.tables:
        table.add_row(copied.table, str(copied.rows), copied.digest[:16])
    console.print(table)
    console.print(f"copied {result.source} -> {result.target} (schema version {result.version}); "
                  f"{result.examples} examples, counts, row digests and content hashes match", highlight=False)
    console.print(f'use it: set database_url = "{to}" under [dataset] in engrain.toml '
                  "(or ENGRAIN_DATABASE_URL)", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")

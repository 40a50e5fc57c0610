"""What every command shares: the workspace option, and one mapping from errors to exit statuses (shown at the end
of `engrain --help`)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from datagen import Workspace

FAILED, USAGE, INTERRUPTED = 1, 2, 130
EXIT_STATUSES = """\
\b
Exit status, for every command:
  0    done
  1    the work failed: an example was rejected, a model or provider call failed, training or packaging
       failed, a file could not be written
  2    bad usage or input: an unknown option or value, no workspace, an engrain.toml or router config that
       does not validate, an example id, category, run, stage, base model or path that names nothing usable
  130  interrupted (Ctrl-C or SIGTERM); an interrupted training run says how to resume it
"""

console = Console(soft_wrap=True)  # messages hold paths and ids: never break them mid-line
errors = Console(stderr=True, soft_wrap=True)

WorkspaceOption = typer.Option(None, "--workspace", "-w", envvar="ENGRAIN_WORKSPACE",
                               help="Workspace directory (default: the nearest engrain.toml above the cwd).")


def open_workspace(path: Optional[Path]) -> "Workspace":
    from datagen import find_workspace

    return find_workspace(path)


def exit_status(exc: BaseException) -> int | None:
    """The documented status of an error whose message says what to do; None for anything else (a bug, whose
    traceback should show)."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    import datagen
    import training

    if isinstance(exc, (datagen.DatagenError, training.TrainingInputError)):
        return USAGE
    if isinstance(exc, training.TrainingError) or datagen.describe_failure(exc) is not None:
        return FAILED
    return None


def fail(message: str, status: int = FAILED) -> NoReturn:
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(status)


@contextmanager
def reported() -> Iterator[None]:
    """End the command with one red line and the documented exit status for every error the user can act on."""
    try:
        yield
    except (Exception, KeyboardInterrupt) as exc:
        status = exit_status(exc)
        if status is None:
            raise
        from datagen import describe_failure

        fail("interrupted" if status == INTERRUPTED else describe_failure(exc) or str(exc), status)

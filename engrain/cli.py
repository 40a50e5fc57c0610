"""The `engrain` command. Each command group lives in its own module and registers itself here."""
from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from engrain import cmd_dataset, cmd_db, cmd_mcp, cmd_router, cmd_train, cmd_quickstart

app = typer.Typer(
    name="engrain",
    help="Move coding-agent knowledge from context into weights, then serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[[training.stages]]" and regexes must print as written
)

for module in (cmd_dataset, cmd_db, cmd_mcp, cmd_train, cmd_router, cmd_quickstart):
    module.register(app)


def main() -> None:
    # The libraries underneath (transformers, hub, tokenizers) report to a terminal that belongs to us.
    for name, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                        ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    if not sys.stderr.isatty():
        # Logs and CI: tqdm bars (transformers' weight loading, datasets' map/save) redraw with `\r` into files.
        for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for noisy in ("torchao", "torch.utils._pytree"):  # optional-kernel and deprecation chatter at import time
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        app()
    except Exception as exc:
        from datagen import describe_failure  # only on the way out: datagen's import is not free

        message = describe_failure(exc)
        if message is None:
            raise
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None

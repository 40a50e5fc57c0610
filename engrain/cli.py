"""The `engrain` command. Each command group lives in its own module and registers itself here."""
from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from engrain import cmd_dataset, cmd_db, cmd_mcp, cmd_router, cmd_train, cmd_quickstart
from engrain.shared import EXIT_STATUSES, reported

app = typer.Typer(
    name="engrain",
    help="Move coding-agent knowledge from context into weights, then serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[[training.stages]]" and regexes must print as written
    epilog=EXIT_STATUSES,
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
    with reported():   # what a command left uncaught still ends with its documented exit status
        app()

"""`python -m training.backends.mlx_worker CONFIG.json`: mlx-lm's LoRA trainer (`mlx_lm.lora.run`) with a
callback that reports each step as a JSON line (`ENGRAIN {...}`) for the parent to follow; mlx-lm's own
console output is for people and changes between versions."""
from __future__ import annotations

import json
import sys
import types


def main(path: str) -> None:
    from mlx_lm import lora
    from mlx_lm.tuner import callbacks

    class Report(callbacks.TrainingCallback):
        def __init__(self, **_ignored) -> None:
            pass

        def on_train_loss_report(self, train_info: dict) -> None:
            print("ENGRAIN " + json.dumps(train_info), flush=True)

    # lora.run() replaces a callback passed to it with the ones named in `report_to` (mlx-lm 0.32), so ours
    # is registered under a name and named there.
    callbacks.SUPPORT_CALLBACK["engrain"] = Report
    args = {**lora.CONFIG_DEFAULTS, **json.loads(open(path, encoding="utf-8").read()), "report_to": "engrain"}
    lora.run(types.SimpleNamespace(**args))


if __name__ == "__main__":
    main(sys.argv[1])

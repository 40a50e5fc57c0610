"""`python -m training --workspace DIR --run-id ID`: run (or resume) a queued run; start_training spawns it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    from datagen import load_workspace

    from training.runner import interrupt_on_sigterm, train

    interrupt_on_sigterm()
    ws = load_workspace(args.workspace)

    def report(status) -> None:
        print(f"{status.stage} step {status.step}/{status.total_steps} loss {status.loss if status.loss is not None else float('nan'):.4f}", flush=True)

    record = train(ws, run_id=args.run_id, on_progress=report)
    print(f"run {record.id} {record.state}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

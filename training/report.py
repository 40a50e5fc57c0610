"""What a run tells its user: the loss plot, and the sanity check that the loss fell."""
from __future__ import annotations

import math
from pathlib import Path


def loss_fell(losses: list[float]) -> str | None:
    """A warning when the loss did not fall clearly (mean of the last quarter vs the first), else None."""
    finite = [x for x in losses if math.isfinite(x)]
    if len(finite) < len(losses):
        return f"the loss became {next(x for x in losses if not math.isfinite(x))}: lower the learning rate"
    if len(finite) < 4:
        return f"only {len(finite)} step(s): too few to tell whether the model learned"
    quarter = max(1, len(finite) // 4)
    first, last = sum(finite[:quarter]) / quarter, sum(finite[-quarter:]) / quarter
    if last > 0.9 * first:
        return (f"the loss did not fall clearly ({first:.3f} -> {last:.3f}); train longer, raise the learning "
                "rate, or check that the examples teach something consistent")
    return None


def plot(stages: list[tuple[str, list[float]]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    start = 0
    for name, losses in stages:
        ax.plot(range(start + 1, start + len(losses) + 1), losses, label=name)
        start += len(losses)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    if len(stages) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

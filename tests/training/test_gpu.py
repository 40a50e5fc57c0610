"""GPU tier (`-m gpu`, on the lent device): `auto` picks Unsloth on CUDA and it trains; hf trains on CUDA."""
from __future__ import annotations

import pytest

from tests.training.test_train import tiny_toml


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["auto", "hf"])
def test_cuda_training(backend, tiny_model, workspace):
    import torch

    import training

    assert torch.cuda.is_available()
    ws = workspace(tiny_toml(tiny_model))
    record = training.train(ws, backend=backend, max_steps=10)
    assert record.backend == ("unsloth" if backend == "auto" else "hf")
    assert record.state == "done" and record.metrics["final_loss"] < 0.95 * record.metrics["first_loss"]

"""The training objective as a module that DDP or FSDP can wrap, and the adapter weights back out of it.

DDP and FSDP hook a module's forward call; training/loop.py's masked loss calls the model's inner parts directly
(to project only trained positions through lm_head), so the loss itself is the wrapped module's forward.
"""
from __future__ import annotations

from typing import Literal

import torch

from training.distributed import World

Strategy = Literal["ddp", "fsdp"]


class Objective(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids, labels, trained: int) -> torch.Tensor:
        from training.loop import masked_loss

        return masked_loss(self.model, {"input_ids": input_ids, "position_ids": position_ids, "labels": labels},
                           trained=trained)


def wrap(model: torch.nn.Module, w: World, device: str, strategy: Strategy) -> torch.nn.Module:
    """`model` (a PEFT model) inside an Objective, replicated (ddp) or sharded (fsdp) across the ranks."""
    objective = Objective(model)
    if w.size == 1:
        return objective
    if strategy == "fsdp":
        return _shard(objective, device)
    from torch.nn.parallel import DistributedDataParallel

    cuda = device.startswith("cuda")
    # Buffers (rotary frequencies) are the same constants everywhere: no need to broadcast them each step.
    return DistributedDataParallel(objective, device_ids=[torch.device(device).index] if cuda else None,
                                   broadcast_buffers=False)


def _shard(objective: Objective, device: str) -> torch.nn.Module:
    """FSDP2: each decoder layer's weights are split across the ranks and gathered only while it runs, so a
    model larger than one GPU trains; parameters move to `device` shard by shard from the CPU."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(torch.device(device).type, (torch.distributed.get_world_size(),))
    inner = objective.model.get_base_model() if hasattr(objective.model, "get_base_model") else objective.model
    for layer in inner.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(objective, mesh=mesh)
    return objective


def no_sync(wrapped: torch.nn.Module, last: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step (DDP)."""
    from contextlib import nullcontext

    return wrapped.no_sync() if hasattr(wrapped, "no_sync") and not last else nullcontext()


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole LoRA state (sharded parameters gathered: every rank must call this), keyed as the model's own
    state_dict so PEFT's save_pretrained(state_dict=...) picks the adapter out of it."""
    from torch.distributed.tensor import DTensor

    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu()
            for k, v in model.state_dict().items() if "lora_" in k}

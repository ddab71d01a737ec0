"""A stand-in for the few Trainer attributes the DataModule reads, to build its loaders without a Trainer."""

from __future__ import annotations

from types import SimpleNamespace

import torch


def trainer_stub(
    rank: int = 0, world_size: int = 1, epoch: int = 0, completed: int = 0, uses_unlabeled: bool = True
) -> SimpleNamespace:
    """Rank ``rank`` of ``world_size`` CPU processes in ``epoch``, ``completed`` batches into it, training a
    module that does (IOCNet) or does not (CoLA) learn from the unlabeled set."""
    progress = SimpleNamespace(current=SimpleNamespace(completed=completed))
    return SimpleNamespace(
        global_rank=rank,
        world_size=world_size,
        current_epoch=epoch,
        lightning_module=SimpleNamespace(uses_unlabeled=uses_unlabeled),
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
    )

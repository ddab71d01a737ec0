"""Helpers shared by the model tests."""

from __future__ import annotations

import torch

from utal_lightning.models.iocnet import IOCNet


def randomize_agnostic_heads(model: IOCNet, std: float = 0.5) -> IOCNet:
    """Random weights for IOCNet's class-agnostic heads (they start at zero, A_ca = 0.5), so tests of
    the forward arithmetic and the losses see non-constant class-agnostic attention. Uses the global RNG."""
    with torch.no_grad():
        for head in (model.attention_rgb, model.attention_flow):
            head.weight.normal_(0.0, std)
            head.bias.normal_(0.0, std)
    return model

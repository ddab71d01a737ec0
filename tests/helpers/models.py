"""Helpers shared by the model tests."""

from __future__ import annotations

import dataclasses
import inspect
from functools import partial
from typing import Any

import torch

from utal_lightning.eval.detect import DetectionSettings
from utal_lightning.eval.evaluator import Evaluator
from utal_lightning.models.cola import CoLA
from utal_lightning.models.copl_losses import IOCNetLoss
from utal_lightning.models.iocnet import IOCNet
from utal_lightning.models.losses import CoLALoss
from utal_lightning.models.modules import CoLAModule, IOCNetModule

DIMENSIONS = ("num_classes", "feature_dim", "rgb_dim")  # the module's (from the data), given to the network


def randomize_agnostic_heads(model: IOCNet, std: float = 0.5) -> IOCNet:
    """Random weights for IOCNet's class-agnostic heads (they start at zero, A_ca = 0.5), so tests of
    the forward arithmetic and the losses see non-constant class-agnostic attention. Uses the global RNG."""
    with torch.no_grad():
        for head in (model.attention_rgb, model.attention_flow):
            head.weight.normal_(0.0, std)
            head.bias.normal_(0.0, std)
    return model


def _module(module_class, network_class, loss_class, flat: dict):
    network_args = set(inspect.signature(network_class.__init__).parameters) - {"self", *DIMENSIONS}
    loss_args = {f.name for f in dataclasses.fields(loss_class)}
    network = {k: flat.pop(k) for k in list(flat) if k in network_args}
    loss = {k: flat.pop(k) for k in list(flat) if k in loss_args}
    detection = {k: flat.pop(k) for k in list(flat) if k in {f.name for f in dataclasses.fields(DetectionSettings)}}
    evaluator = {k: flat.pop(k) for k in list(flat) if k in {f.name for f in dataclasses.fields(Evaluator)}}
    optimizer = {"lr": flat.pop("lr", 1e-4), "weight_decay": flat.pop("weight_decay", 5e-4)}
    return module_class(
        partial(network_class, **network),
        loss=loss_class(**loss),
        optimizer=partial(torch.optim.Adam, **optimizer),
        evaluator=Evaluator(detection=DetectionSettings(**detection), **evaluator),
        **flat,
    )


def cola_module(**flat: Any) -> CoLAModule:
    """A CoLAModule from one flat set of keyword arguments, as tests write them: the network's (CoLA), the loss's
    (CoLALoss), the evaluator's (Evaluator) and its detection settings' (DetectionSettings),
    ``lr`` / ``weight_decay`` (Adam; 1e-4 / 5e-4 by
    default) and the module's own."""
    return _module(CoLAModule, CoLA, CoLALoss, flat)


def iocnet_module(**flat: Any) -> IOCNetModule:
    """:func:`cola_module` for IOCNet (IOCNet, IOCNetLoss)."""
    return _module(IOCNetModule, IOCNet, IOCNetLoss, flat)

"""What the loop reads from the training videos between iterations and epochs (docs/method.md sec. 2, 3.1, 4.2.2).

No-grad passes over each rank's shard of the training videos on their fixed grid, gathered in video order:

- :func:`pool_training_videos`: the pseudolabeler's global video features (and, for the diagnostics, how well the
  pooling attention and the label-free actionness find the annotated actions);
- :func:`read_network`: the way the trained actionness runs against the label-free one (IOCNet's orientation) and
  the pseudolabeler's observation of this epoch's network (HAS votes), from one forward pass.

The Callback (``refresh.py``) decides *when* these run; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from utal_lightning.distributed import gather_rows, shard
from utal_lightning.eval.actionness import snippet_auc
from utal_lightning.pseudo.pooling import deviation_actionness, orientation_sign, within_video_correlation
from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

RowFunction = Callable[[Any, dict[str, Tensor]], dict[str, Tensor]]


@torch.no_grad()
def training_pass(
    trainer: L.Trainer, pl_module: L.LightningModule, row_fn: RowFunction, use_model: bool = True
) -> tuple[Tensor, dict[str, Tensor]]:
    """No-grad pass over this rank's shard of the training videos on their fixed grid: ``row_fn(output or None,
    batch)`` per batch (features on the module's device, video_index, lengths) -> a dict of row tensors; returns
    (video indices, each entry's rows)."""
    datamodule = trainer.datamodule
    videos = shard(len(datamodule.labels), trainer.global_rank, trainer.world_size)
    index, rows = [], []
    for batch in datamodule.pooling_batches(videos):
        batch["features"] = batch["features"].to(pl_module.device)
        output = pl_module.localize(batch["features"], lengths=batch["lengths"]) if use_model else None
        index.append(batch["video_index"])
        rows.append(row_fn(output, batch))
    return torch.cat(index), {key: torch.cat([r[key] for r in rows]) for key in rows[0]}


def label_free_actionness(datamodule: Any, batch: dict[str, Tensor]) -> Tensor:
    """(B, T) the label-free actionness of a batch of training videos (docs/method.md sec. 3.1.1)."""
    reference = datamodule.label_free_reference(batch["video_index"])
    return deviation_actionness(batch["features"], reference, batch["lengths"])


@dataclass
class PooledVideos:
    """The training videos' global features (N, D), in video order, and with diagnostics the (N, 2) per-video AUCs
    of the pooling attention and of the label-free actionness for the annotated actions (NaN without ground truth)."""

    features: Tensor
    aucs: Tensor | None


@torch.no_grad()
def pool_training_videos(
    trainer: L.Trainer,
    pl_module: L.LightningModule,
    pseudolabeler: PseudoLabeler,
    use_model: bool,
    diagnostics: bool,
) -> PooledVideos:
    """The pseudolabeler's global feature of every training video (iteration 1: ``use_model`` False, its first
    pooler), gathered from every rank."""
    datamodule = trainer.datamodule

    def pooled_rows(output: Any, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        features, lengths = batch["features"], batch["lengths"]
        label_free = label_free_actionness(datamodule, batch)  # the same for the features as read
        pooled_from = datamodule.as_read(batch) if pseudolabeler.pool_features_as_read else features
        pooled, weights = pseudolabeler.video_features(output, pooled_from, batch["video_index"], lengths, label_free)
        pooled = pooled.float()
        if not diagnostics:
            return {"pooled": pooled}
        action = datamodule.train_action_mask(batch["video_index"], batch["positions"])
        if action is None:
            aucs = torch.full((len(pooled), 2), float("nan"))
        else:
            used = weights if weights is not None else torch.ones_like(label_free)  # the mean: every snippet alike
            action = action.to(features.device)
            aucs = torch.stack([snippet_auc(used, action, lengths), snippet_auc(label_free, action, lengths)], 1)
        # one tensor per row, so one gather: the last two columns are the AUCs
        return {"pooled": torch.cat([pooled, aucs.to(pooled)], 1)}

    index, rows = training_pass(trainer, pl_module, pooled_rows, use_model=use_model)
    rows = gather_rows(trainer, index, rows["pooled"], len(datamodule.labels))
    return PooledVideos(rows[:, :-2], rows[:, -2:]) if diagnostics else PooledVideos(rows, None)


@dataclass
class NetworkReading:
    """What :func:`read_network` found: whether the trained actionness runs against the label-free one (None: not
    measured) and the pseudolabeler's observation of the network read that way (None: not asked)."""

    reversed: bool | None
    observation: Tensor | None


@torch.no_grad()
def read_network(
    trainer: L.Trainer, pl_module: L.LightningModule, pseudolabeler: PseudoLabeler, observe: bool
) -> NetworkReading:
    """One no-grad pass that reads the network over the training videos. With the module's ``orient_actionness``:
    the way its actionness runs against the label-free one (docs/method.md sec. 4.2.2), set on the module
    (``actionness_sign``). With ``observe``: the pseudolabeler's observation of this epoch's network so read, gathered;
    both readings come from the same forward pass, the reversed one recomputed from it."""
    orient = pl_module.orient_actionness
    if not (orient or observe):
        return NetworkReading(None, None)
    datamodule = trainer.datamodule
    if orient:
        pl_module.actionness_sign.fill_(1.0)  # measure the network as trained

    def read(output: Any, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        lengths, rows = batch["lengths"], {}
        if orient:
            label_free = label_free_actionness(datamodule, batch)
            rows["correlation"] = within_video_correlation(output.actionness(), label_free, lengths).float()
        if observe:
            rows["as_trained"] = pseudolabeler.epoch_observation(output, lengths)
            if orient:
                reversed_output = pl_module.inference_model.reverse_actionness(output)
                rows["reversed"] = pseudolabeler.epoch_observation(reversed_output, lengths)
        return rows

    index, rows = training_pass(trainer, pl_module, read)
    n = len(datamodule.labels)
    reading, reversed_ = "as_trained", None
    if orient:
        sign = orientation_sign(gather_rows(trainer, index, rows["correlation"], n))
        pl_module.actionness_sign.fill_(float(sign))
        reversed_ = sign < 0
        reading = "reversed" if reversed_ else reading
    return NetworkReading(reversed_, gather_rows(trainer, index, rows[reading], n) if observe else None)

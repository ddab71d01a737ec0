"""Collectives for the outer loop under DDP: shard a pass over videos, gather the pieces back.

Every rank must call these in the same order (they are collectives); with one process they are
identities. Rows are gathered with padding (all ranks send equal shapes) and put back in video order,
so the result does not depend on the number of ranks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from utal_lightning.data.sampling import shard  # noqa: F401 - re-exported: the loop's passes shard with it


def gather_rows(trainer: Any, index: Tensor, rows: Tensor, num_items: int) -> Tensor:
    """All ranks' ``rows`` (n_r, ...) for item ``index`` (n_r,) -> (num_items, ...) in item order, on every rank."""
    if trainer.world_size == 1:
        out = torch.empty((num_items, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        out[index.to(rows.device)] = rows
        return out
    size = math.ceil(num_items / trainer.world_size)
    padded_index = torch.full((size,), -1, dtype=torch.int64, device=rows.device)
    padded_index[: len(index)] = index.to(rows.device)
    padded_rows = torch.zeros((size, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded_rows[: len(rows)] = rows
    all_index = _all_gather(padded_index).reshape(-1)
    all_rows = _all_gather(padded_rows).reshape(-1, *rows.shape[1:])
    keep = all_index >= 0
    out = torch.empty((num_items, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    out[all_index[keep]] = all_rows[keep]
    return out


def _all_gather(tensor: Tensor) -> Tensor:
    """(world, ...) of every rank's equally shaped ``tensor`` (plain ``dist.all_gather``: no autograd, no
    deprecated functional collective)."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.stack(parts)


def gather_objects(trainer: Any, obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order, on every rank."""
    if trainer.world_size == 1 or not dist.is_available() or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(out, obj)
    return out

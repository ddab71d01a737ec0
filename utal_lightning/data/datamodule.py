"""The LightningDataModule: holds the pseudolabel state and builds loaders from it.

The training features live in a :class:`FeatureStore` read once per process, on the training
device when they fit (else in pinned host memory). The training loader carries only video indices,
targets and the (B, T) uniforms of docs/method.md sec. 1.2's sampling, drawn on the host from the epoch's seeded
generator; after the batch reaches the device, ``on_after_batch_transfer`` maps the uniforms to
positions and gathers the (B, T, D) features there: one indexing op, no Python loop over videos, no
host-device synchronisation, and the same samples on every device for a seed. With the store on the
host (pinned fallback) the collate step gathers instead and the loader pins the batch. The pseudolabel state
(labels, P, iteration, epoch plan) is plain tensors/ints in ``state_dict``, so it lives in
checkpoints; ``train_dataloader`` is called again every epoch (``reload_dataloaders_every_n_epochs=1``)
and always reflects the current state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from utal_lightning.data.layout import DatasetLayout, read_dataset
from utal_lightning.data.layouts.base import FileLayout
from utal_lightning.data.sampling import shard, train_positions_from_uniform
from utal_lightning.data.store import STORE_DTYPES, FeatureStore, check_same_widths, scan_split
from utal_lightning.errors import DatasetError
from utal_lightning.eval.io import discovered_class_names
from utal_lightning.pseudo.pooling import valid_mask

STORE_PLACEMENTS = ("auto", "device", "host")


class _TestVideos(Dataset):
    """Test videos one at a time on docs/method.md sec. 1.2's test grid (all snippets when L <= T, or always with
    ``num_segments=None``), gathered lazily."""

    def __init__(self, store: FeatureStore, num_segments: int | None) -> None:
        self.store, self.num_segments = store, num_segments

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> dict[str, Any]:
        length = int(self.store.lengths[i])
        positions = self.store.test_grid(i, self.num_segments or length)
        video_index = torch.tensor([i])
        return {
            "video_index": video_index,
            "features": self.store.gather(video_index, positions[None]),
            "seconds_per_step": self.store.seconds_per_position(i, len(positions)),
            "seconds_offset": self.store.seconds_offset(i),
        }


class _Drawn(Dataset):
    def __init__(self, batches: Sequence[tuple[Tensor, Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.batches[i]


class TrainBatches:
    """One epoch's training batches of this rank, drawn up front, that resume mid-epoch.

    Lightning saves ``state_dict()`` in every checkpoint (the fit loop's ``combined_loader`` state: this
    iterable has ``state_dict`` / ``load_state_dict``) and hands it back on resume. The state says how many
    batches of which epoch had trained when the checkpoint was taken (``consumed``: the fit loop's count,
    not this iterator's, which runs ahead by Lightning's prefetch); a resumed epoch with the same key starts
    at the next batch, with the same videos and uniforms as the uninterrupted run.
    """

    def __init__(
        self,
        batches: Sequence[tuple[Tensor, Tensor]],
        key: tuple[int, ...],
        collate: Any,
        consumed: Any,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.batches, self.key, self.collate, self.consumed = list(batches), tuple(key), collate, consumed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.skip = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        skip, self.skip = self.skip, 0
        # Its own generator: the loader never draws from the global RNG (a DataLoader without one draws its
        # base seed there at every iter()), so a resumed epoch sees the stream an uninterrupted one sees.
        loader = DataLoader(
            _Drawn(self.batches[skip:]),
            batch_size=None,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator(),
        )
        return iter(loader)

    def state_dict(self) -> dict[str, Any]:
        return {"key": list(self.key), "consumed": int(self.consumed())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state.get("key", ())) == self.key:  # the same epoch on the same ranks: go on where it stopped
            self.skip = min(int(state["consumed"]), len(self.batches))


class UTALDataModule(L.LightningDataModule):
    """Videos of a dataset in the docs/method.md sec. 1.1 layout, and the outer loop's pseudolabel state.

    Args:
        root: dataset root (docs/method.md sec. 1.1 layouts).
        layout: the file layout (``class_path`` / ``init_args``): ``utal_lightning.data.layouts.cola.CoLALayout``
            or ``...actionformer.ActionFormerLayout`` (its options: annotation file, feature folder and prefix,
            stride, window, default fps), or a :class:`~utal_lightning.data.layouts.base.FileLayout` of your own;
            None (default): the shipped one the root holds (gt.json: CoLA; annotations/<name>.json: ActionFormer).
        num_segments: T, snippets a video is sampled to (THUMOS 750, ActivityNet 50).
        batch_size: videos per training batch.
        num_clusters: K, pseudo-classes (default: the size of the class list).
        train_split / test_split: names of ``split_<name>.txt`` and ``features/<name>/``.
        train_subset / test_subset: the gt.json subset names each split accepts, one or a list, compared
            case-insensitively (THUMOS [validation, train] / test: CoLA's gt.json says "train";
            ActivityNet [training, train] / [validation, val]); used when split files are absent, else
            cross-checked.
        ignored_labels: annotation labels to drop (e.g. THUMOS "Ambiguous").
        missing_features: a listed video without its feature files is an "error" (default), or
            "skip": left out of its split, with a logged list.
        require_test_annotations: test videos need a ground-truth entry (for mAP); ``utal predict`` and fits
            with ``loop.test_iterations: none`` set it False.
        test_grid: a test video's positions: "sampled" (docs/method.md sec. 1.2's T evenly spread, all snippets when
            L <= T) or "all" (every snippet: the networks are fully convolutional; sec. 5.3).
        subtract_video_background: every snippet minus its video's label-free background (docs/method.md sec. 4.3),
            for training, pooling and test alike; off: the features as read (the papers).
        pool_batch_size: videos per batch of the pseudolabel stage's no-grad pass.
        seed: seeds the training samplers (with the iteration and epoch).
        store_dtype: dtype the training features are kept in: "float32", "float16" or "bfloat16"
            (batches are float32 either way).
        store_device: where the training features live when training on a GPU: "device" (on it),
            "host" (pinned host memory, gathered by the loader), or "auto": on the device if they
            take at most ``store_memory_fraction`` of its free memory, else the host. CPU runs keep
            them in host memory and use the device path.
        store_memory_fraction: the "auto" budget, a fraction of the GPU's free memory at setup.
    """

    def __init__(
        self,
        root: str | Path,
        num_segments: int = 750,
        batch_size: int = 16,
        num_clusters: int | None = None,
        train_split: str = "train",
        test_split: str = "test",
        train_subset: str | list[str] | None = None,
        test_subset: str | list[str] | None = None,
        ignored_labels: Sequence[str] = (),
        missing_features: Literal["error", "skip"] = "error",
        require_test_annotations: bool = True,
        layout: FileLayout | None = None,
        test_grid: Literal["sampled", "all"] = "sampled",
        subtract_video_background: bool = False,
        pool_batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        store_dtype: Literal["float32", "float16", "bfloat16"] = "float32",
        store_device: Literal["auto", "device", "host"] = "auto",
        store_memory_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        if store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype must be one of {sorted(STORE_DTYPES)}, got {store_dtype!r}")
        if store_device not in STORE_PLACEMENTS:
            raise ValueError(f"store_device must be one of {STORE_PLACEMENTS}, got {store_device!r}")
        if not 0.0 < store_memory_fraction <= 1.0:
            raise ValueError(f"store_memory_fraction must be in (0, 1], got {store_memory_fraction}")
        self.layout = DatasetLayout(
            root=Path(root),
            train_split=train_split,
            test_split=test_split,
            train_subset=train_subset,
            test_subset=test_subset,
            ignored_labels=tuple(ignored_labels),
            missing_features=missing_features,
            files=layout,
        )
        if not self.layout.root.is_dir():
            raise DatasetError(
                f"{self.layout.root}: dataset root not found (for the synthetic demo data run "
                f"`utal synth --preset small --out {self.layout.root}`)"
            )
        # Validate the layout and every feature header now, before any training starts.
        self.index = read_dataset(self.layout, require_test_annotations=require_test_annotations)
        self.layout = self.index.layout  # the file layout found under the root, its options filled in
        train_scan = scan_split(self.layout, train_split, self.index.train_ids)
        test_scan = scan_split(self.layout, test_split, self.index.test_ids)
        check_same_widths(train_scan, test_scan)
        self.feature_dim = train_scan.feature_dim
        self.rgb_dim = train_scan.rgb_dim
        if not (num_clusters or self.index.num_classes):
            raise DatasetError(
                f"{self.layout.gt_path}: no video carries a class label, so K is not known: give the number of "
                "actions to discover (--data.init_args.num_clusters K)"
            )
        self.num_clusters = num_clusters or self.index.num_classes
        self.num_segments = num_segments
        if test_grid not in ("sampled", "all"):
            raise ValueError(f"test_grid must be sampled or all, got {test_grid!r}")
        self.test_grid = test_grid
        self.subtract_video_background = subtract_video_background
        self.batch_size = batch_size
        self.pool_batch_size = pool_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.store_dtype = STORE_DTYPES[store_dtype]
        self.store_device = store_device
        self.store_memory_fraction = store_memory_fraction
        self.train_store: FeatureStore | None = None
        self.test_store: FeatureStore | None = None
        self._reference_snippet: Tensor | None = None
        self._train_action: Tensor | None = None

        n = len(self.index.train_ids)
        # Pseudolabel state (checkpointed): cluster per training video, P mask, 1-based iteration
        # (0 = not labelled yet), epochs of each iteration so far. The per-iteration records are the loop's.
        self.labels = torch.full((n,), -1, dtype=torch.int64)
        self.selected = torch.zeros(n, dtype=torch.bool)
        self.targets: Tensor | None = None  # (N, K) multi-hot training targets where not one-hot labels (weak mode)
        self.iteration = 0
        self.epoch_plan: list[int] = []

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels.clone(),
            "selected": self.selected.clone(),
            "targets": None if self.targets is None else self.targets.clone(),
            "iteration": self.iteration,
            "epoch_plan": list(self.epoch_plan),
            "train_ids": list(self.index.train_ids),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["train_ids"] != list(self.index.train_ids):
            raise DatasetError(
                f"{self.layout.root}: the checkpoint's training videos differ from this dataset's "
                f"({len(state['train_ids'])} vs {len(self.index.train_ids)} videos): refusing to resume on other data"
            )
        self.labels = state["labels"].clone()
        self.selected = state["selected"].clone()
        self.targets = None if state.get("targets") is None else state["targets"].clone()
        self.iteration = int(state["iteration"])
        self.epoch_plan = [int(e) for e in state["epoch_plan"]]  # (a "history" of earlier versions: the loop's now)

    def set_pseudolabels(self, labels: Tensor, selected: Tensor, epochs: int, targets: Tensor | None = None) -> None:
        """Start the next outer iteration with these labels, P, epoch count (and multi-hot targets, if not one-hot)."""
        self.labels = labels.detach().cpu().to(torch.int64)
        self.selected = selected.detach().cpu().to(torch.bool)
        self.targets = None if targets is None else targets.detach().cpu().float()
        self.iteration += 1
        self.epoch_plan.append(int(epochs))

    @property
    def labelled(self) -> bool:
        """Whether the videos carry class labels. Without (discovery: ``num_clusters`` actions found in unannotated
        videos) nothing is scored (no NMI, no mAP) and the detections name the pseudo-classes (:attr:`class_names`)."""
        return self.index.num_classes > 0

    @property
    def class_names(self) -> list[str]:
        """The names detections carry: the dataset's classes, or without labels the K pseudo-classes
        (``cluster_00`` ...: each discovered action is its own class)."""
        return list(self.index.classes) if self.labelled else discovered_class_names(self.num_clusters)

    @property
    def iteration_end_epoch(self) -> int:
        """Epochs completed when the current iteration ends (sum of the plan so far)."""
        return sum(self.epoch_plan)

    # ------------------------------------------------------------------ data
    def setup(self, stage: str | None = None) -> None:
        # The video backgrounds of either split are found from the training features' mean snippet.
        if self.train_store is None and (stage in (None, "fit") or self.subtract_video_background):
            store = FeatureStore.from_index(self.index, self.layout.train_split, self.store_dtype)
            self._as_read_reference = store.mean_snippet()
            self.train_store = self._place(self._without_backgrounds(store), self._root_device())
        if self.test_store is None:
            # Test videos go one at a time through the test loop: host memory is enough.
            self.test_store = self._without_backgrounds(FeatureStore.from_index(self.index, self.layout.test_split))

    def _without_backgrounds(self, store: FeatureStore) -> FeatureStore:
        """``store`` with each video's label-free background subtracted, with ``subtract_video_background``."""
        return store.without_backgrounds(self._as_read_reference) if self.subtract_video_background else store

    def _root_device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _place(self, store: FeatureStore, device: torch.device) -> FeatureStore:
        """The store on ``device`` (GPU runs, when it fits or is asked for) or in pinned host memory."""
        if device.type != "cuda":
            return store
        gib = store.nbytes / 2**30
        on_device = self.store_device == "device"
        if self.store_device == "auto":
            free, _ = torch.cuda.mem_get_info(device)
            on_device = store.nbytes <= self.store_memory_fraction * free
            reason = f"{gib:.2f} GiB vs {self.store_memory_fraction:g} x {free / 2**30:.1f} GiB free on {device}"
        else:
            reason = f"store_device={self.store_device!r}"
        if on_device:
            rank_zero_info(f"training features: {gib:.2f} GiB {store.features.dtype} on {device} ({reason})")
            return store.to(device)
        rank_zero_info(f"training features: {gib:.2f} GiB {store.features.dtype} in pinned host memory ({reason})")
        return store.pin_memory()

    @property
    def _gather_in_loader(self) -> bool:
        """True when the store is on the host but training is on a GPU (the pinned fallback)."""
        return self.train_store is not None and self.train_store.device != self._root_device()

    @property
    def selected_indices(self) -> Tensor:
        return torch.nonzero(self.selected).reshape(-1)

    def _epoch_generators(self, rank: int = 0) -> tuple[torch.Generator, torch.Generator]:
        """Seeded generators of this epoch's video order (the same on every rank) and of this rank's temporal
        samples.

        Separate streams (seeds ``2 s`` and ``2 s + 1``, ``s = seed * 1_000_003 + iteration * 10_007 +
        epoch``; ranks > 0 draw their samples from ``SeedSequence((s, rank))``), so a batch's samples depend
        only on the batches before it on its rank, not on when the loader happens to draw.
        """
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        base = self.seed * 1_000_003 + self.iteration * 10_007 + epoch
        sample_seed = 2 * base + 1 if rank == 0 else int(np.random.SeedSequence((base, rank)).generate_state(1)[0])
        return torch.Generator().manual_seed(2 * base), torch.Generator().manual_seed(sample_seed)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> TrainBatches:
        """One epoch over P, or over P and U (mixed in shuffled batches) for models that learn from
        unlabeled videos too (``uses_unlabeled``, e.g. IOCNet): a batch's ``supervised`` mask marks P.

        One shuffled stream (rather than two loaders) keeps the P:U ratio of every batch close to
        the sets' ratio and works unchanged when U is empty. Under DDP every rank takes a disjoint
        strided shard of the one seeded order (padded to equal length, as ``DistributedSampler``; Lightning's
        own replacement is off: ``use_distributed_sampler=False``), with its own sampling stream. The
        epoch's batches are drawn here, up front, so a mid-epoch checkpoint resumes at the batch it
        stopped at with the same samples (:class:`TrainBatches`).
        """
        if self.iteration == 0:
            raise RuntimeError("no pseudolabels yet: the PseudoLabelRefresh callback labels videos at fit start")
        module = self.trainer.lightning_module if self.trainer is not None else None
        uses_unlabeled = bool(getattr(module, "uses_unlabeled", False))
        indices = torch.arange(len(self.labels)) if uses_unlabeled else self.selected_indices
        rank, world_size = self._rank()
        order, samples = self._epoch_generators(rank)
        shuffled = indices[torch.randperm(len(indices), generator=order)]
        if world_size > 1 and len(shuffled):
            total = -(-len(shuffled) // world_size) * world_size  # every rank the same number of batches
            shuffled = shuffled.repeat(-(-total // len(shuffled)))[:total][rank::world_size]
        batches = [
            (chunk, torch.rand((len(chunk), self.num_segments), generator=samples))
            for chunk in torch.split(shuffled, self.batch_size)
        ]
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return TrainBatches(
            batches,
            key=(self.iteration, epoch, world_size),
            collate=self._train_batch,
            consumed=self._batches_consumed,
            num_workers=self.num_workers,
            pin_memory=self._root_device().type == "cuda",
        )

    def _batches_consumed(self) -> int:
        """Training batches of the current epoch whose step is done (what a checkpoint taken now has trained)."""
        return int(self.trainer.fit_loop.epoch_loop.batch_progress.current.completed) if self.trainer is not None else 0

    def _train_batch(self, drawn: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Collate: indices, targets, P mask and the batch's (B, T) sampling uniforms (features are
        gathered on the device after transfer, or here in the pinned fallback)."""
        video_index, uniform = drawn
        if self.targets is not None:
            targets = self.targets[video_index]
        else:
            targets = torch.nn.functional.one_hot(self.labels[video_index], self.num_clusters).float()
        batch = {
            "video_index": video_index,
            "uniform": uniform,
            "targets": targets,
            "supervised": self.selected[video_index],
        }
        if self._gather_in_loader:
            batch["features"] = self._gather_train(batch)
        return batch

    def _gather_train(self, batch: dict[str, Tensor]) -> Tensor:
        """docs/method.md sec. 1.2 training positions from the batch's uniforms, gathered from the store: (B, T, D)."""
        store = self.train_store
        video_index = batch["video_index"].to(store.device)
        positions = train_positions_from_uniform(store.lengths[video_index], batch["uniform"])
        return store.gather(video_index, positions)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "uniform" in batch and "features" not in batch:
            batch["features"] = self._gather_train(batch)
        return batch

    def pooling_batches(self, videos: Tensor | None = None) -> Iterator[dict[str, Tensor]]:
        """Training videos (default all; a rank's shard under DDP) on their fixed test-style grid, in batches.

        docs/method.md sec. 1.2's test grid: ``floor(i * L / T)`` for the T positions when L > T, else the video's
        own L snippets, zero-padded to T so batches stack; ``lengths`` (B,) = ``min(L, T)`` says
        how many positions are real, and the pseudolabel stage uses only those (docs/method.md sec. 3.1).
        """
        if self.train_store is None:  # utal test / predict: read for the centroid class scores
            self.setup("fit")
        store = self.train_store
        videos = torch.arange(len(store)) if videos is None else videos
        grid = torch.arange(self.num_segments, device=store.device)
        for start in range(0, len(videos), self.pool_batch_size):
            video_index = videos[start : start + self.pool_batch_size]
            lengths = store.lengths[video_index.to(store.device)]
            long = lengths[:, None] > self.num_segments
            spread = torch.div(grid[None, :] * lengths[:, None], self.num_segments, rounding_mode="floor")
            positions = torch.where(long, spread, torch.minimum(grid[None, :], lengths[:, None] - 1))
            valid = grid[None, :] < lengths[:, None]
            features = store.gather(video_index, positions) * valid[..., None].to(torch.float32)
            yield {
                "video_index": video_index,
                "positions": positions,
                "features": features,
                "lengths": torch.minimum(lengths, grid.new_tensor(self.num_segments)),
            }

    def training_ground_truth(self) -> tuple[Tensor, Tensor]:
        """(main class (N,), -1 where none; multi-hot (N, C)) of the training videos: what a weakly supervised
        labeller (``GroundTruthLabels``) trains on. Never read by an unsupervised run."""
        ids = self.index.train_ids
        return torch.as_tensor(self.index.class_targets(ids)), torch.as_tensor(self.index.multi_hot_labels(ids))

    def label_free_reference(self, video_index: Tensor) -> Tensor:
        """(B, D) the reference of the label-free actionness (docs/method.md sec. 3.1.1) for these training videos'
        features as :meth:`pooling_batches` gives them: the mean training snippet as read, less each video's
        subtracted background (``subtract_video_background``), so the actionness is that of the features as read.
        Every rank reads the whole training store, so every rank has the same one."""
        store = self.train_store
        if self._reference_snippet is None:
            self._reference_snippet = store.with_video_offsets(None).mean_snippet()
        reference = self._reference_snippet[None].expand(len(video_index), -1)
        if store.video_offsets is None:
            return reference
        return reference - store.video_offsets[video_index.to(store.video_offsets.device)].float()

    def as_read(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, T, D) a :meth:`pooling_batches` batch's features as read: each video's subtracted background
        (``subtract_video_background``) added back at its real positions, padding left at zero."""
        offsets = self.train_store.video_offsets
        features = batch["features"]
        if offsets is None:
            return features
        valid = valid_mask(features.shape[:2], batch["lengths"].to(features.device), features.device)
        back = offsets[batch["video_index"].to(offsets.device)].to(features)
        return features + back[:, None, :] * valid[..., None].to(features.dtype)

    def train_action_mask(self, video_index: Tensor, positions: Tensor) -> Tensor | None:
        """(B, T) bool: which ``positions`` of these training videos lie in a ground-truth action segment (snippet
        centres), or None when no training video is annotated. For diagnostics only (docs/method.md sec. 2.1): no
        decision of the loop reads it."""
        if self._train_action is None:
            store, masks = self.train_store, []
            for i, vid in enumerate(store.video_ids):
                annotation = self.index.annotations.get(vid)
                seconds = store.clocks[i].seconds(np.arange(int(store.lengths[i])) + 0.5)
                masks.append(
                    annotation.action_mask(seconds) if annotation is not None else np.zeros(len(seconds), dtype=bool)
                )
            self._train_action = torch.from_numpy(np.concatenate(masks)) if masks else torch.zeros(0, dtype=torch.bool)
        if not bool(self._train_action.any()):
            return None
        offsets = self.train_store.offsets[video_index.cpu()]
        return self._train_action[offsets[:, None] + positions.cpu()]

    def test_videos(self, videos: Tensor | None = None) -> Dataset:
        """Test videos one at a time (default all; a rank's shard under DDP)."""
        dataset = _TestVideos(self.test_store, self.num_segments if self.test_grid == "sampled" else None)
        return dataset if videos is None else Subset(dataset, videos.tolist())

    def test_dataloader(self) -> DataLoader:
        """This rank's strided shard of the test videos, one at a time (``utal test`` / ``predict``; the
        LightningModule gathers the detections of every rank)."""
        rank, world_size = self._rank()
        videos = None if world_size == 1 else shard(len(self.test_store), rank, world_size)
        return DataLoader(self.test_videos(videos), batch_size=None, num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

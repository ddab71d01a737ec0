"""Thin LightningModules: training steps per model, one shared inference / test path (docs/method.md sec. 5)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from utal_lightning.distributed import gather_objects, shard
from utal_lightning.eval.detection_map import DetectionMAP
from utal_lightning.eval.evaluator import ClassReference, Evaluator, VideoReading
from utal_lightning.models.augment import temporal_shift
from utal_lightning.models.copl_losses import IOCNetLoss, iocnet_loss
from utal_lightning.models.losses import CoLALoss, cola_training_loss
from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.reporting.test_results import test_metrics


def as_settings(settings: type, value: Any) -> Any:
    """``value``, or the settings dataclass ``settings`` built from it: ``load_from_checkpoint`` passes the plain
    dict :meth:`LocalizationModule.save_settings` saved."""
    return settings(**value) if isinstance(value, dict) else value


class NetworkFactory(Protocol):
    """A network class with its config's arguments (``model.init_args.network``), built with what the data
    decides: the class count (the data's ``num_clusters``) and the input width."""

    def __call__(self, *, num_classes: int, feature_dim: int) -> nn.Module: ...


class TwoStreamNetworkFactory(Protocol):
    """:class:`NetworkFactory` of a network that treats RGB and flow apart (``rgb_dim``: the RGB channels first)."""

    def __call__(self, *, num_classes: int, feature_dim: int, rgb_dim: int) -> nn.Module: ...


class LocalizationModule(L.LightningModule):
    """What every localization model shares: the injected network and optimizer, the eval-mode forward used by the
    pseudolabel stage, and detection + mAP on the test split (docs/method.md sec. 5).

    Args:
        network: the network's class and arguments (``class_path`` / ``init_args``), built here with
            ``num_classes`` and ``feature_dim`` (and, for two-stream networks, ``rgb_dim``).
        optimizer: the optimizer's class and arguments (``class_path: torch.optim.Adam``, ``init_args: {lr,
            weight_decay}``), built on the network's parameters.
        num_classes: K (linked from the data's ``num_clusters``).
        feature_dim: input width (linked from the data: 2048 for I3D rgb + flow).
        evaluator: the inference and test settings (:class:`~utal_lightning.eval.evaluator.Evaluator`: detection,
            cluster -> class map, class scores, localization map, tIoUs).
        rgb_dim: width of the RGB channels at the front of the input (linked from the data); used by
            models that treat the modalities separately (IOCNet).
        compile_training: run the training forward through ``torch.compile`` (T is fixed in training, so
            one graph per batch size); pooling, test and the EMA teacher stay eager.
        compile_backend: ``torch.compile``'s backend ("inductor": generated kernels; needs a C++ compiler
            on CPU; "aot_eager": no code generation).
    """

    uses_unlabeled = False  # True: the DataModule also serves the unlabeled set U (see its train_dataloader)
    orient_actionness = False  # True: the loop orients the actionness before reading it (IOCNetModule, sec. 4.2.2)

    def __init__(
        self,
        network: Callable[..., nn.Module],
        num_classes: int,
        feature_dim: int = 2048,
        optimizer: OptimizerCallable = torch.optim.Adam,
        evaluator: Evaluator = Evaluator(),
        rgb_dim: int = 1024,
        compile_training: bool = False,
        compile_backend: str = "inductor",
    ) -> None:
        super().__init__()
        self.network, self.optimizer = network, optimizer
        self.num_classes, self.feature_dim, self.rgb_dim = num_classes, feature_dim, rgb_dim
        self.evaluator = as_settings(Evaluator, evaluator)
        self.compile_training, self.compile_backend = compile_training, compile_backend
        self._compiled: list[nn.Module] = []  # in a list: not a submodule (no second copy in the state dict)
        self._test_detections: dict[int, np.ndarray] = {}
        self._cluster_map: tuple[Tensor, Tensor] | None = None  # (the labels it was computed from, the map)
        self.test_result: DetectionMAP | None = None  # the last test pass's (on_test_epoch_end)

    # ------------------------------------------------------------------ models
    @property
    def inference_model(self) -> nn.Module:
        """The network used for pooling and inference (IOCNet: the EMA teacher)."""
        return self.model

    def evaluation_models(self) -> dict[str, nn.Module]:
        """Models whose test mAP is logged, by metric-key suffix ("" = the inference model)."""
        return {"": self.inference_model}

    @property
    def training_model(self) -> nn.Module:
        """:attr:`model`, or its ``torch.compile``d wrapper (same parameters) with ``compile_training``."""
        if not self.compile_training:
            return self.model
        if not self._compiled:
            self._compiled.append(torch.compile(self.model, backend=self.compile_backend, dynamic=False))
        return self._compiled[0]

    @torch.no_grad()
    def localize(
        self, features: Tensor, model: nn.Module | None = None, lengths: Tensor | None = None
    ) -> LocalizationOutput:
        """Eval-mode forward of ``model`` (default :attr:`inference_model`), restoring its mode after;
        ``lengths`` (B,): real positions of a zero-padded batch."""
        model = model or self.inference_model
        was_training = model.training
        model.eval()
        try:
            return model(features.to(self.device), lengths)
        finally:
            model.train(was_training)

    def log_progress(self, loss: Tensor, parts: dict[str, Tensor], batch_size: int) -> None:
        """Training losses, and the outer iteration on the progress bar."""
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in parts.items() if k != "total"}, batch_size=batch_size)
        if self.trainer.datamodule is not None:
            self.log(
                "outer", float(self.trainer.datamodule.iteration), prog_bar=True, logger=False, batch_size=batch_size
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        # A stop requested before this batch (a preemption checkpoint was just saved at its start) ends the epoch
        # here: the batch is the resumed run's, and training it now would move the weights past the checkpoint.
        return -1 if self.trainer.should_stop else None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.model.parameters())

    def save_settings(self) -> None:
        """``save_hyperparameters`` of the calling constructor, but for the network and optimizer (callables) and
        with settings dataclasses (loss, detection) saved as plain dicts: checkpoints stay loadable with
        ``weights_only=True``."""
        self.save_hyperparameters(ignore=["network", "optimizer"], frame=inspect.currentframe().f_back)
        for name, value in list(self.hparams.items()):
            if is_dataclass(value) and not isinstance(value, type):
                self.hparams[name] = asdict(value)  # nested settings (the evaluator's detection) too

    def _build_model(self) -> nn.Module:
        """A new network as the constructor builds it (on the CPU, drawing from the global RNG)."""
        return self.network(num_classes=self.num_classes, feature_dim=self.feature_dim)

    def reset_weights(self, seed: int) -> None:
        """Re-initialize :attr:`model` as the constructor does after ``torch.manual_seed(seed)`` (an
        outer iteration that restarts from scratch): a fresh network is built under a forked RNG
        seeded with ``seed``, so the global RNG streams are untouched and equal seeds give equal
        weights on every rank, and its weights are loaded in place (the optimizer keeps its tensors)."""
        with torch.random.fork_rng(devices=[]):  # the network is built on the CPU: only its RNG moves
            torch.default_generator.manual_seed(seed)
            fresh = self._build_model()
        self.model.load_state_dict(fresh.state_dict())

    # ------------------------------------------------------------------ inference
    def cluster_to_class(self, datamodule: Any) -> Tensor:
        """(K, C) evaluation map from the training pseudolabels and the *training* ground truth (docs/method.md
        sec. 3.5), computed once per set of pseudolabels (the DataModule replaces its ``labels`` tensor when it
        takes new ones, so its identity marks them)."""
        labels = datamodule.labels
        if self._cluster_map is None or self._cluster_map[0] is not labels:
            targets = datamodule.index.class_targets(datamodule.index.train_ids)
            mapping = self.evaluator.cluster_map(labels, targets, datamodule.num_clusters, datamodule.index.num_classes)
            self._cluster_map = (labels, mapping)
        return self._cluster_map[1]

    @torch.no_grad()
    def class_reference(self, datamodule: Any, model: nn.Module | None = None) -> ClassReference:
        """What a test video's classes are scored against: the cluster -> class map (:meth:`cluster_to_class`) and,
        with ``class_scores="centroids"``, the centroids of the training videos of each pseudo-class in P, pooled
        by ``model``'s actionness (``Evaluator.pooled_feature``)."""
        mapping = self.cluster_to_class(datamodule)
        if self.evaluator.class_scores == "network":
            return ClassReference(mapping)
        pooled = []
        for batch in datamodule.pooling_batches():
            lengths = batch["lengths"].to(self.device)
            features = batch["features"].to(self.device)
            pooled.append(self.evaluator.pooled_feature(features, self.localize(features, model, lengths), lengths))
        centroids = self.evaluator.centroids(
            torch.cat(pooled), datamodule.labels, datamodule.selected, datamodule.num_clusters
        )
        return ClassReference(mapping, centroids)

    def detect(self, batch: dict[str, Any], reference: ClassReference, model: nn.Module | None = None) -> np.ndarray:
        """Detections ``[start_s, end_s, score, class]`` of one test video (``reference``: :meth:`class_reference`)."""
        features = batch["features"].to(self.device)
        return self.evaluator.detect(
            self.localize(features, model),
            features,
            reference,
            float(batch["seconds_per_step"]),
            float(batch.get("seconds_offset", 0.0)),
        )

    def detect_videos(
        self, datamodule: Any, videos: Iterable[dict[str, Any]], model: nn.Module | None = None
    ) -> dict[int, np.ndarray]:
        """Detections of these test videos by video index (a manual pass, usable inside ``fit``)."""
        reference = self.class_reference(datamodule, model)
        return {int(b["video_index"][0]): self.detect(b, reference, model) for b in videos}

    def score_detections(self, datamodule: Any, detections: dict[int, np.ndarray]) -> DetectionMAP:
        """mAP over all test videos (a video without detections counts as such)."""
        index = datamodule.index
        return self.evaluator.score(index.annotations, index.test_ids, detections, index.classes)

    def test_pass(self, datamodule: Any) -> dict[str, tuple[DetectionMAP, dict[int, np.ndarray]]]:
        """The in-loop test (usable inside ``fit``): each of :meth:`evaluation_models` detects on this rank's shard of
        the test videos; the detections of every rank are gathered and scored. By metric-key suffix: (mAP,
        detections by video index), the same on every rank."""
        trainer = self.trainer
        mine = datamodule.test_videos(shard(len(datamodule.index.test_ids), trainer.global_rank, trainer.world_size))
        results = {}
        for name, model in self.evaluation_models().items():
            parts = gather_objects(trainer, self.detect_videos(datamodule, mine, model=model))
            detections = {i: rows for part in parts for i, rows in part.items()}
            results[name] = (self.score_detections(datamodule, detections), detections)
        return results

    @torch.no_grad()
    def read_test_videos(
        self, datamodule: Any, detections: dict[int, np.ndarray], count: int = 3
    ) -> list[VideoReading]:
        """The first ``count`` test videos as the inference model reads them, with their ``detections`` (for the
        attention figure)."""
        dataset = datamodule.test_videos()
        readings = []
        for i in range(min(count, len(dataset))):
            batch = dataset[i]
            readings.append(
                self.evaluator.read(
                    self.localize(batch["features"]),
                    i,
                    float(batch["seconds_per_step"]),
                    float(batch.get("seconds_offset", 0.0)),
                    detections.get(i, np.zeros((0, 4))),
                )
            )
        return readings

    # ------------------------------------------------------------------ test / predict
    def on_test_epoch_start(self) -> None:
        self._reference = self.class_reference(self.trainer.datamodule)
        self._test_detections, self.test_result = {}, None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._test_detections[int(batch["video_index"][0])] = self.detect(batch, self._reference)

    def on_test_epoch_end(self) -> None:
        datamodule = self.trainer.datamodule
        # Under DDP every rank saw a shard (padded by the sampler): merge by video index, once each.
        merged = {i: rows for part in gather_objects(self.trainer, self._test_detections) for i, rows in part.items()}
        if not datamodule.labelled:  # discovery: no ground truth to score against (utal predict writes detections)
            rank_zero_info("no class labels in the data: nothing to score (utal predict writes the detections)")
            return
        self.test_result = self.score_detections(datamodule, merged)  # the loop writes it into summary.json
        self.log_dict(test_metrics(self.test_result), sync_dist=True)  # the same on every rank (gathered detections)

    def on_predict_epoch_start(self) -> None:
        self._reference = self.class_reference(self.trainer.datamodule)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> tuple[int, np.ndarray]:
        return int(batch["video_index"][0]), self.detect(batch, self._reference)


class CoLAModule(LocalizationModule):
    """CoLA (docs/method.md sec. 4.1) trained on pseudolabels: ``L = L_cls + lambda_ctr * L_ctr``.

    Args:
        network: :class:`~utal_lightning.models.cola.CoLA` with its arguments (``model.init_args.network``).
        loss: the snippet mining and the loss settings (:class:`~utal_lightning.models.losses.CoLALoss`).
        **kwargs: :class:`LocalizationModule`'s (the optimizer, the data's dimensions, inference).
    """

    def __init__(self, network: NetworkFactory, loss: CoLALoss = CoLALoss(), **kwargs: Any) -> None:
        super().__init__(network, **kwargs)
        self.save_settings()
        self.loss = as_settings(CoLALoss, loss)
        self.model = self._build_model()

    def forward(self, features: Tensor) -> LocalizationOutput:
        return self.model(features)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        output = self.training_model(batch["features"])
        loss, parts = cola_training_loss(output, batch["targets"], self.model.r_easy, self.loss, self.model.training)
        self.log_progress(loss, parts, len(batch["targets"]))
        return loss


def ema_with_warmup(decay: float):
    """docs/method.md sec. 4.2 teacher update: ``decay_n = min(d, (1 + n) / (10 + n))`` at update n (mean-teacher
    warm-up), as an ``AveragedModel`` ``avg_fn``."""

    def average(teacher: Tensor, student: Tensor, num_averaged: Tensor) -> Tensor:
        d = ema_warmup_decay(num_averaged.to(teacher.dtype), decay)
        return d * teacher + (1 - d) * student

    return average


def ema_warmup_decay(num_averaged: Tensor, decay: float) -> Tensor:
    """docs/method.md sec. 4.2's teacher decay at update n: ``min(d, (1 + n) / (10 + n))``."""
    return torch.clamp((1 + num_averaged) / (10 + num_averaged), max=decay)


class EMATeacher(AveragedModel):
    """``AveragedModel`` with :func:`ema_with_warmup`, updated without a host-device synchronisation.

    The stock ``update_parameters`` branches on ``n_averaged == 0`` on the host (a device sync every
    step on a GPU) and averages tensor by tensor. Here the first update's copy is the same formula
    with weight 0 on the teacher, and all floating tensors update in two foreach kernels; their
    numbers are those of ``AveragedModel(model, avg_fn=ema_with_warmup(decay), use_buffers=True)``.
    Integer buffers (counters such as BatchNorm's) are copied from the student, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, avg_fn=ema_with_warmup(decay), use_buffers=True)
        self.decay = decay

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        pairs = list(
            zip(
                [*self.module.parameters(), *self.module.buffers()],
                [*model.parameters(), *model.buffers()],
                strict=True,
            )
        )
        floating = [(t, s) for t, s in pairs if t.is_floating_point()]
        for t, s in pairs:
            if not t.is_floating_point():
                t.copy_(s)
        if floating:
            teacher, student = [t for t, _ in floating], [s.detach() for _, s in floating]
            n = self.n_averaged.to(device=teacher[0].device, dtype=teacher[0].dtype)
            d = torch.where(n == 0, torch.zeros_like(n), ema_warmup_decay(n, self.decay))
            torch._foreach_mul_(teacher, d)
            torch._foreach_add_(teacher, torch._foreach_mul(student, 1 - d))
        self.n_averaged += 1


class IOCNetModule(LocalizationModule):
    """IOCNet (docs/method.md sec. 4.2): a student with an EMA teacher, trained on P (``L_sup``) and P + U (``L_un``).

    The student sees temporally shifted features, the teacher the originals; the teacher
    (``torch.optim.swa_utils.AveragedModel``, no gradients, updated after every optimizer step, saved
    in checkpoints) is the model used for HAS pooling and inference. Without ``L_CO`` (``loss.use_co``
    false) there is no shift and no teacher (COPL Table 7's single model on unaugmented data).

    Args:
        network: :class:`~utal_lightning.models.iocnet.IOCNet` with its arguments (``model.init_args.network``),
            built with the data's ``rgb_dim`` too.
        loss: the objective's weights and switches (:class:`~utal_lightning.models.copl_losses.IOCNetLoss`).
        orient_actionness: whenever the loop reads the network (pooling, HAS votes, tests), first compare its
            ``A_ca`` with the label-free actionness on the training videos and, where they run against each other,
            read both actionness branches reversed (:attr:`actionness_sign`, docs/method.md sec. 4.2.2); False:
            as trained (the paper).
        shift_channels: channels moved by the temporal shift (512 of 2048).
        ema_decay: the teacher's EMA decay d (0.999).
        **kwargs: :class:`LocalizationModule`'s (the optimizer, the data's dimensions, inference).
    """

    uses_unlabeled = True

    def __init__(
        self,
        network: TwoStreamNetworkFactory,
        loss: IOCNetLoss = IOCNetLoss(),
        orient_actionness: bool = True,
        shift_channels: int = 512,
        ema_decay: float = 0.999,
        **kwargs: Any,
    ) -> None:
        super().__init__(network, **kwargs)
        self.save_settings()
        self.loss = as_settings(IOCNetLoss, loss)
        self.model = self._build_model()
        self.teacher = EMATeacher(self.model, ema_decay) if self.loss.use_co else None
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
        self.shift_channels = min(shift_channels, self.feature_dim)
        self.orient_actionness = orient_actionness
        # -1: the inference reads the actionness branches reversed (set by the loop, saved in checkpoints).
        self.register_buffer("actionness_sign", torch.ones(()))

    @property
    def inference_model(self) -> nn.Module:
        return self.teacher.module if self.teacher is not None else self.model

    def evaluation_models(self) -> dict[str, nn.Module]:
        return {"": self.inference_model, "_student": self.model} if self.teacher is not None else {"": self.model}

    def forward(self, features: Tensor) -> LocalizationOutput:
        return self.model(features)

    @torch.no_grad()
    def localize(
        self, features: Tensor, model: nn.Module | None = None, lengths: Tensor | None = None
    ) -> LocalizationOutput:
        """:meth:`LocalizationModule.localize`, read reversed where :attr:`actionness_sign` says so."""
        output = super().localize(features, model, lengths)
        if self.actionness_sign < 0:
            output = (model or self.inference_model).reverse_actionness(output)
        return output

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A checkpoint written before the orientation existed read the network as trained.
        checkpoint["state_dict"].setdefault("actionness_sign", torch.ones(()))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        features = batch["features"]
        teacher_output = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_output = self.teacher.module(features)
            features = temporal_shift(features, self.shift_channels)  # global RNG: seeded, checkpointed
        output = self.training_model(features)
        loss, parts = iocnet_loss(output, teacher_output, batch["targets"], batch["supervised"], self.loss)
        self.log_progress(loss, parts, len(batch["targets"]))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # The EMA teacher follows optimizer steps, not batches (with accumulate_grad_batches > 1 a batch
        # without a step leaves the student unchanged; averaging it again would over-weight that state).
        super().optimizer_step(*args, **kwargs)
        if self.teacher is not None:
            self.teacher.update_parameters(self.model)

    def _build_model(self) -> nn.Module:
        return self.network(num_classes=self.num_classes, feature_dim=self.feature_dim, rgb_dim=self.rgb_dim)

    def reset_weights(self, seed: int) -> None:
        """The student as :meth:`LocalizationModule.reset_weights`; the teacher restarts as built:
        a copy of the fresh student, with no update counted (the next update copies the student)."""
        super().reset_weights(seed)
        if self.teacher is not None:
            self.teacher.module.load_state_dict(self.model.state_dict())
            self.teacher.n_averaged.zero_()

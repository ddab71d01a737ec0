"""PseudoLabelRefresh, the outer loop's *when*, in a real Trainer with a recording pseudolabeler: labels at fit
start and at each iteration's last epoch, the epochs of each iteration, weight restarts, test passes only
where asked, refusal to resume on stale labels, and the RNG states it checkpoints."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from tests.helpers.datasets import write_dataset
from tests.helpers.models import cola_module
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.loop.refresh import PseudoLabelRefresh, rng_states, set_rng_states
from utal_lightning.loop.schedule import restart_seed
from utal_lightning.models.cola import CoLA
from utal_lightning.pseudo.parts import Clusterer, PseudoLabels
from utal_lightning.pseudo.poolers import MeanPooler
from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

pytestmark = pytest.mark.usefixtures("one_thread")

T = 8
N = 10  # training videos
VIDEOS = {f"video_validation_{i}": ("train", 6 + i, None) for i in range(N)}
VIDEOS["video_test_1"] = ("test", 9, [{"segment": [0.0, 2.0], "label": "Walk"}])
VIDEOS["video_test_2"] = ("test", 12, [{"segment": [1.0, 4.0], "label": "Swim"}])


class RecordingPooler(MeanPooler):
    """The mean, recording each call."""

    def __init__(self, calls: list[tuple]) -> None:
        super().__init__()
        self.calls = calls

    def weights(self, output, features, video_index, lengths=None, label_free=None):
        self.calls.append(("video_features", output is None))
        return None


class RecordingLabeler(PseudoLabeler):
    """Mean pooling; P grows by two videos per iteration; every call is recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        super().__init__(RecordingPooler(self.calls), Clusterer(), first_pooler=RecordingPooler(self.calls))

    def assign(self, video_features, num_clusters, iteration, max_iterations, seed, ground_truth=None):
        self.calls.append(("assign", iteration, len(video_features), seed, ground_truth is None))
        n = len(video_features)
        selected = torch.zeros(n, dtype=torch.bool)
        selected[: 2 * iteration + 2] = True
        return PseudoLabels(torch.arange(n) % num_clusters, selected, torch.zeros(n, dtype=torch.int64))

    def start_iteration(self):
        self.calls.append(("start_iteration",))


class Watch(L.Callback):
    """Per training epoch: the iteration, the videos trained on, the weights and optimizer state at its start."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "iteration": trainer.datamodule.iteration,
                "selected": set(trainer.datamodule.selected_indices.tolist()),
                "videos": set(),
                "weights": {k: v.clone() for k, v in pl_module.model.state_dict().items()},
                "optimizer_state": len(trainer.optimizers[0].state),
            }
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.epochs[-1]["videos"] |= set(batch["video_index"].tolist())

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs[-1]["weights_at_end"] = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), videos=VIDEOS)


def _fit(root: Path, run: Path, seed: int = 5, **refresh) -> SimpleNamespace:
    pseudolabeler, watch = RecordingLabeler(), Watch()
    callback = PseudoLabelRefresh(pseudolabeler, **{"max_iterations": 3, "epochs_per_iteration": 2, **refresh})
    datamodule = UTALDataModule(root, num_segments=T, batch_size=4, seed=seed)
    module = cola_module(num_classes=datamodule.num_clusters, feature_dim=datamodule.feature_dim, hidden_dim=8)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        callbacks=[callback, watch],
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=run,
    )
    trainer.fit(module, datamodule=datamodule)
    return SimpleNamespace(
        pseudolabeler=pseudolabeler, watch=watch, datamodule=datamodule, trainer=trainer, module=module, loop=callback
    )


@pytest.fixture(scope="module")
def run(root, tmp_path_factory) -> SimpleNamespace:
    return _fit(root, tmp_path_factory.mktemp("run"))


def test_labels_at_fit_start_and_after_each_iterations_last_epoch(run):
    assigns = [c for c in run.pseudolabeler.calls if c[0] == "assign"]
    # iteration i is labelled with seed = data seed + i, on all N videos, with no ground truth (unsupervised)
    assert assigns == [("assign", i, N, 5 + i, True) for i in (1, 2, 3)]
    assert [c[0] for c in run.pseudolabeler.calls].count("start_iteration") == 3
    # iteration 1 pools without a model (its features), later ones with the model's output
    pooled = [c[1] for c in run.pseudolabeler.calls if c[0] == "video_features"]  # one call per pooling batch
    assert pooled[0] is True and pooled[-1] is False
    iterations = [e["iteration"] for e in run.watch.epochs]
    assert iterations == [1, 1, 2, 2, 3, 3]  # adaptive epochs: E_max = 2 epochs every iteration
    assert run.datamodule.epoch_plan == [2, 2, 2] and run.trainer.current_epoch == 6


def test_each_iteration_trains_on_its_own_selected_set(run):
    for e in run.watch.epochs:
        assert e["selected"] == set(range(2 * e["iteration"] + 2))
        assert e["videos"] == e["selected"]  # CoLA learns from P only


def test_the_model_continues_from_the_previous_weights_by_default(run):
    for before, after in zip(run.watch.epochs, run.watch.epochs[1:], strict=False):
        for name, tensor in before["weights_at_end"].items():
            assert torch.equal(after["weights"][name], tensor), name


def test_every_iteration_is_recorded_and_tested(run):
    history = run.loop.history
    assert [h["iteration"] for h in history] == [1, 2, 3]
    assert [h["num_selected"] for h in history] == [4, 6, 8]
    tious = {f"{t:g}" for t in run.trainer.lightning_module.evaluator.tious}
    assert all(set(h["test"]) == tious | {"average_mAP"} for h in history)  # test_iterations="all": every one
    summary = json.loads((Path(run.trainer.default_root_dir) / "summary.json").read_text())
    assert [h["iteration"] for h in summary["iterations"]] == [1, 2, 3]


def test_non_adaptive_epochs_keep_the_baselines_batch_budget(root, tmp_path):
    done = _fit(root, tmp_path, adaptive_epochs=False, max_iterations=2)
    # baseline: 2 epochs over N = 10 videos in batches of 4 -> 6 batches; |P| = 4 (1 batch), 6 (2 batches)
    assert done.datamodule.epoch_plan == [6, 3]
    assert [e["iteration"] for e in done.watch.epochs] == [1] * 6 + [2] * 3


def test_restart_each_iteration_rebuilds_the_network_and_forgets_adams_moments(root, tmp_path):
    done = _fit(root, tmp_path, restart_each_iteration=True, max_iterations=2, test_iterations="none")
    first_of_two = next(e for e in done.watch.epochs if e["iteration"] == 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(restart_seed(5, 2))
        fresh = CoLA(num_classes=done.module.num_classes, feature_dim=done.module.feature_dim, hidden_dim=8)
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(first_of_two["weights"][name], tensor), name
    assert first_of_two["optimizer_state"] == 0
    assert done.watch.epochs[1]["optimizer_state"] > 0  # inside iteration 1 Adam had state
    assert all("test" not in h for h in done.loop.history)  # test_iterations="none"


def test_last_tests_only_the_final_iteration(root, tmp_path):
    done = _fit(root, tmp_path, max_iterations=2, epochs_per_iteration=1, test_iterations="last")
    assert ["test" in h for h in done.loop.history] == [False, True]


@pytest.mark.parametrize(("epoch", "stale"), [(1, True), (2, False), (5, False), (6, True)])
def test_a_checkpoint_from_another_iteration_is_refused(epoch, stale):
    # iteration 2 of plan [3, 3] runs epochs 3-5; a checkpoint of its boundary epoch 2 is fine
    datamodule = SimpleNamespace(iteration=2, epoch_plan=[3, 3], iteration_end_epoch=6)
    if stale:
        with pytest.raises(RuntimeError, match="stale pseudolabels"):
            PseudoLabelRefresh._check_consistency(datamodule, epoch)
    else:
        PseudoLabelRefresh._check_consistency(datamodule, epoch)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="test_iterations"):
        PseudoLabelRefresh(RecordingLabeler(), test_iterations="some")
    with pytest.raises(ValueError, match="progress_every_n_epochs"):
        PseudoLabelRefresh(RecordingLabeler(), progress_every_n_epochs=-1)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    saved = rng_states()
    torch.save(saved, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_the_history_resumes_from_the_loop_s_state_or_an_earlier_version_s_datamodule_state():
    history = [{"iteration": 1, "nmi": 0.5}, {"iteration": 2, "nmi": 0.6}]
    loop = PseudoLabelRefresh(RecordingLabeler())
    loop.history = [dict(h) for h in history]
    state = loop.state_dict()
    loop.history[0]["nmi"] = 0.0  # the state is a copy
    resumed = PseudoLabelRefresh(RecordingLabeler())
    resumed.on_load_checkpoint(None, None, {"epoch": 3, "UTALDataModule": {"epoch_plan": [2, 2]}})
    resumed.load_state_dict(state)
    assert resumed.history == history
    # a checkpoint written before the loop owned the history: the DataModule's state held it
    older = PseudoLabelRefresh(RecordingLabeler())
    checkpoint = {"epoch": 3, "UTALDataModule": {"epoch_plan": [2, 2], "history": history}}
    older.on_load_checkpoint(None, None, checkpoint)
    older.load_state_dict({key: value for key, value in state.items() if key != "history"})
    assert older.history == history

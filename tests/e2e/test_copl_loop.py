"""COPL end to end through `utal fit` on synthetic data, its ablations, weak mode and the crossings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.helpers.fit import baseline, fit
from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.data.synthetic import PRESETS, write_synthetic_dataset


@pytest.fixture(scope="module")
def copl_run(small, tmp_path_factory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("copl")
    return fit("synthetic_copl.yaml", small, root), root


def test_copl_improves_its_pseudolabels_and_plri_separates_reliable_videos(copl_run):
    summary, _ = copl_run
    iterations = summary["iterations"]
    assert len(iterations) == 3
    # iteration 1 pools by the label-free actionness (NMI ~0.90 on small); the trained attention improves on it
    assert iterations[-1]["nmi"] > iterations[0]["nmi"] + 0.03, [h["nmi"] for h in iterations]
    for h in iterations:
        assert h["num_selected"] > 0 and h["num_unselected"] > 0
        # teacher and student are both evaluated
        assert "average_mAP" in h["test"] and "average_mAP" in h["test_student"]
        # the network was read at the iteration's end: which way its actionness runs is recorded (sec. 4.2.2)
        assert isinstance(h["actionness_reversed"], bool)
    # PLRI's unlabeled set U holds the less reliable videos. From iteration 1's strong label-free clusters it is
    # small (2-4 of 120 videos), so its accuracy is read over all iterations together.
    in_u = sum(h["num_unselected"] for h in iterations)
    right_in_u = sum(h["accuracy_U"] * h["num_unselected"] for h in iterations)
    right_in_p = sum(h["accuracy_P"] * h["num_selected"] for h in iterations)
    assert in_u >= 5 and right_in_u / in_u < right_in_p / sum(h["num_selected"] for h in iterations) - 0.1


def test_iterating_beats_one_iteration_with_the_same_epochs(copl_run, small, tmp_path):
    # Re-clustering with the trained attention improves the pseudolabels over iteration 1's label-free ones,
    # and the model trained on them localizes at least as well as one trained as long on iteration 1's.
    summary, _ = copl_run
    total = sum(h["epochs"] for h in summary["iterations"])
    once = fit(
        "synthetic_copl.yaml",
        small,
        tmp_path / "once",
        "--loop.max_iterations=1",
        f"--loop.epochs_per_iteration={total}",
    )
    assert sum(h["epochs"] for h in once["iterations"]) == total
    assert summary["final"]["nmi"] > once["final"]["nmi"] + 0.03
    assert summary["final"]["test"]["average_mAP"] >= once["final"]["test"]["average_mAP"]


def test_copl_beats_the_label_free_baselines(copl_run, small, tmp_path):
    # What the training earns: over the strong label-free baseline (the same inference and grids, nothing
    # trained) and far over the papers' mean-pooling one (docs/method.md sec. 5.1).
    summary, _ = copl_run
    strong = baseline(small, tmp_path / "strong", "synthetic_copl.yaml")
    mean = baseline(small, tmp_path / "mean", "synthetic_copl.yaml", "--pooling", "mean")
    final = summary["final"]["test"]
    assert final["0.5"] > strong["0.5"] + 0.05 and final["average_mAP"] > strong["average_mAP"] + 0.05
    assert final["0.5"] > mean["0.5"] + 0.3
    assert strong["0.5"] > mean["0.5"]  # the baselines themselves rank as they should


def test_checkpoint_holds_teacher_and_votes(copl_run):
    _, root = copl_run
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(k.startswith("teacher.") for k in checkpoint["state_dict"])
    assert int(checkpoint["state_dict"]["teacher.n_averaged"]) > 0
    (loop_state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("PseudoLabelRefresh")]
    votes = loop_state["pseudolabeler"]["votes"]
    assert votes.shape == (120, 64) and float(votes.sum()) > 0


def test_weak_mode_trains_on_ground_truth_labels(small, tmp_path):
    summary = fit(
        "synthetic_copl.yaml",
        small,
        tmp_path / "weak",
        "--config",
        str(CONFIGS / "ablations" / "weak.yaml"),
        "--loop.epochs_per_iteration=20",
    )
    (only,) = summary["iterations"]
    assert (
        only["nmi"] == pytest.approx(1.0)
        and only["accuracy"] == pytest.approx(1.0)
        and only["selected_fraction"] == 1.0
    )
    checkpoint = torch.load(tmp_path / "weak" / "checkpoints" / "last.ckpt", weights_only=True)
    targets = checkpoint["UTALDataModule"]["targets"]
    assert targets.shape == (120, 5) and float(targets.sum(1).max()) == 2.0  # multi-label videos keep both labels


@pytest.mark.parametrize("ablation", ["copl_cls_asl", "copl_ci", "copl_ci_c"])
def test_loss_ablations_run(small, tmp_path, ablation):
    summary = fit(
        "synthetic_copl.yaml",
        small,
        tmp_path / ablation,
        "--config",
        str(CONFIGS / "ablations" / f"{ablation}.yaml"),
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=2",
    )
    assert len(summary["iterations"]) == 2 and "test_student" not in summary["iterations"][0]  # no teacher without L_CO


@pytest.mark.parametrize("config", ["synthetic_copl_cci.yaml", "synthetic_feel_has.yaml"])
def test_crossings_run(small, tmp_path, config):
    summary = fit(config, small, tmp_path / "run", "--loop.max_iterations=2", "--loop.epochs_per_iteration=3")
    assert [h["iteration"] for h in summary["iterations"]] == [1, 2]


@pytest.mark.parametrize(
    "switch",
    [
        "--loop.pseudolabeler.init_args.pooler.init_args.branch=cs",
        "--loop.pseudolabeler.init_args.pooler.init_args.use_filter=false",
        "--loop.pseudolabeler.init_args.pooler.init_args.voting=false",
        "--loop.pseudolabeler.init_args.clusterer.init_args.affinity=knn",
    ],
)
def test_has_ablations_run(small, tmp_path, switch):
    summary = fit(
        "synthetic_copl.yaml",
        small,
        tmp_path / "run",
        switch,
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=2",
    )
    assert len(summary["iterations"]) == 2


@pytest.mark.parametrize("config", ["thumos_copl.yaml", "anet_copl.yaml"])
def test_copl_configs_resolve(config, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(CONFIGS / config), "--print_config"])
    assert info.value.code == 0
    printed = capsys.readouterr().out
    assert "HASPooler" in printed and "IOCNetModule" in printed


@pytest.mark.parametrize("config,preset", [("thumos_copl.yaml", "thumos"), ("anet_copl.yaml", "anet")])
def test_copl_paper_configs_train_on_real_layout_data(config, preset, tmp_path):
    shape = dataclasses.replace(
        PRESETS[preset], num_train=4, num_test=2, min_length=60, max_length=90, length_median=70.0
    )
    data = write_synthetic_dataset(shape, tmp_path / "data", seed=0)
    summary = fit(
        config,
        data,
        tmp_path / "run",
        "--data.init_args.batch_size=2",
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=1",
        "--trainer.limit_train_batches=1",
        "--trainer.accelerator=cpu",
    )
    assert len(summary["iterations"]) == 2

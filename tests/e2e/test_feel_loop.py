"""FEEL end to end through `utal fit` on synthetic data: the outer loop, summary.json, resume."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from tests.helpers.fit import baseline, fit
from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.data.synthetic import PRESETS, write_synthetic_dataset


@pytest.fixture(scope="module")
def feel_run(small, tmp_path_factory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("feel")
    return fit("synthetic_feel.yaml", small, root), root


def test_feel_learns_its_attention_and_selects_reliable_videos(feel_run):
    summary, root = feel_run
    iterations = summary["iterations"]
    assert [h["iteration"] for h in iterations] == list(range(1, len(iterations) + 1)) and len(iterations) >= 3
    first, last = iterations[0], iterations[-1]
    # the learned attention finds the annotated actions better than the label-free signal iteration 1 pools by
    assert last["attention_auc"] > last["label_free_auc"] + 0.01, [h["attention_auc"] for h in iterations]
    assert first["attention_auc"] == pytest.approx(first["label_free_auc"], abs=1e-6)
    # early iterations select videos whose pseudolabels are more accurate than the whole set's: P holds at
    # most 60% of the whole set's error rate (iteration 1's label-free clusters are already ~95% right)
    for h in iterations[:3]:
        assert 1 - h["accuracy_selected"] < 0.6 * (1 - h["accuracy"]), h
    # the selected fraction grows to everything (IIS); adaptive epochs: E_max = 100 epochs over P_i,
    # in batches of 16, i.e. the batches follow |P_i|
    fractions = [h["selected_fraction"] for h in iterations]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [h["epochs"] for h in iterations] == [100] * len(iterations)
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == sum(100 * -(-h["num_selected"] // 16) for h in iterations)
    for h in iterations:
        assert "0.5" in h["test"] and "average_mAP" in h["test"]
    # P is every video at the end: its ARI and purity are the whole set's
    assert (last["ari_selected"], last["purity_selected"]) == (last["ari"], last["purity"])
    # ... and are logged beside the selected set's NMI and accuracy, once per iteration
    (metrics,) = root.rglob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    for key in ("nmi_selected", "accuracy_selected", "ari_selected", "purity_selected"):
        logged = [float(r[f"cluster/{key}"]) for r in rows if r.get(f"cluster/{key}")]
        assert logged == pytest.approx([h[key] for h in iterations]), key
    assert summary["final"]["iteration"] == last["iteration"]
    assert (root / "checkpoints" / "last.ckpt").is_file()


def test_feel_beats_the_label_free_baselines(feel_run, small, tmp_path):
    summary, _ = feel_run
    strong = baseline(small, tmp_path / "strong", "synthetic_feel.yaml")
    mean = baseline(small, tmp_path / "mean", "synthetic_feel.yaml", "--pooling", "mean")
    final = summary["final"]["test"]
    assert final["0.5"] > strong["0.5"] + 0.05 and final["average_mAP"] > strong["average_mAP"] + 0.05
    assert final["0.5"] > mean["0.5"] + 0.3


def test_fixed_batch_budget_without_adaptive_epochs(small, tmp_path):
    summary = fit(
        "synthetic_feel.yaml",
        small,
        tmp_path / "run",
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=2",
        "--loop.adaptive_epochs=false",
        "--loop.test_iterations=none",
    )
    iterations = summary["iterations"]
    assert iterations[0]["num_selected"] < 120 == iterations[-1]["num_selected"]
    # every iteration gets the baseline's 2 epochs x ceil(120 / 16) = 16 batches of 16, whatever |P_i|
    for h in iterations:
        batches_per_epoch = -(-h["num_selected"] // 16)
        assert h["epochs"] == -(-16 // batches_per_epoch), h
    assert iterations[0]["epochs"] > 2 == iterations[-1]["epochs"]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == sum(h["epochs"] * -(-h["num_selected"] // 16) for h in iterations)


def test_checkpoint_holds_the_loop_state(feel_run):
    _, root = feel_run
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["UTALDataModule"]
    loop = [v for k, v in checkpoint["callbacks"].items() if k.startswith("PseudoLabelRefresh")]
    assert loop and state["iteration"] == len(loop[0]["history"]) == loop[0]["history"][-1]["iteration"]
    assert sum(state["epoch_plan"]) == checkpoint["epoch"] + 1
    assert state["labels"].shape == state["selected"].shape and state["labels"].min() >= 0
    assert len(loop[0]["rng"]) == 1  # one process: one set of RNG states
    assert set(loop[0]["rng"][0]) == {"torch", "cuda", "numpy", "python"}


def test_resume_at_iteration_boundary_gives_the_same_run(small, tmp_path):
    short = ["--loop.max_iterations=3", "--loop.epochs_per_iteration=6"]
    every_epoch = ["--checkpoint.save_top_k=-1", "--checkpoint.every_n_epochs=1"]
    full = fit("synthetic_feel.yaml", small, tmp_path / "full", *short, *every_epoch)
    boundary = full["iterations"][0]["epochs"] - 1  # the last epoch of iteration 1
    (ckpt,) = (tmp_path / "full" / "checkpoints").glob(f"epoch={boundary}-*.ckpt")
    resumed = fit("synthetic_feel.yaml", small, tmp_path / "resumed", *short, "--ckpt_path", str(ckpt))

    def strip(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in h.items() if not k.endswith("_seconds")} for h in history]

    assert strip(resumed["iterations"]) == strip(full["iterations"])
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)["UTALDataModule"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["UTALDataModule"]
    assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["selected"], b["selected"])


@pytest.mark.parametrize("config", ["thumos_feel.yaml", "anet_feel.yaml", "synthetic_feel.yaml"])
def test_configs_resolve(config, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(CONFIGS / config), "--print_config"])
    assert info.value.code == 0
    printed = capsys.readouterr().out
    assert "CCIRefiner" in printed and "CoLAModule" in printed


@pytest.mark.parametrize("config,preset", [("thumos_feel.yaml", "thumos"), ("anet_feel.yaml", "anet")])
def test_paper_configs_train_on_real_layout_data(config, preset, tmp_path):
    """The THUMOS / ActivityNet configs on full-width (2048-d) data in their subset naming, scaled down."""
    shape = dataclasses.replace(
        PRESETS[preset], num_train=4, num_test=2, min_length=60, max_length=90, length_median=70.0
    )
    data = write_synthetic_dataset(shape, tmp_path / "data", seed=0)
    summary = fit(
        config,
        data,
        tmp_path / "run",
        "--data.init_args.batch_size=2",
        "--loop.max_iterations=1",
        "--loop.epochs_per_iteration=1",
        "--trainer.limit_train_batches=1",
        "--trainer.accelerator=cpu",
    )
    (only,) = summary["iterations"]
    assert only["epochs"] >= 1 and "test" in only


def test_stale_labels_are_refused(small, tmp_path):
    short = ["--loop.max_iterations=2", "--loop.epochs_per_iteration=4", "--loop.test_iterations=none"]
    fit("synthetic_feel.yaml", small, tmp_path / "run", *short)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    # pretend the labels belong to an iteration that ended before this checkpoint's epoch
    checkpoint["UTALDataModule"]["epoch_plan"] = [1]
    checkpoint["UTALDataModule"]["iteration"] = 1
    torch.save(checkpoint, tmp_path / "stale.ckpt")
    with pytest.raises(RuntimeError, match="stale pseudolabels"):
        fit("synthetic_feel.yaml", small, tmp_path / "resumed", *short, "--ckpt_path", str(tmp_path / "stale.ckpt"))


def test_test_and_predict_from_checkpoint(feel_run, small, tmp_path):
    summary, root = feel_run
    common = [
        "--config",
        str(CONFIGS / "synthetic_feel.yaml"),
        "--data.init_args.root",
        str(small),
        "--trainer.enable_progress_bar=false",
        "--ckpt_path",
        str(root / "checkpoints" / "last.ckpt"),
    ]
    main(["test", *common, "--trainer.default_root_dir", str(tmp_path / "test")])
    tested = json.loads((tmp_path / "test" / "summary.json").read_text())
    # the restored model and labels reproduce the last iteration's logged test mAP
    assert tested["final"]["test"]["0.5"] == pytest.approx(summary["iterations"][-1]["test"]["0.5"], abs=1e-9)
    assert set(tested["final"]["test"]["per_class"]) <= {f"class_{k:02d}" for k in range(5)}
    main(["predict", *common, "--trainer.default_root_dir", str(tmp_path / "predict")])
    results = json.loads((tmp_path / "predict" / "detections.json").read_text())["results"]
    assert list(results) == (small / "split_test.txt").read_text().split()
    assert all({"segment", "label", "score"} <= set(d) for ds in results.values() for d in ds)
    assert sum(len(ds) for ds in results.values()) > 0


def test_ablation_fragment_merges(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / "thumos_feel.yaml"),
                "--config",
                str(CONFIGS / "ablations" / "cola_utal.yaml"),
                "--print_config",
            ]
        )
    printed = capsys.readouterr().out
    loop = printed[printed.index("\nloop:") : printed.index("\n  max_iterations:")]
    assert "refiner: null" in loop and "utal_lightning.pseudo.selectors.SelectAll" in loop
    assert "adaptive_epochs: false" in printed
    # the rest of the pseudolabeler's parts survive the merge
    assert (
        "utal_lightning.pseudo.poolers.AttentionPooler" in loop
        and "utal_lightning.pseudo.poolers.DeviationPooler" in loop
    )


AFTER_FIXED_POOLING = ("pool_as_read.yaml", "no_background_subtraction.yaml")


def _bases_of(fragment: str) -> list[str]:
    """The method configs an ablation fragment is written for (its name says; the rest go with every one)."""
    if "copl_thumos" in fragment:
        return ["thumos_copl.yaml"]
    if "feel_thumos" in fragment:
        return ["thumos_feel.yaml"]
    if "copl_anet" in fragment:
        return ["anet_copl.yaml"]
    if fragment.endswith("_feel.yaml") or fragment in ("cola_utal.yaml",):
        return ["thumos_feel.yaml", "anet_feel.yaml"]
    if fragment.startswith("copl"):
        return ["thumos_copl.yaml", "anet_copl.yaml"]
    if fragment in AFTER_FIXED_POOLING:  # FEEL THUMOS chooses its pooling: these change one pooler's init_args
        return [
            "thumos_feel.yaml+fixed_pooling_feel_thumos.yaml",
            "thumos_copl.yaml",
            "anet_feel.yaml",
            "anet_copl.yaml",
        ]
    return ["thumos_feel.yaml", "thumos_copl.yaml", "anet_feel.yaml", "anet_copl.yaml"]


@pytest.mark.parametrize(
    "fragment, base",
    [(f.name, b) for f in sorted((CONFIGS / "ablations").glob("*.yaml")) for b in _bases_of(f.name)],
)
def test_every_ablation_fragment_merges_with_its_method_configs(fragment, base, capsys):
    config, *before = base.split("+")
    merged = [str(CONFIGS / config), *(str(CONFIGS / "ablations" / b) for b in before)]
    with pytest.raises(SystemExit) as info:
        main(
            [
                "fit",
                *(f"--config={c}" for c in merged),
                "--config",
                str(CONFIGS / "ablations" / fragment),
                "--print_config",
            ]
        )
    assert info.value.code == 0, capsys.readouterr().err[-2000:]

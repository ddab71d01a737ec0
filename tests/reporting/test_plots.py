"""Pictures of a run: every figure builds from small inputs, PCA is deterministic, and log_figures /
log_table write PNG / CSV files with or without W&B (offline)."""

import csv
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.helpers.paths import REPO
from utal_lightning.reporting import plots

HISTORY = [
    {
        "iteration": 1,
        "nmi": 0.4,
        "accuracy": 0.5,
        "accuracy_selected": 0.8,
        "accuracy_P": 0.85,
        "accuracy_U": 0.4,
        "selected_fraction": 0.3,
        "num_selected": 6,
        "epochs": 4,
    },
    {
        "iteration": 2,
        "nmi": 0.6,
        "accuracy": 0.7,
        "accuracy_selected": 0.9,
        "accuracy_P": 0.9,
        "accuracy_U": None,
        "selected_fraction": 1.0,
        "num_selected": 20,
        "epochs": 4,
    },
]


class StubTrainer:
    """What log_figures / log_table read from a Trainer."""

    def __init__(self, root, loggers=(), is_global_zero=True):
        self.default_root_dir = str(root)
        self.loggers = list(loggers)
        self.is_global_zero = is_global_zero


def _inputs(seed=0, n=40, k=4, d=6):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, k, n)
    classes = clusters.copy()
    classes[:5] = -1
    classes[5:10] = rng.integers(0, k, 5)
    features = rng.normal(size=(n, d)) + clusters[:, None]
    return features, clusters, classes


def _videos():
    seconds = np.arange(30) * 0.64
    attention = np.clip(np.sin(seconds / 3.0) ** 2, 0.0, 1.0)
    return [
        {
            "video_id": "video_test_0001",
            "seconds": seconds,
            "attention": attention,
            "cas": np.stack([attention, 1.5 * (1.0 - attention)], 1),
            "cas_names": ["Jump", "Run"],
            "segments": np.array([[1.0, 4.0], [10.0, 12.5]]),
            "labels": ["Jump", "Run"],
        },
        {
            "video_id": "video_test_0002",
            "seconds": seconds,
            "attention": 1.0 - attention,
            "segments": np.zeros((0, 2)),
            "labels": [],
        },
    ]


def _all_figures():
    features, clusters, classes = _inputs()
    return {
        "outer/selection_curve": plots.selection_curve(HISTORY),
        "outer/confusion": plots.confusion_matrix_figure(clusters, classes, ["a", "b", "c", "d"], 4),
        "outer/embedding": plots.embedding_figure(features, clusters, clusters == classes, clusters % 2 == 0),
        "test/attention": plots.attention_figure(_videos()),
    }


def test_every_figure_builds_and_saves_a_png(tmp_path):
    figures = _all_figures()
    figures["outer/selection_curve_empty"] = plots.selection_curve([])
    features, clusters, _ = _inputs()
    figures["outer/embedding_plain"] = plots.embedding_figure(features, clusters, None, None)
    for key, fig in figures.items():
        assert isinstance(fig, Figure), key
        path = tmp_path / f"{key.replace('/', '_')}.png"
        fig.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000, key


def test_builders_reject_inconsistent_inputs():
    features, clusters, classes = _inputs()
    with pytest.raises(ValueError):
        plots.confusion_matrix_figure(clusters, classes[:-1], ["a", "b", "c", "d"], 4)
    with pytest.raises(ValueError):
        plots.confusion_matrix_figure(clusters, classes, ["a", "b"], 4)  # class ids beyond the names
    with pytest.raises(ValueError):
        plots.embedding_figure(features, clusters[:-1], None, None)


def test_confusion_counts_skip_unknown_classes():
    fig = plots.confusion_matrix_figure(np.array([0, 0, 1, 1]), np.array([0, -1, 1, 1]), ["x", "y"], 2)
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(image), [[1, 0], [0, 2]])


def test_pca_is_deterministic_and_matches_the_principal_axes():
    features, _, _ = _inputs(seed=1, n=50, d=8)
    a, ratio_a = plots.pca_2d(features)
    b, ratio_b = plots.pca_2d(features.copy())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ratio_a, ratio_b)
    # the same projection up to the sign convention as the covariance eigenvectors
    centred = features - features.mean(0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    reference = centred @ vectors[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(a), np.abs(reference), atol=1e-8)
    assert ratio_a[0] >= ratio_a[1] > 0
    # degenerate inputs still give (N, 2)
    assert plots.pca_2d(np.ones((1, 3)))[0].shape == (1, 2)
    assert plots.pca_2d(np.arange(5.0)[:, None])[0].shape == (5, 2)


def test_per_class_ap_rows_orders_tious_numerically():
    columns, rows = plots.per_class_ap_rows(
        {"Jump": {"0.5": 0.2, "0.1": 0.6, "0.3": 0.4}, "Run": {"0.1": 0.1, "0.3": 0.0, "0.5": 0.0}}
    )
    assert columns == ["class", "AP@0.1", "AP@0.3", "AP@0.5", "AP avg"]
    assert rows[0] == ["Jump", 0.6, 0.4, 0.2, pytest.approx(0.4)]
    assert rows[1][0] == "Run" and rows[1][-1] == pytest.approx(1 / 30, abs=1e-6)


def test_log_figures_and_table_without_wandb(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    trainer = StubTrainer(tmp_path, [CSVLogger(tmp_path / "logs")])
    figures = _all_figures()
    paths = plots.log_figures(trainer, figures, step=12)
    assert sorted(p.name for p in paths) == [
        "outer_confusion_12.png",
        "outer_embedding_12.png",
        "outer_selection_curve_12.png",
        "test_attention_12.png",
    ]
    for path in paths:
        assert path.parent == tmp_path / "figures" and path.stat().st_size > 1000
    assert not list((tmp_path / "figures").glob(".*"))  # no temporary files left behind
    assert all(not fig.axes for fig in figures.values())  # closed (cleared)

    columns, rows = plots.per_class_ap_rows({"Jump": {"0.5": 0.25}, "Run": {"0.5": 0.5}})
    csv_path = plots.log_table(trainer, "test/per_class_ap", columns, rows, step=12)
    assert csv_path == tmp_path / "figures" / "test_per_class_ap_12.csv"
    with csv_path.open() as f:
        assert list(csv.reader(f)) == [["class", "AP@0.5", "AP avg"], ["Jump", "0.25", "0.25"], ["Run", "0.5", "0.5"]]

    # other ranks write nothing
    other = StubTrainer(tmp_path / "rank1", [], is_global_zero=False)
    assert plots.log_figures(other, {"outer/selection_curve": plots.selection_curve(HISTORY)}, step=1) == []
    assert plots.log_table(other, "t", ["a"], [[1]]) is None
    assert not (tmp_path / "rank1").exists()


def test_plots_module_has_no_lightning_import_at_module_level():
    import importlib
    import subprocess

    code = (
        "import sys, utal_lightning.reporting.plots; "
        "print('lightning' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    importlib.import_module("utal_lightning.reporting.plots")


def test_log_figures_to_an_offline_wandb_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path / "wandb_dir"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    save_dir = tmp_path / "wb"
    logger = WandbLogger(offline=True, save_dir=str(save_dir), project="utal-test")
    trainer = StubTrainer(tmp_path / "run", [logger, CSVLogger(tmp_path / "run")])
    try:
        paths = plots.log_figures(
            trainer,
            {
                "outer/selection_curve": plots.selection_curve(HISTORY),
                "test/attention": plots.attention_figure(_videos()),
            },
            step=3,
        )
        columns, rows = plots.per_class_ap_rows({"Jump": {"0.5": 0.25}})
        plots.log_table(trainer, "test/per_class_ap", columns, rows, step=3)
    finally:
        wandb.finish()
    assert sorted(p.name for p in paths) == ["outer_selection_curve_3.png", "test_attention_3.png"]
    runs = list((save_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # keys with "/" become sub-folders of media/images
    images = sorted((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == 2 and all(p.stat().st_size > 1000 for p in images)
    assert list((runs[0] / "files" / "media" / "table").rglob("*.table.json"))
    assert (tmp_path / "run" / "figures" / "test_per_class_ap_3.csv").is_file()


def test_wandb_fragment_logs_into_the_run_directory(tmp_path, monkeypatch):
    """With configs/wandb.yaml (save_dir: null), an offline W&B run, its metrics, the config and the
    per-iteration pictures land in the run directory."""
    import json

    from utal_lightning.cli import main
    from utal_lightning.data.synthetic import write_synthetic_dataset

    monkeypatch.setenv("WANDB_MODE", "offline")
    root = REPO
    data = write_synthetic_dataset("tiny", tmp_path / "data", seed=0)
    run = tmp_path / "run"
    main(
        [
            "fit",
            "--config",
            str(root / "configs" / "synthetic_copl.yaml"),
            "--config",
            str(root / "configs" / "wandb.yaml"),
            "--data.init_args.root",
            str(data),
            "--trainer.default_root_dir",
            str(run),
            "--trainer.enable_progress_bar=false",
            "--loop.max_iterations=2",
            "--loop.epochs_per_iteration=1",
        ]
    )
    import wandb

    # What the end of the `utal` process does (W&B's atexit hook): finish the run and wait until the W&B service has
    # written it. finish() alone returned before the record was written once under pytest-xdist.
    wandb.teardown()
    (offline,) = list((run / "wandb").glob("offline-run-*"))
    (record,) = list(offline.glob("*.wandb"))
    written = record.read_bytes()
    assert b"HASPooler" in written  # the full resolved config
    assert b"cluster/nmi" in written and b"test/mAP@0.5" in written  # the metrics
    images = list((offline / "files" / "media" / "images").rglob("*.png"))
    assert images and all(p.stat().st_size > 0 for p in images)
    tables = list((offline / "files" / "media" / "table").rglob("*.json"))
    assert tables and all(p.stat().st_size > 0 for p in tables)  # the per-class AP table of each iteration
    pngs = list((run / "figures").glob("*.png"))
    assert {p.name.rsplit("_", 1)[0] for p in pngs} >= {
        "outer_selection_curve",
        "outer_confusion",
        "outer_embedding",
        "outer_attention",
    }
    assert (run / "config.yaml").is_file()  # the resolved config, next to the W&B files
    assert json.loads((run / "summary.json").read_text())["iterations"]


def test_progress_figure_draws_nmi_selection_and_map_per_iteration():
    history = [dict(HISTORY[0], test={"0.5": 0.2, "average_mAP": 0.15}), dict(HISTORY[1])]  # iteration 2 not tested
    history[0].update(attention_auc=0.7, label_free_auc=0.9)
    history[1].update(attention_auc=0.95, label_free_auc=0.9)
    fig = plots.progress_figure(history)
    (ax,) = fig.axes
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert list(lines) == [
        "NMI",
        "accuracy of P",
        "accuracy of U",
        "|P| / N",
        "attention AUC",
        "label-free AUC",
        "test mAP@0.5",
        "test mAP avg",
    ]
    assert np.allclose(lines["NMI"], [0.4, 0.6]) and np.allclose(lines["|P| / N"], [0.3, 1.0])
    assert np.allclose(lines["attention AUC"], [0.7, 0.95]) and np.allclose(lines["label-free AUC"], [0.9, 0.9])
    assert lines["accuracy of U"][0] == 0.4 and np.isnan(lines["accuracy of U"][1])  # U empty at iteration 2
    assert lines["test mAP@0.5"][0] == 0.2 and np.isnan(lines["test mAP@0.5"][1])
    # no test and no diagnostics at all: none of their lines
    labels = [line.get_label() for line in plots.progress_figure(HISTORY).axes[0].get_lines()]
    assert labels == ["NMI", "accuracy of P", "accuracy of U", "|P| / N"]


def test_attention_figure_draws_the_top_detections():
    videos = _videos()
    videos[0]["detections"] = [(1.0, 4.5, 0.9, "Jump"), (9.0, 12.0, 0.5, "Run"), (2.0, 3.0, 0.1, "Jump")]
    fig = plots.attention_figure(videos, max_detections=2)
    bars = [
        line
        for line in fig.axes[0].get_lines()
        if line.get_xdata().size == 2
        and line.get_ydata()[0] == line.get_ydata()[1]
        and line.get_ydata()[0] > 1.0 + 1e-9
        and line.get_label() != "attention"
        and not line.get_label().startswith("CAS")
    ]
    assert [tuple(b.get_xdata()) for b in bars] == [(1.0, 4.5), (9.0, 12.0)]  # the two best, best first
    assert bars[0].get_linewidth() > bars[1].get_linewidth()  # thicker for a higher score
    assert not [line for line in fig.axes[1].get_lines() if line.get_xdata().size == 2]  # a video without detections


def test_iteration_level_keys_go_on_the_outer_iteration_axis(tmp_path):
    """W&B (issue 12, item 5): figures and tables carry outer/iteration, not a global step; the run is told
    which keys use that axis."""
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    class Recorder:
        def __init__(self):
            self.defined, self.logged = [], []

        def define_metric(self, name, step_metric=None):
            self.defined.append((name, step_metric))

        def log(self, record, step=None):
            self.logged.append((dict(record), step))

    class RecordingWandb(WandbLogger):
        def __init__(self, recorder):  # no W&B run: what the helpers call is recorded
            self._recorder = recorder

        @property
        def experiment(self):
            return self._recorder

    recorder = Recorder()
    trainer = StubTrainer(tmp_path / "run", [RecordingWandb(recorder)])
    plots.define_iteration_axis(trainer)
    assert ("outer/iteration", None) in recorder.defined
    for pattern in ("cluster/*", "select/*", "test/*", "outer/*"):
        assert (pattern, "outer/iteration") in recorder.defined
    assert not [name for name, _ in recorder.defined if name.startswith("train/")]  # steps keep the global step
    plots.log_figures(trainer, {"outer/progress": plots.progress_figure(HISTORY)}, step=2)
    columns, rows = plots.per_class_ap_rows({"Jump": {"0.5": 0.25}})
    plots.log_table(trainer, "test/per_class_AP", columns, rows, step=2)
    (figure, figure_step), (table, table_step) = recorder.logged
    assert figure["outer/iteration"] == 2 and "outer/progress" in figure and figure_step is None
    assert table["outer/iteration"] == 2 and "test/per_class_AP" in table and table_step is None
    assert not any("trainer/global_step" in record for record, _ in recorder.logged)

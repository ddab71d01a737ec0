"""The ``utal`` command.

Training commands (LightningCLI, configs in configs/):
  utal fit --config configs/synthetic_feel.yaml       train (the outer loop runs inside one fit)
  utal test | predict --config ... --ckpt_path CKPT    evaluate / write detections JSON

Tool commands (no Lightning import, so they start fast):
  utal synth     --preset NAME --out DIR --seed S      write a synthetic benchmark (docs/method.md sec. 6)
  utal check     --root DIR                            validate a dataset (docs/method.md sec. 1.1) and summarize it
  utal evaluate  --gt GT --pred PRED --subset S --tiou T [T ...]   ActivityNet-protocol mAP (docs/method.md sec. 5)
  utal baseline  --root DIR --out PRED [--config C]    the label-free detector the methods must beat
  utal report    RUN_DIR|GLOB ... --out DIR            mean +- std over seeds per iteration (CSV, Markdown, plot)

Bad input exits with status 2 and one line ``error: <file or video>: <problem>`` on stderr.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from utal_lightning.errors import DatasetError


def _add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, type=Path, help="dataset root (layout: docs/method.md sec. 1.1)")
    parser.add_argument(
        "--train-split", default="train", help="name of split_<name>.txt and features/<name>/ for training"
    )
    parser.add_argument(
        "--test-split", default="test", help="name of split_<name>.txt and features/<name>/ for testing"
    )
    parser.add_argument(
        "--train-subset",
        nargs="+",
        default=None,
        metavar="NAME",
        help='gt.json subsets of the training videos, case-insensitive (THUMOS "validation train", '
        'ActivityNet "training")',
    )
    parser.add_argument(
        "--test-subset",
        nargs="+",
        default=None,
        metavar="NAME",
        help='gt.json subsets of the test videos, case-insensitive (THUMOS "test", ActivityNet "validation val")',
    )
    parser.add_argument(
        "--ignore-label",
        action="append",
        default=[],
        metavar="LABEL",
        help='drop annotations with this label (e.g. THUMOS "Ambiguous"); repeatable',
    )
    parser.add_argument(
        "--missing-features",
        choices=["error", "skip"],
        default="error",
        help="a listed video without feature files: an error (default), or skipped and listed",
    )
    from utal_lightning.data.layouts import SHIPPED

    parser.add_argument(
        "--layout",
        choices=["auto", *SHIPPED],
        default="auto",
        help="on-disk layout (default: found from the files: gt.json -> cola, annotations/*.json -> actionformer)",
    )
    # Each shipped layout's own options, as its constructor declares them (the one place they are written);
    # an option left out keeps the layout's default.
    options: dict[str, tuple[type, list[str]]] = {}
    for name, layout in SHIPPED.items():
        for option, (_, annotation, text) in layout_options(layout).items():
            kind = float if "float" in annotation else int if "int" in annotation else str
            options.setdefault(option, (kind, []))[1].append(f"{name}: {text.replace('``', '').rstrip('.')}")
    for option, (kind, texts) in options.items():
        parser.add_argument("--" + option.replace("_", "-"), type=kind, default=None, help="; ".join(texts))


def layout_options(layout: type) -> dict[str, tuple[object, str, str]]:
    """A layout class's constructor options: name -> (default, annotation, the docstring's line on it)."""
    import inspect

    doc = inspect.getdoc(layout) or ""
    described = dict(re.findall(r"^\s*(\w+): (.+?)(?=\n\s*\w+: |\Z)", doc.split("Args:")[-1], re.M | re.S))
    return {
        p.name: (p.default, str(p.annotation), " ".join(described.get(p.name, "").split()))
        for p in inspect.signature(layout.__init__).parameters.values()
        if p.name != "self"
    }


def _layout(args: argparse.Namespace):
    from utal_lightning.data.layout import DatasetLayout
    from utal_lightning.data.layouts import SHIPPED, find_layout

    if args.layout == "auto":
        layout = find_layout(args.root, args.annotation_file) if args.root.is_dir() else None
    else:
        layout = SHIPPED[args.layout]
    files = None
    if layout is not None:
        options = {name: getattr(args, name) for name in layout_options(layout)}
        given = {name: value for name, value in options.items() if value is not None}
        files = layout(**given)
    return DatasetLayout(
        root=args.root,
        train_split=args.train_split,
        test_split=args.test_split,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        ignored_labels=tuple(args.ignore_label),
        missing_features=args.missing_features,
        files=files,
    )


def _tious(args: argparse.Namespace) -> np.ndarray:
    from utal_lightning.eval.detection_map import ANET_TIOUS, THUMOS_TIOUS

    if args.tiou:
        bad = [t for t in args.tiou if not 0.0 < t <= 1.0]  # NaN fails the test too
        if bad:
            raise DatasetError(f"--tiou {bad[0]:g}: a tIoU threshold must be in (0, 1]")
        return np.asarray(args.tiou, dtype=np.float64)
    if args.preset:
        return {"thumos": THUMOS_TIOUS, "anet": ANET_TIOUS}[args.preset]
    raise DatasetError("give the tIoU thresholds with --tiou T [T ...] or --preset thumos|anet")


def cmd_synth(args: argparse.Namespace) -> int:
    import tempfile

    from utal_lightning.data.synthetic import override_config, write_actionformer_copy, write_synthetic_dataset

    config = override_config(args.preset, args.set)
    if args.out is None and not args.describe:
        raise DatasetError("utal synth: give --out DIR (or --describe to print the preset's label-free cues only)")
    if args.describe and args.out is None:
        with tempfile.TemporaryDirectory(prefix="utal-synth-") as scratch:
            return _describe(config, args.preset, write_synthetic_dataset(config, Path(scratch) / "data", args.seed))
    if args.layout == "actionformer":
        out = Path(args.out).expanduser().absolute()
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.cola-", dir=out.parent) as cola:
            write_synthetic_dataset(config, Path(cola) / "data", seed=args.seed)
            out = write_actionformer_copy(Path(cola) / "data", out, overwrite=args.overwrite)
    else:
        out = write_synthetic_dataset(config, args.out, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote synthetic preset {args.preset!r} (seed {args.seed}, {args.layout} layout) to {out}")
    return _describe(config, args.preset, out) if args.describe else 0


def _describe(config, preset: str, root: Path) -> int:
    """Print a written dataset's label-free cues (:func:`utal_lightning.baseline.label_free_cues`) as one JSON
    object, with the shipped baseline's pooling settings of the dataset's COPL config."""
    from utal_lightning.baseline import baseline_settings, label_free_cues
    from utal_lightning.data.layout import DatasetLayout
    from utal_lightning.utils import read_configs

    dataset = "anet" if config.id_style == "anet" else "thumos"
    settings = baseline_settings(read_configs([f"{dataset}_copl"]))
    cues = label_free_cues(
        DatasetLayout(root),
        num_segments=int(settings.get("num_segments", 750)),
        baseline_fraction=settings.get("fraction"),
        subtract_background=bool(settings.get("subtract_background", True)),
    )
    print(json.dumps({"preset": preset, **cues}))
    return 0


# The shipped configs whose subset names `utal check` tries when none are given (one per dataset, and discovery's
# "unlabeled": what `utal extract` writes).
SUBSET_CONFIGS = ("thumos_copl", "anet_copl", "discover")


def with_shipped_subsets(layout):
    """``layout`` with the train / test subsets (and ignored labels, when none are given) of the first shipped
    config whose subsets both name videos of the annotation file, and that config's name; ``layout`` and None
    when every split has a split file or a subset already. Two matching configs: a one-line error."""
    from dataclasses import replace

    from utal_lightning.data.layout import quoted, read_annotations, resolve_layout, subset_matches, subset_names
    from utal_lightning.utils import read_configs

    layout = resolve_layout(layout)
    needed = [s for s in (layout.train_split, layout.test_split) if layout.subset_of(s) is None]
    listed = [layout.split_path(s) for s in needed]
    if all(path is not None and path.is_file() for path in listed) or not layout.gt_path.is_file():
        return layout, None
    present = {a.subset for a in read_annotations(layout.gt_path, layout.ignored_labels).values()}
    matches = []
    for name in SUBSET_CONFIGS:
        data = read_configs([name])["data"]["init_args"]
        train, test = subset_names(data["train_subset"]), subset_names(data["test_subset"])
        if all(any(subset_matches(p, names) for p in present) for names in (train, test)):
            ignored = layout.ignored_labels or tuple(data.get("ignored_labels") or ())
            matches.append((name, replace(layout, train_subset=train, test_subset=test, ignored_labels=ignored)))
    if len(matches) > 1:
        raise DatasetError(
            f"{layout.gt_path}: its subsets ({quoted(sorted(map(str, present)))}) fit the configs "
            f"{quoted(n for n, _ in matches)}; choose with --train-subset and --test-subset"
        )
    return (matches[0][1], matches[0][0]) if matches else (layout, None)


def cmd_check(args: argparse.Namespace) -> int:
    from utal_lightning.data.summary import check_dataset, format_summary

    layout, config = with_shipped_subsets(_layout(args))
    if config is not None:
        from utal_lightning.data.layout import quoted

        print(
            f"subsets of {config}: train {quoted(layout.train_subset)}, test {quoted(layout.test_subset)}"
            + (f", ignoring {quoted(layout.ignored_labels)}" if layout.ignored_labels else "")
            + " (--train-subset / --test-subset to choose others)",
            file=sys.stderr,
        )
    summary = check_dataset(layout, require_test_annotations=not args.no_test_annotations)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from utal_lightning.eval.detection_map import detection_map
    from utal_lightning.eval.io import read_detections, read_ground_truth
    from utal_lightning.utils import atomic_write_json

    tious = _tious(args)
    gt = read_ground_truth(args.gt, args.subset, args.ignore_label)
    pred = read_detections(args.pred)
    result = detection_map(
        gt.videos, gt.segments, gt.labels, pred.videos, pred.segments, pred.labels, pred.scores, tious
    )
    report: dict[str, object] = result.as_dict()
    if args.per_class:
        report["per_class"] = result.per_class()
    if args.out:
        atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from utal_lightning.baseline import baseline_settings, run_baseline
    from utal_lightning.utils import read_configs

    settings = baseline_settings(read_configs(args.config)) if args.config else {}
    for name in ("num_segments", "fraction", "subtract_background"):
        if getattr(args, name) is not None:  # a flag wins over the config
            settings[name] = getattr(args, name)
            if name != "num_segments":
                settings.pop("choices", None)  # and over the config's choice between poolings
                settings.pop("views", None)
    report = run_baseline(
        _layout(args),
        args.out,
        pooling=args.pooling,
        seed=args.seed,
        num_clusters=args.num_clusters,
        localization=args.localization,
        **settings,
    )
    print(json.dumps(report, indent=2))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from utal_lightning.reporting.aggregate import to_markdown, write_report

    rows, groups = write_report(args.runs, args.out)
    print(to_markdown(rows), end="")
    runs = sum(len(members) for members in groups.values())
    print(f"{runs} runs in {len(groups)} groups; wrote {args.out}/report.csv, report.md and report.png")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    import torch

    from utal_lightning.video.backbones import build_backbone
    from utal_lightning.video.extract import extract_folder

    try:
        backbone = build_backbone(args.backbone, args.weights)
    except (ImportError, ValueError, TypeError) as error:
        raise DatasetError(f"--backbone {args.backbone}: {error}") from None
    if args.fetch_weights:
        print(f"{args.backbone}: weights in torchvision's cache ({torch.hub.get_dir()}/checkpoints)")
        return 0
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    report = extract_folder(
        Path(args.videos), Path(args.out), backbone, args.stride, args.batch_size, device, args.skip_bad,
        progress=not args.no_progress,
    )  # fmt: skip
    pace = report.clips / report.seconds if report.seconds else 0.0
    print(
        f"wrote {len(report.written)} videos ({report.clips} clips, {pace:.1f} clips/s on {device}), "
        f"{len(report.already_there)} already there, {len(report.bad)} left out; "
        f"next: utal fit --config discover --data.init_args.root {args.out} --data.init_args.num_clusters K"
    )
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from utal_lightning.view import VIEW_FILE, read_view_data, write_view

    target = Path(args.target)
    out = Path(args.out) if args.out else (target / VIEW_FILE if target.is_dir() else target.with_suffix(".html"))
    view = read_view_data(target, gt=args.gt, videos=args.videos)
    write_view(view, out, top=args.top)
    print(f"wrote {out} ({len(view.video_ids)} videos; open it in a browser)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="utal",
        description="Unsupervised temporal action localization (FEEL, COPL). "
        "Training: utal fit|validate|test|predict --config CONFIG (see utal fit --help).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="write a synthetic benchmark (layout: docs/method.md sec. 1.1)")
    synth.add_argument(
        "--preset",
        required=True,
        help="tiny | small | thumos | anet | thumos-lite | anet-lite | thumos-lite-hard | thumos-real | "
        "thumos-real-scene | thumos-real-faint | anet-real (docs/benchmarks.md)",
    )
    synth.add_argument("--out", type=Path, help="output folder (must not exist or be empty)")
    synth.add_argument(
        "--describe",
        action="store_true",
        help="print the preset's label-free cues (per-video median AUC of the distance from the mean snippet and "
        "of the snippet norm; NMI of mean, top-25%% deviation, baseline and oracle pooling); without --out the "
        "data is written to a temporary folder",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    synth.add_argument(
        "--layout",
        choices=["cola", "actionformer"],
        default="cola",
        help="write the CoLA layout (default) or the same videos in the ActionFormer layout "
        "(30 fps, stride 4, window 16)",
    )
    synth.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a preset field, e.g. --set num_train=10; repeatable",
    )
    synth.set_defaults(run=cmd_synth)

    check = commands.add_parser("check", help="validate a dataset and print a summary")
    _add_layout_arguments(check)
    check.add_argument(
        "--no-test-annotations", action="store_true", help="allow test videos without ground truth (prediction only)"
    )
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(run=cmd_check)

    evaluate = commands.add_parser("evaluate", help="mAP of ActivityNet-format detections (ActivityNet protocol)")
    evaluate.add_argument("--gt", required=True, type=Path, help="gt.json")
    evaluate.add_argument("--pred", required=True, type=Path, help='detections JSON {"results": {vid: [...]}}')
    evaluate.add_argument(
        "--subset",
        nargs="+",
        default=None,
        metavar="NAME",
        help="evaluate the gt.json videos of these subsets, case-insensitive (default: all)",
    )
    evaluate.add_argument("--tiou", type=float, nargs="+", help="tIoU thresholds")
    evaluate.add_argument(
        "--preset", choices=["thumos", "anet"], help="thresholds 0.1:0.1:0.7 (thumos) or 0.5:0.05:0.95 (anet)"
    )
    evaluate.add_argument(
        "--ignore-label", action="append", default=[], metavar="LABEL", help="drop ground truth with this label"
    )
    evaluate.add_argument("--per-class", action="store_true", help="also report the AP of every class")
    evaluate.add_argument("--out", type=Path, help="also write the report to this JSON file")
    evaluate.set_defaults(run=cmd_evaluate)

    report = commands.add_parser("report", help="mean +- std over seeds of many runs, per outer iteration")
    report.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories or globs (runs/sweep/*_seed*); a folder is searched for runs",
    )
    report.add_argument(
        "--out",
        type=Path,
        default=Path("runs/report"),
        help="folder for report.csv, report.md, report.png (default runs/report)",
    )
    report.set_defaults(run=cmd_report)

    baseline = commands.add_parser(
        "baseline", help="label-free detector (nothing trained): the floor the methods must beat; writes detections"
    )
    _add_layout_arguments(baseline)
    baseline.add_argument("--out", required=True, type=Path, help="detections JSON to write")
    baseline.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="CONFIG",
        help="a model config (path or shipped name, e.g. thumos_feel; repeatable, merged in order) whose inference "
        "(proposal sources and thresholds, NMS, class threshold), grid T and deviation_fraction the baseline "
        "uses; default: CoLA's THUMOS'14 inference, T = 750, fraction 0.1",
    )
    baseline.add_argument(
        "--pooling",
        choices=["deviation", "mean", "oracle"],
        default="deviation",
        help="deviation (default): each video pooled over its snippets farthest from the mean training snippet; "
        "mean: over all snippets; oracle: over its ground-truth action snippets (a bound, reads labels)",
    )
    baseline.add_argument(
        "--fraction", type=float, default=None, help="deviation pooling: share of each video's snippets kept"
    )
    baseline.add_argument(
        "--subtract-background",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deviation / oracle pooling: minus the mean of the video's other snippets (docs/method.md sec. 3.1.2; "
        "default: the config's subtract_background, else off)",
    )
    baseline.add_argument(
        "--num-segments", type=int, default=None, help="pooling and test grid T (default: the config's, else 750)"
    )
    baseline.add_argument(
        "--localization",
        choices=["deviation", "oracle"],
        default="deviation",
        help="localize by the distance from the mean snippet (default), or by the test videos' ground-truth action "
        "snippets (a localization bound: reads test labels)",
    )
    baseline.add_argument("--num-clusters", type=int, default=None, help="K (default: the number of classes)")
    baseline.add_argument("--seed", type=int, default=0)
    baseline.set_defaults(run=cmd_baseline)

    extract = commands.add_parser(
        "extract",
        help="features of a folder of videos (torchvision backbone) in the ActionFormer layout",
        description="Decode each video (PyAV), run a video backbone over clips of consecutive frames every --stride "
        "frames, and write ROOT/features/<id>.npy and ROOT/annotations/videos.json (every video in the subset "
        "'unlabeled', no annotations): what `utal fit --config discover` reads. Videos already written are skipped. "
        "Weights come from torchvision's cache ($TORCH_HOME/hub/checkpoints): on a node without network run "
        "`utal extract --fetch-weights --backbone NAME` once where there is one and copy that folder.",
    )
    extract.add_argument("videos", help="folder of video files (mp4, avi, mkv, webm, mov); the file name is the id")
    extract.add_argument("--out", required=True, help="dataset root to write (ActionFormer layout)")
    extract.add_argument(
        "--backbone",
        default="r2plus1d_18",
        help="torchvision video model (r2plus1d_18, r3d_18, mc3_18, s3d, mvit_v2_s, ...) or a ClipBackbone class path",
    )
    extract.add_argument("--weights", choices=("default", "none"), default="default", help="none: random weights")
    extract.add_argument("--stride", type=int, default=4, help="frames between clip starts (4: the layout's default)")
    extract.add_argument("--batch-size", type=int, default=16, help="clips per forward pass")
    extract.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    extract.add_argument("--skip-bad", action="store_true", help="leave out an undecodable video (one line) and go on")
    extract.add_argument("--no-progress", action="store_true", help="no progress bar")
    extract.add_argument("--fetch-weights", action="store_true", help="only download the backbone's weights")
    extract.set_defaults(run=cmd_extract)

    view = commands.add_parser(
        "view",
        help="one self-contained HTML page of a run's detections (timelines, classes, a player)",
        description="Timelines of the detections by class and score (the ground truth where known), the discovered "
        "classes with their most confident segments and the training videos of each pseudo-class, and a player that "
        "jumps to a clicked segment where the video files are given. No server, no network: open the file.",
    )
    view.add_argument("target", help="a run directory (its detections.json from utal predict) or a detections JSON")
    view.add_argument("--gt", default=None, help="annotation file (gt.json / ActionFormer json): durations, truth")
    view.add_argument("--videos", default=None, help="folder of the video files (<video id>.mp4|webm|mkv|avi|mov)")
    view.add_argument("--out", default=None, help="the HTML file (default: <run dir>/view.html, or beside the JSON)")
    view.add_argument("--top", type=int, default=20, help="detections drawn per video, the best first (20)")
    view.set_defaults(run=cmd_view)
    return parser


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv: Sequence[str] | None = None) -> int:
    """``utal`` (``argv`` None: the command line) or, from Python, ``utal <argv>`` in this process."""
    if argv is not None:
        return _main(argv)
    # The command line ends in os._exit once the atexit hooks (W&B's upload among them) have run: Python's own
    # teardown after them first restores every signal's default action, and a signal then would kill a finished
    # run without a word. Registered before Lightning is imported, so it runs after Lightning's hooks.
    status = [1]  # an uncaught exception: 1, as Python's

    def exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status[0])

    atexit.register(exit_now)
    try:
        status[0] = _main(None)
    except SystemExit as e:
        status[0] = e.code if isinstance(e.code, int) else int(e.code is not None)  # a message: 1, as Python's
        raise
    return status[0]


def _main(argv: Sequence[str] | None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from utal_lightning.lightning_cli import run  # imports Lightning: only for training commands

        try:
            run(None if from_command_line else argv)
        except DatasetError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        return 0
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())

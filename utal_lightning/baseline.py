"""The label-free baseline: what the learned methods must beat, with nothing trained (docs/method.md sec. 5.1).

It runs the evaluation path end to end (store -> clusters -> class mapping -> proposals -> NMS ->
ActivityNet JSON) with the inference of a dataset's model config:

- actionness of a snippet = its distance from the mean training snippet (background fills most of an
  untrimmed video, so far-from-average snippets are more often actions: :func:`deviation_actionness`);
- each video is pooled (on the same grid the methods pool on) by ``pooling``:
  "deviation" (default) over its top ``fraction`` snippets by that actionness, "mean" over all of them
  (the papers' iteration 1), or "oracle" over its ground-truth action snippets, train and test
  (an upper bound of pooling, what perfect attention would give: it reads labels, so it is a
  reference row, never a method);
- the pooled training videos are clustered with the project's seeded k-means (docs/method.md sec. 3.2) and
  mapped to classes on the *training* ground truth by the ``evaluator``'s protocol (Hungarian by default, sec. 3.5);
- a test video's class scores = softmax over negative squared distances of its pooled feature to the
  cluster centres (the evaluator's ``centroid_temperature``); its localization map = the actionness, the same
  for every class; proposals, NMS and class threshold as the evaluator's ``detection`` says
  (:class:`~utal_lightning.eval.evaluator.Evaluator`, the models' own; its ``class_scores`` and ``localization``
  are those just named whatever it says: nothing here was trained).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from utal_lightning.data.layout import DatasetIndex, DatasetLayout, read_dataset
from utal_lightning.data.store import FeatureStore
from utal_lightning.eval.actionness import mean_auc, snippet_auc
from utal_lightning.eval.clustering import clustering_scores
from utal_lightning.eval.evaluator import Evaluator
from utal_lightning.eval.io import write_detections
from utal_lightning.pseudo.cluster import kmeans, most_agreeing
from utal_lightning.pseudo.has import has_pool
from utal_lightning.pseudo.poolers import DeviationPooler
from utal_lightning.pseudo.pooling import background_subtracted_pool, deviation_actionness

BaselinePooling = Literal["deviation", "mean", "oracle"]
POOLINGS = ("deviation", "mean", "oracle")
BaselineLocalization = Literal["deviation", "oracle"]
LOCALIZATIONS = ("deviation", "oracle")


def _grid_features(store: FeatureStore, i: int, num_segments: int | None) -> tuple[Tensor, Tensor]:
    """One video on docs/method.md sec. 1.2's fixed grid (the pooling and test grid; every snippet with
    ``num_segments=None``): positions (T,), features (T, D)."""
    grid = store.test_grid(i, num_segments or int(store.lengths[i]))
    return grid, store.gather(torch.tensor([i]), grid[None])[0]


def _action_mask(index: DatasetIndex, store: FeatureStore, i: int, grid: Tensor) -> Tensor:
    """(T,) bool: which grid positions of video ``i`` lie in its annotated segments (snippet centres)."""
    annotation = index.annotations.get(store.video_ids[i])
    if annotation is None:
        return torch.zeros(len(grid), dtype=torch.bool)
    return torch.from_numpy(annotation.action_mask(store.clocks[i].seconds(grid.numpy() + 0.5)))


def _read_video(
    index: DatasetIndex, store: FeatureStore, i: int, grid_size: int | None, reference: Tensor
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Video ``i`` on its grid as the label-free baseline reads it: features (T, D), the distance from the mean
    training snippet ``reference`` (T,), its annotated-snippet mask (T,) and that distance's AUC for the mask."""
    grid, x = _grid_features(store, i, grid_size)
    actionness = deviation_actionness(x[None], reference)[0]
    action = _action_mask(index, store, i, grid)
    return x, actionness, action, float(snippet_auc(actionness[None], action[None])[0])


def _pool(
    x: Tensor,
    actionness: Tensor,
    pooling: BaselinePooling,
    fraction: float | None,
    action: Tensor | None,
    subtract_background: bool,
) -> Tensor:
    """(D,) L2-normalized pooled feature of one video (T, D)."""
    if pooling == "mean":
        return has_pool(x[None], torch.ones((1, len(x)), dtype=x.dtype))[0]
    if pooling == "deviation":  # the label-free pooler's weights, as the methods' iteration 1 takes them
        weights = DeviationPooler(fraction).weights(None, x[None], None, label_free=actionness[None])[0]
    else:
        weights = action.to(x.dtype)  # all zero (no annotated snippet): both poolings fall back to the mean
    pool = background_subtracted_pool if subtract_background else has_pool
    return pool(x[None], weights[None])[0]


def run_baseline(
    layout: DatasetLayout,
    out: str | Path,
    pooling: BaselinePooling = "deviation",
    fraction: float | None = None,
    num_segments: int = 750,
    test_grid: Literal["sampled", "all"] = "sampled",
    seed: int = 0,
    num_clusters: int | None = None,
    evaluator: Evaluator | None = None,
    subtract_background: bool = True,
    localization: BaselineLocalization = "deviation",
    choices: list[tuple[float | None, bool]] | None = None,
    views: int = 2,
) -> dict[str, object]:
    """Write the baseline's test detections to ``out``; return its training clustering scores and the
    label-free actionness's AUC on the training videos (module docstring).

    ``localization="oracle"`` localizes every test video with its ground-truth action mask instead of the
    distance (a bound for localization, as ``pooling="oracle"`` is one for pooling: it reads test labels).
    ``choices``: deviation poolings ``(fraction, subtract_background)`` to choose from on the training videos by
    cross-view agreement over ``views`` column blocks, as a first pooler ``AgreementChoicePooler`` does (docs/method.md
    sec. 3.1.3); they replace ``fraction`` and ``subtract_background``, and the report says which was kept."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if localization not in LOCALIZATIONS:
        raise ValueError(f"localization must be one of {LOCALIZATIONS}, got {localization!r}")
    evaluator = evaluator or Evaluator()
    index = read_dataset(layout)
    layout = index.layout  # resolved: "auto" -> the layout found
    train = FeatureStore.from_index(index, layout.train_split)
    test = FeatureStore.from_index(index, layout.test_split)
    k = num_clusters or index.num_classes
    reference = train.mean_snippet()

    poolings = list(choices) if choices and pooling == "deviation" else [(fraction, subtract_background)]

    def pooled_and_auc(
        store: FeatureStore, i: int, grid_size: int | None, kept: list[tuple[float | None, bool]]
    ) -> tuple[list[Tensor], float, Tensor]:
        """The video pooled each ``kept`` way, the AUC of the distance, and the map the video is localized with."""
        x, actionness, action, auc = _read_video(index, store, i, grid_size, reference)
        oracle_mask = action if pooling == "oracle" else None
        pooled = [_pool(x, actionness, pooling, f, oracle_mask, subtract) for f, subtract in kept]
        return pooled, auc, action.to(x.dtype) if localization == "oracle" else actionness

    train_rows = [pooled_and_auc(train, i, num_segments, poolings) for i in range(len(train))]
    candidates = [torch.stack([row[0][j] for row in train_rows]) for j in range(len(poolings))]
    kept, agreement = most_agreeing(candidates, k, seed, views) if len(poolings) > 1 else (0, [])
    pooled, chosen = candidates[kept], poolings[kept]
    clusters, centres = kmeans(pooled, k, seed=seed)
    targets = torch.as_tensor(index.class_targets(index.train_ids))
    mapping = evaluator.cluster_map(clusters, targets, k, index.num_classes)

    detections = []
    for i in range(len(test)):
        video, _, actionness = pooled_and_auc(test, i, num_segments if test_grid == "sampled" else None, [chosen])
        rows = evaluator.detect_maps(
            actionness[:, None].expand(-1, len(centres)),
            evaluator.centroid_scores(video[0][None], centres)[0],
            mapping[: len(centres)],
            test.seconds_per_position(i, len(actionness)),
            test.seconds_offset(i),
            actionness if evaluator.detection.actionness_thresholds else None,
        )
        detections.append(rows)
    write_detections(out, test.video_ids, detections, index.classes)
    scores = clustering_scores(clusters, targets, num_clusters=k)
    label_free_auc = mean_auc(torch.tensor([row[1] for row in train_rows]))
    return {
        "detections": str(out),
        "pooling": pooling,
        "fraction": chosen[0] if pooling == "deviation" else None,
        "subtract_background": chosen[1] and pooling != "mean",
        **(
            {"pooling_choice": {"kept": kept, "agreement": [round(a, 4) for a in agreement]}}
            if len(poolings) > 1
            else {}
        ),
        "localization": localization,
        "test_videos": len(test),
        **{f"train_cluster/{k_}": round(v, 4) for k_, v in scores.items()},
        "train_label_free_auc": None if label_free_auc is None else round(label_free_auc, 4),
    }


def baseline_settings(config: dict) -> dict[str, object]:
    """What :func:`run_baseline` takes from a model config (a ``utal fit`` YAML, merged): the evaluator of
    ``model.init_args.evaluator`` (detection settings, class mapping, centroid temperature), the grids
    ``data.init_args.num_segments`` and ``test_grid``, and the label-free
    pooling of the pseudolabeler's first pooler (``loop.pseudolabeler.init_args.first_pooler.init_args``:
    ``fraction``, ``subtract_background``; of an ``AgreementChoicePooler``, its ``DeviationPooler`` candidates as
    ``choices`` and its ``views``), each where the config has it."""
    model = (config.get("model") or {}).get("init_args") or {}
    data = (config.get("data") or {}).get("init_args") or {}
    pseudolabeler = ((config.get("loop") or {}).get("pseudolabeler") or {}).get("init_args") or {}
    first = pseudolabeler.get("first_pooler") or {}
    first_pooler = first.get("init_args") or {}
    settings: dict[str, object] = {"evaluator": Evaluator.from_config(model.get("evaluator") or {})}
    if str(first.get("class_path", "")).endswith("AgreementChoicePooler"):
        settings["choices"] = [_deviation_choice(c) for c in first_pooler.get("candidates") or []]
        settings["views"] = int(first_pooler.get("views", 2))
        first_pooler = {}
    if "num_segments" in data:
        settings["num_segments"] = int(data["num_segments"])
    if "test_grid" in data:
        settings["test_grid"] = data["test_grid"]
    if "fraction" in first_pooler:
        settings["fraction"] = None if first_pooler["fraction"] is None else float(first_pooler["fraction"])
    if "subtract_background" in first_pooler:
        settings["subtract_background"] = bool(first_pooler["subtract_background"])
    return settings


def _deviation_choice(candidate: dict) -> tuple[float | None, bool]:
    """(fraction, subtract_background) of a ``DeviationPooler`` candidate of a config (its defaults where unset)."""
    if not str(candidate.get("class_path", "")).endswith("DeviationPooler"):
        raise ValueError(
            f"the baseline chooses between DeviationPooler candidates only, got {candidate.get('class_path')}"
        )
    args = candidate.get("init_args") or {}
    fraction = args.get("fraction")
    return (None if fraction is None else float(fraction)), bool(args.get("subtract_background", True))


def label_free_cues(
    layout: DatasetLayout,
    num_segments: int = 750,
    seed: int = 0,
    fraction: float = 0.25,
    baseline_fraction: float | None = None,
    subtract_background: bool = True,
) -> dict[str, float | None]:
    """What a dataset's training videos offer without labels, read against their ground truth (``utal synth
    --describe``, docs/quality.md): the median over videos of each video's snippet AUC for its annotated action
    snippets of (a) the distance from the mean training snippet (:func:`deviation_actionness`) and (b) the raw
    snippet L2 norm; and the NMI of seeded k-means on the videos pooled (c) by their mean snippet, (d) over their
    top ``fraction`` by that distance (no background subtraction), (e) as the shipped baseline pools
    (``baseline_fraction``, ``subtract_background``) and (f) over their annotated action snippets (the oracle).
    A preset whose (a) or (b) is near 1 or whose (c) is near (f) cannot show what a trained model adds."""
    index = read_dataset(layout)
    train = FeatureStore.from_index(index, index.layout.train_split)
    reference = train.mean_snippet()
    targets = torch.as_tensor(index.class_targets(index.train_ids))
    k = index.num_classes
    poolings = {
        "mean": lambda x, a, m: _pool(x, a, "mean", None, None, False),
        "deviation_top": lambda x, a, m: _pool(x, a, "deviation", fraction, None, False),
        "baseline": lambda x, a, m: _pool(x, a, "deviation", baseline_fraction, None, subtract_background),
        "oracle": lambda x, a, m: _pool(x, a, "oracle", None, m, False),
    }
    pooled: dict[str, list[Tensor]] = {name: [] for name in poolings}
    distance_auc, norm_auc = [], []
    for i in range(len(train)):
        x, actionness, action, auc = _read_video(index, train, i, num_segments, reference)
        distance_auc.append(auc)
        norm_auc.append(float(snippet_auc(x.norm(dim=1)[None], action[None])[0]))
        for name, pool in poolings.items():
            pooled[name].append(pool(x, actionness, action))

    def median(values: list[float]) -> float | None:
        kept = torch.tensor(values, dtype=torch.float64)
        kept = kept[~torch.isnan(kept)]
        return round(float(kept.quantile(0.5)), 4) if kept.numel() else None  # the middle two averaged, as numpy

    cues: dict[str, float | None] = {
        "distance_auc": median(distance_auc),
        "norm_auc": median(norm_auc),
    }
    for name, rows in pooled.items():
        clusters, _ = kmeans(torch.stack(rows), k, seed=seed)
        cues[f"{name}_nmi"] = round(clustering_scores(clusters, targets, num_clusters=k)["nmi"], 4)
    return cues

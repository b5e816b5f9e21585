"""COCO-style OKS keypoint AP/AR with pycocotools, configured like the official evaluator.

The official ViTPose numbers come from xtcocotools' ``COCOeval`` (ref §4.1, §4.2, §4.4, §4.7).
We run the unmodified pycocotools ``COCOeval`` (``iouType='keypoints'``, maxDets 20) with the
dataset's ``kpt_oks_sigmas`` and reproduce xtcocotools' extensions by preparing its inputs:

* ``use_area=False`` (AIC, CrowdPose): the ground-truth area is set to ``0.53 * w * h`` of the
  annotation box, which is what xtcocotools uses both in the OKS and for the area ranges;
* a ground truth is ignored when it has no labelled keypoint (``v > 0``) in the evaluated part
  (``num_keypoints`` is recomputed from the keypoints, as xtcocotools counts them);
* predictions whose keypoint scores are all ``<= 0`` in the evaluated part are dropped;
* CrowdPose: AP (E) / AP (M) / AP (H) re-run the evaluation on the images with ``crowdIndex``
  ``< 0.2``, ``< 0.8`` and the rest, and report the mean of the precision array over all
  thresholds (absent entries count as -1), rounded to 4 decimals, like ``get_type_result``;
* COCO-WholeBody: six runs (body, foot, face, lefthand, righthand, wholebody), each on its
  keypoint slice and sigma slice; ground truth keeps its ``area``, a prediction's area is the
  extent of its 17 body keypoints, and ``<part>_score`` (foot, face, lefthand, righthand,
  wholebody) ranks that part's predictions when present. The unprefixed AP/AR are those of the
  whole-body run.

A value of -1 means "no ground truth for that setting", as in pycocotools.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vitpose.dataset_meta import DatasetMeta, get_dataset_meta
from vitpose.datasets.coco import WHOLEBODY_PART_KEYS
from vitpose.datasets.records import (
    PathLike,
    _entry_name,
    _int_id,
    _load_json,
    _number,
    _numbers,
    _require,
    resolve_meta,
)
from vitpose.errors import InputError

__all__ = [
    "COCO_STAT_NAMES",
    "CROWD_AREA_FACTOR",
    "CROWDPOSE_STAT_NAMES",
    "WHOLEBODY_PARTS",
    "coco_keypoint_metrics",
    "crowdpose_metrics",
    "wholebody_metrics",
]

#: Names of the 10 standard keypoint statistics, in pycocotools' ``stats`` order.
COCO_STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)", "AR (L)")
#: Names reported for CrowdPose.
CROWDPOSE_STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP (E)", "AP (M)", "AP (H)")
#: COCO-WholeBody evaluation parts, in the official order.
WHOLEBODY_PARTS: tuple[str, ...] = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
#: Area of a ground truth without segmentation area: this factor times box w * h (ref §4.2).
CROWD_AREA_FACTOR = 0.53
#: CrowdPose crowdIndex split points (easy < 0.2 <= medium < 0.8 <= hard).
CROWD_SPLITS = (0.2, 0.8)

ResultsLike = Union[PathLike, Sequence[Mapping[str, Any]]]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _load_gt(gt: Union[PathLike, Mapping[str, Any]]) -> tuple[dict[str, Any], str]:
    if isinstance(gt, Mapping):
        return dict(gt), "ground truth"
    path = Path(gt)
    data = _load_json(path, "ground-truth annotation")
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a COCO-style JSON object, got {type(data).__name__}")
    return dict(data), str(path)


def _load_results(results: ResultsLike) -> tuple[list[Any], str]:
    if isinstance(results, (str, Path)):
        data = _load_json(results, "results")
        name = str(results)
    else:
        data, name = results, "results"
    if not isinstance(data, (list, tuple)):
        raise InputError(f"{name}: expected a list of results in COCO results format "
                         f"(image_id, category_id, keypoints, score)")
    return list(data), name


class _GroundTruth:
    """Validated ground truth: images, categories and parsed annotations."""

    def __init__(self, data: Mapping[str, Any], name: str, part_keys: Sequence[tuple[str, int]],
                 use_area: bool) -> None:
        images = _require(data, "images", name, "the top-level object")
        anns = _require(data, "annotations", name, "the top-level object")
        if not isinstance(images, list) or not isinstance(anns, list):
            raise InputError(f"{name}: keys 'images' and 'annotations' must be lists")
        self.name = name
        self.images: list[dict[str, Any]] = []
        self.crowd_index: dict[int, float | None] = {}
        for i, img in enumerate(images):
            where = _entry_name("images", i, img)
            image_id = _int_id(_require(img, "id", name, where), name, where, "id")
            self.images.append({"id": image_id})
            crowd = img.get("crowdIndex") if isinstance(img, Mapping) else None
            self.crowd_index[image_id] = (
                None if crowd is None else _number(crowd, name, where, "crowdIndex"))
        self.image_ids = set(self.crowd_index)
        self.anns: list[dict[str, Any]] = []
        for i, ann in enumerate(anns):
            where = _entry_name("annotations", i, ann)
            image_id = _int_id(_require(ann, "image_id", name, where), name, where, "image_id")
            if image_id not in self.image_ids:
                raise InputError(f"{name}: {where} key 'image_id' = {image_id} is not in 'images'")
            bbox = _numbers(_require(ann, "bbox", name, where), 4, name, where, "bbox")
            blocks = [_numbers(_require(ann, key, name, where), 3 * count, name, where, key)
                      for key, count in part_keys]
            if use_area:
                area = _number(_require(ann, "area", name, where), name, where, "area")
            else:
                area = CROWD_AREA_FACTOR * float(bbox[2]) * float(bbox[3])
            self.anns.append({
                "id": _int_id(_require(ann, "id", name, where), name, where, "id"),
                "image_id": image_id,
                "category_id": _int_id(ann.get("category_id", 1), name, where, "category_id"),
                "bbox": [float(v) for v in bbox],
                "area": area,
                "iscrowd": int(bool(ann.get("iscrowd", 0))),
                "kpts": np.concatenate(blocks),
            })
        cats = data.get("categories")
        if isinstance(cats, list) and cats:
            self.categories = []
            for j, cat in enumerate(cats):
                where = _entry_name("categories", j, cat)
                cat_id = _int_id(_require(cat, "id", name, where), name, where, "id")
                self.categories.append({"id": cat_id, "name": str(cat.get("name", ""))})
        else:
            self.categories = [{"id": c, "name": str(c)}
                               for c in sorted({a["category_id"] for a in self.anns})]
        self.category_ids = {c["id"] for c in self.categories}

    def coco(self, lo: int, hi: int) -> COCO:
        """pycocotools ground truth for the keypoint slice ``[lo, hi)``."""
        anns = []
        for ann in self.anns:
            kpts = ann["kpts"][3 * lo: 3 * hi]
            anns.append({
                "id": ann["id"], "image_id": ann["image_id"], "category_id": ann["category_id"],
                "bbox": ann["bbox"], "area": ann["area"], "iscrowd": ann["iscrowd"],
                "keypoints": kpts.tolist(),
                "num_keypoints": int(np.count_nonzero(kpts[2::3] > 0)),
            })
        coco = COCO()
        coco.dataset = {"images": self.images, "annotations": anns,
                        "categories": self.categories}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco


def _parse_results(raw: list[Any], name: str, gt: _GroundTruth, num_keypoints: int,
                   wholebody: bool) -> list[dict[str, Any]]:
    """Validate results; returns ``image_id, category_id, kpts (3K), score, part scores``."""
    default_cat = next(iter(gt.category_ids)) if len(gt.category_ids) == 1 else None
    parsed = []
    for i, res in enumerate(raw):
        where = _entry_name("results", i, res, "image_id")
        image_id = _int_id(_require(res, "image_id", name, where), name, where, "image_id")
        if image_id not in gt.image_ids:
            raise InputError(f"{name}: {where} image_id {image_id} is not in the ground truth "
                             f"{gt.name}")
        if "category_id" in res:
            cat = _int_id(res["category_id"], name, where, "category_id")
        elif default_cat is not None:
            cat = default_cat
        else:
            raise InputError(f"{name}: {where} is missing the key 'category_id' (the ground "
                             f"truth has several categories)")
        kp_raw = _require(res, "keypoints", name, where)
        if wholebody and len(np.asarray(kp_raw, dtype=object).reshape(-1)) != 3 * num_keypoints:
            blocks = [_numbers(_require(res, key, name, where), 3 * count, name, where, key)
                      for key, count in WHOLEBODY_PART_KEYS]
            kpts = np.concatenate(blocks)
        else:
            kpts = _numbers(kp_raw, 3 * num_keypoints, name, where, "keypoints")
        score = _number(_require(res, "score", name, where), name, where, "score")
        part_scores = {}
        for part in WHOLEBODY_PARTS[1:]:  # the body run always uses "score"
            key = f"{part}_score"
            if key in res:
                part_scores[part] = _number(res[key], name, where, key)
        parsed.append({"image_id": image_id, "category_id": cat, "kpts": kpts, "score": score,
                       "part_scores": part_scores})
    return parsed


# --------------------------------------------------------------------------------------------
# Evaluation core
# --------------------------------------------------------------------------------------------


def _build_dt(gt_coco: COCO, results: list[dict[str, Any]], lo: int, hi: int,
              part: str | None, body_area: bool) -> COCO:
    anns = []
    areas = []
    for res in results:
        kpts = res["kpts"][3 * lo: 3 * hi]
        if not np.any(kpts[2::3] > 0):
            continue  # xtcocotools drops predictions without a positive keypoint score
        # xtcocotools ranks by "<part>_score" when given, except for the body run.
        score = res["part_scores"].get(part, res["score"]) if part != "body" else res["score"]
        anns.append({"image_id": res["image_id"], "category_id": res["category_id"],
                     "keypoints": kpts.tolist(), "score": score})
        if body_area:
            # xtcocotools takes a whole-body prediction's area from its 17 body keypoints.
            x, y = res["kpts"][0:51:3], res["kpts"][1:51:3]
            areas.append(float((x.max() - x.min()) * (y.max() - y.min())))
    with contextlib.redirect_stdout(io.StringIO()):
        if anns:
            dt = gt_coco.loadRes(anns)
        else:
            dt = COCO()
            dt.dataset = {"images": list(gt_coco.dataset["images"]), "annotations": [],
                          "categories": list(gt_coco.dataset["categories"])}
            dt.createIndex()
    if body_area:
        # loadRes keeps our dicts (and their order); it has set 'area' from the sliced points.
        for ann, area in zip(anns, areas):
            ann["area"] = area
    return dt


def _run(gt_coco: COCO, dt_coco: COCO, sigmas: np.ndarray) -> COCOeval:
    ev = COCOeval(gt_coco, dt_coco, iouType="keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    ev.params.maxDets = [20]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _evaluate_slice(gt: _GroundTruth, results: list[dict[str, Any]], sigmas: np.ndarray,
                    lo: int, hi: int, part: str | None = None,
                    body_area: bool = False) -> COCOeval:
    gt_coco = gt.coco(lo, hi)
    dt_coco = _build_dt(gt_coco, results, lo, hi, part, body_area)
    return _run(gt_coco, dt_coco, sigmas[lo:hi])


def _prepare(gt: Union[PathLike, Mapping[str, Any]], results: ResultsLike,
             num_keypoints: int, use_area: bool, wholebody: bool,
             ) -> tuple[_GroundTruth, list[dict[str, Any]]]:
    gt_data, gt_name = _load_gt(gt)
    part_keys = WHOLEBODY_PART_KEYS if wholebody else (("keypoints", num_keypoints),)
    ground_truth = _GroundTruth(gt_data, gt_name, part_keys, use_area)
    raw, res_name = _load_results(results)
    parsed = _parse_results(raw, res_name, ground_truth, num_keypoints, wholebody)
    return ground_truth, parsed


def _sigmas_of(meta: Union[str, DatasetMeta, Sequence[float], np.ndarray]) -> np.ndarray:
    if isinstance(meta, (str, DatasetMeta)):
        return resolve_meta(meta).oks_sigmas
    return np.asarray(meta, dtype=np.float64).reshape(-1)


def coco_keypoint_metrics(
    gt: Union[PathLike, Mapping[str, Any]],
    results: ResultsLike,
    meta: Union[str, DatasetMeta, Sequence[float], np.ndarray] = "coco",
    *,
    use_area: bool = True,
) -> dict[str, float]:
    """OKS AP/AR of keypoint results against a COCO-style ground-truth file.

    Args:
        gt: ground-truth json path (or its parsed content).
        results: results json path or list in COCO results format: ``image_id``,
            ``category_id`` (optional when the ground truth has one category), ``keypoints``
            (``3 K`` values ``x, y, score``) and ``score``.
        meta: dataset name, :class:`DatasetMeta` or the ``K`` OKS sigmas themselves.
        use_area: use the annotations' ``area`` (COCO, OCHuman, AP-10K, APT-36K); ``False``
            uses ``0.53 * w * h`` (AIC).

    Returns:
        ``{"AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)",
        "AR (L)"}`` as floats in ``[0, 1]`` (-1 where there is no ground truth).

    Raises:
        InputError: unreadable files, missing keys, wrong keypoint counts, NaN values or
            result image ids absent from the ground truth.
    """
    sigmas = _sigmas_of(meta)
    num = sigmas.shape[0]
    ground_truth, parsed = _prepare(gt, results, num, use_area, wholebody=False)
    ev = _evaluate_slice(ground_truth, parsed, sigmas, 0, num)
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, ev.stats)}


def crowdpose_metrics(
    gt: Union[PathLike, Mapping[str, Any]],
    results: ResultsLike,
    meta: Union[str, DatasetMeta, Sequence[float], np.ndarray] = "crowdpose",
) -> dict[str, float]:
    """CrowdPose AP/AR and AP by crowd level (``area = 0.53 w h``, ref §4.4).

    Args:
        gt: ground-truth json (images carry ``crowdIndex``) or its parsed content.
        results: results in COCO results format (see :func:`coco_keypoint_metrics`).
        meta: dataset name, :class:`DatasetMeta` or the 14 sigmas.

    Returns:
        ``{"AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP (E)", "AP (M)", "AP (H)"}``; the crowd
        levels are rounded to 4 decimals and are -1 when a level has no image.

    Raises:
        InputError: as :func:`coco_keypoint_metrics`, or an image without ``crowdIndex``.
    """
    sigmas = _sigmas_of(meta)
    num = sigmas.shape[0]
    ground_truth, parsed = _prepare(gt, results, num, False, wholebody=False)
    ev = _evaluate_slice(ground_truth, parsed, sigmas, 0, num)
    stats = ev.stats
    out = {"AP": stats[0], "AP50": stats[1], "AP75": stats[2],
           "AR": stats[5], "AR50": stats[6], "AR75": stats[7]}
    levels: list[list[int]] = [[], [], []]
    for image_id, crowd in ground_truth.crowd_index.items():
        if crowd is None:
            raise InputError(f"{ground_truth.name}: image {image_id} has no 'crowdIndex' "
                             f"(needed for CrowdPose AP (E)/(M)/(H))")
        levels[0 if crowd < CROWD_SPLITS[0] else 1 if crowd < CROWD_SPLITS[1] else 2].append(
            image_id)
    for name, ids in zip(("AP (E)", "AP (M)", "AP (H)"), levels):
        if not ids:
            out[name] = -1.0
            continue
        ev.params.imgIds = sorted(ids)
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
        out[name] = round(float(np.mean(ev.eval["precision"][:, :, :, 0, :])), 4)
    return {name: float(out[name]) for name in CROWDPOSE_STAT_NAMES}


def wholebody_metrics(
    gt: Union[PathLike, Mapping[str, Any]],
    results: ResultsLike,
    meta: Union[str, DatasetMeta, Sequence[float], np.ndarray] = "wholebody",
) -> dict[str, float]:
    """COCO-WholeBody AP/AR per part (ref §4.7).

    Args:
        gt: COCO-WholeBody ground truth (``keypoints``, ``foot_kpts``, ``face_kpts``,
            ``lefthand_kpts``, ``righthand_kpts``) or its parsed content.
        results: COCO results format; each result either has ``keypoints`` with all 133 x 3
            values, or ``keypoints`` (17 x 3) plus ``foot_kpts``, ``face_kpts``,
            ``lefthand_kpts`` and ``righthand_kpts``. Optional ``<part>_score`` values replace
            ``score`` for that part's run (not for body, as in xtcocotools).
        meta: ``"wholebody"``, its :class:`DatasetMeta` or the 133 sigmas.

    Returns:
        The 10 standard statistics of the whole-body run (``"AP"`` ... ``"AR (L)"``) and the
        same 10 for every part, prefixed: ``"body AP"``, ``"foot AR50"``, ...,
        ``"wholebody AP"``.

    Raises:
        InputError: as :func:`coco_keypoint_metrics`.
    """
    sigmas = _sigmas_of(meta)
    if sigmas.shape[0] != 133:
        raise InputError(f"COCO-WholeBody evaluation needs 133 sigmas, got {sigmas.shape[0]}")
    ground_truth, parsed = _prepare(gt, results, 133, True, wholebody=True)
    ranges = dict(get_dataset_meta("wholebody").parts)
    ranges["wholebody"] = range(0, 133)
    out: dict[str, float] = {}
    for part in WHOLEBODY_PARTS:
        rng = ranges[part]
        ev = _evaluate_slice(ground_truth, parsed, sigmas, rng.start, rng.stop, part=part,
                             body_area=True)
        for name, value in zip(COCO_STAT_NAMES, ev.stats):
            out[f"{part} {name}"] = float(value)
    for name in COCO_STAT_NAMES:
        out[name] = out[f"wholebody {name}"]
    return out

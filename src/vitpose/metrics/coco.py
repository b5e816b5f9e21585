"""COCO-style OKS keypoint AP/AR, configured per dataset like the official evaluation.

The official numbers come from xtcocotools' ``COCOeval`` (ref §4.1, §4.2, §4.4, §4.7), whose
rules :mod:`vitpose.metrics.oks` implements (the tests compare against numbers computed by
xtcocotools 1.14.3 itself). Each dataset's official call:

=====================  ==================================================  ==================
dataset                xtcocotools call                                    function
=====================  ==================================================  ==================
COCO, OCHuman,         ``COCOeval(gt, dt, 'keypoints', sigmas)``           coco_keypoint_
AP-10K, APT-36K        (``use_area=True``: the annotation ``area``)        metrics
AIC                    ``COCOeval(..., 'keypoints', sigmas,                coco_keypoint_
                       use_area=False)`` (area = 0.53 w h)                 metrics
CrowdPose              ``COCOeval(..., 'keypoints_crowd', sigmas,          crowdpose_metrics
                       use_area=False)``: the file's ``num_keypoints``
                       decides which people count; AP (E)/(M)/(H) by
                       ``crowdIndex``
COCO-WholeBody         six runs ``keypoints_body`` / ``_foot`` / ``_face``  wholebody_metrics
                       / ``_lefthand`` / ``_righthand`` /
                       ``_wholebody``, each with its sigma slice and
                       ``use_area=True``; the part runs rank by
                       ``<part>_score`` when given
=====================  ==================================================  ==================

Results follow xtcocotools' ``loadRes``: when the first result has a non-empty ``bbox``, every
result's area is its box area, else the extent of its ``keypoints`` field (for WholeBody the
17 body keypoints). A value of -1 means "no ground truth for that setting".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.dataset_meta import DatasetMeta, get_dataset_meta
from vitpose.datasets.coco import WHOLEBODY_PART_KEYS
from vitpose.datasets.records import (
    PathLike,
    entry_name,
    finite_number,
    finite_numbers,
    int_id,
    require_key,
    resolve_meta,
)
from vitpose.errors import InputError
from vitpose.fileio import read_json, read_results_file
from vitpose.metrics.oks import (
    CROWD_AREA_FACTOR,
    CROWD_LEVELS,
    CROWD_STAT_NAMES,
    KEYPOINT_STAT_NAMES,
    OksEvaluation,
    OksGroundTruth,
    OksPrediction,
)

__all__ = [
    "COCO_STAT_NAMES",
    "CROWDPOSE_STAT_NAMES",
    "CROWD_AREA_FACTOR",
    "WHOLEBODY_PARTS",
    "coco_keypoint_metrics",
    "crowdpose_metrics",
    "wholebody_metrics",
]

#: Names of the 10 standard keypoint statistics, in the official order.
COCO_STAT_NAMES: tuple[str, ...] = KEYPOINT_STAT_NAMES
#: Names reported for CrowdPose.
CROWDPOSE_STAT_NAMES: tuple[str, ...] = CROWD_STAT_NAMES
#: COCO-WholeBody evaluation parts, in the official order.
WHOLEBODY_PARTS: tuple[str, ...] = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
#: CrowdPose crowdIndex split points (easy < 0.2 <= medium < 0.8 <= hard).
CROWD_SPLITS = CROWD_LEVELS

ResultsLike = PathLike | Sequence[Mapping[str, Any]]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _load_gt(gt: PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(gt, Mapping):
        return dict(gt), "ground truth"
    path = Path(gt)
    data = read_json(path, "ground-truth annotation")
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a COCO-style JSON object, got {type(data).__name__}")
    return dict(data), str(path)


def _load_results(results: ResultsLike) -> tuple[list[Any], str]:
    if isinstance(results, (str, Path)):
        data = read_results_file(results)
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
                 use_area: bool, crowd: bool = False) -> None:
        images = require_key(data, "images", name, "the top-level object")
        anns = require_key(data, "annotations", name, "the top-level object")
        if not isinstance(images, list) or not isinstance(anns, list):
            raise InputError(f"{name}: keys 'images' and 'annotations' must be lists")
        self.name = name
        self.crowd_index: dict[int, float | None] = {}
        for i, img in enumerate(images):
            where = entry_name("images", i, img)
            image_id = int_id(require_key(img, "id", name, where), name, where, "id")
            crowd_value = img.get("crowdIndex") if isinstance(img, Mapping) else None
            self.crowd_index[image_id] = (
                None if crowd_value is None else finite_number(crowd_value, name, where, "crowdIndex"))
        self.image_ids = set(self.crowd_index)
        self.anns: list[dict[str, Any]] = []
        for i, ann in enumerate(anns):
            where = entry_name("annotations", i, ann)
            image_id = int_id(require_key(ann, "image_id", name, where), name, where, "image_id")
            if image_id not in self.image_ids:
                raise InputError(f"{name}: {where} key 'image_id' = {image_id} is not in 'images'")
            bbox = finite_numbers(require_key(ann, "bbox", name, where), 4, name, where, "bbox")
            blocks = [finite_numbers(require_key(ann, key, name, where), 3 * count, name, where, key)
                      for key, count in part_keys]
            area = None
            if use_area:
                area = finite_number(require_key(ann, "area", name, where), name, where, "area")
            num_keypoints = None
            if crowd:
                # keypoints_crowd reads the file's own count (CrowdPose leaves out head and neck)
                num_keypoints = int(finite_number(require_key(ann, "num_keypoints", name, where), name,
                                            where, "num_keypoints"))
            self.anns.append({
                "id": int_id(require_key(ann, "id", name, where), name, where, "id"),
                "image_id": image_id,
                "category_id": int_id(ann.get("category_id", 1), name, where, "category_id"),
                "bbox": np.asarray(bbox, dtype=np.float64),
                "area": area,
                "iscrowd": bool(ann.get("iscrowd", 0)),
                "kpts": np.concatenate(blocks).astype(np.float64),
                "num_keypoints": num_keypoints,
            })
        cats = data.get("categories")
        if isinstance(cats, list) and cats:
            self.category_ids = set()
            for j, cat in enumerate(cats):
                where = entry_name("categories", j, cat)
                self.category_ids.add(int_id(require_key(cat, "id", name, where), name, where, "id"))
        else:  # no categories listed: those of the annotations
            self.category_ids = {a["category_id"] for a in self.anns}

    def slice(self, lo: int, hi: int) -> list[OksGroundTruth]:
        """Ground truths restricted to keypoints ``[lo, hi)``."""
        return [OksGroundTruth(id=a["id"], image_id=a["image_id"], category_id=a["category_id"],
                               bbox=a["bbox"], area=a["area"], iscrowd=a["iscrowd"],
                               keypoints=a["kpts"][3 * lo: 3 * hi],
                               num_keypoints=a["num_keypoints"])
                for a in self.anns]


def _parse_results(raw: list[Any], name: str, gt: _GroundTruth, num_keypoints: int,
                   wholebody: bool) -> list[dict[str, Any]]:
    """Validate results; returns ``image_id, category_id, kpts (3K), score, part scores, area``.

    The area is the one xtcocotools' ``loadRes`` gives: the box area when the first result has
    a non-empty ``bbox``, else the extent of the ``keypoints`` field (WholeBody: of the 17 body
    keypoints, which is what the official results' ``keypoints`` field holds).
    """
    default_cat = next(iter(gt.category_ids)) if len(gt.category_ids) == 1 else None
    first = raw[0] if raw else None
    box_areas = isinstance(first, Mapping) and first.get("bbox") not in (None, [])
    parsed = []
    seen: dict[tuple[int, int, bytes], int] = {}
    for i, res in enumerate(raw):
        where = entry_name("results", i, res, "image_id")
        image_id = int_id(require_key(res, "image_id", name, where), name, where, "image_id")
        if image_id not in gt.image_ids:
            raise InputError(f"{name}: {where} image_id {image_id} is not in the ground truth "
                             f"{gt.name}")
        if "category_id" in res:
            cat = int_id(res["category_id"], name, where, "category_id")
        elif default_cat is not None:
            cat = default_cat
        else:
            raise InputError(f"{name}: {where} is missing the key 'category_id' (the ground "
                             f"truth has several categories)")
        if cat not in gt.category_ids:
            # the official evaluator would drop it without a word: a silently different AP
            cats = sorted(gt.category_ids)
            raise InputError(f"{name}: {where} category_id {cat} is not a category of the "
                             f"ground truth {gt.name} (it has {cats[:10]}"
                             f"{' ...' if len(cats) > 10 else ''}); are these results of "
                             "another dataset?")
        kp_raw = require_key(res, "keypoints", name, where)
        if wholebody and len(np.asarray(kp_raw, dtype=object).reshape(-1)) != 3 * num_keypoints:
            blocks = [finite_numbers(require_key(res, key, name, where), 3 * count, name, where, key)
                      for key, count in WHOLEBODY_PART_KEYS]
            kpts = np.concatenate(blocks)
        else:
            kpts = finite_numbers(kp_raw, 3 * num_keypoints, name, where, "keypoints")
        kpts = np.asarray(kpts, dtype=np.float64)
        key = (image_id, cat, kpts.tobytes())
        if key in seen:
            # counted twice, a duplicate is a false positive at every threshold
            raise InputError(f"{name}: {where} repeats results[{seen[key]}] (same image, "
                             "category and keypoints); was the file written twice or "
                             "concatenated? Remove the duplicates")
        seen[key] = i
        score = finite_number(require_key(res, "score", name, where), name, where, "score")
        part_scores = {}
        for part in WHOLEBODY_PARTS[1:]:  # the body run always uses "score"
            key = f"{part}_score"
            if key in res:
                part_scores[part] = finite_number(res[key], name, where, key)
        if box_areas:
            box = finite_numbers(require_key(res, "bbox", name, where), 4, name, where, "bbox")
            area = float(box[2] * box[3])
        else:
            field_kpts = kpts[:51] if wholebody else kpts
            x, y = field_kpts[0::3], field_kpts[1::3]
            area = float((np.max(x) - np.min(x)) * (np.max(y) - np.min(y)))
        parsed.append({"image_id": image_id, "category_id": cat, "kpts": kpts, "score": score,
                       "part_scores": part_scores, "area": area})
    return parsed


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _evaluation(gt: _GroundTruth, results: list[dict[str, Any]], sigmas: np.ndarray,
                lo: int, hi: int, use_area: bool, part: str | None = None,
                crowd: bool = False) -> OksEvaluation:
    dts = []
    for res in results:
        # xtcocotools ranks a part by "<part>_score" when given, except for the body run.
        score = res["part_scores"].get(part, res["score"]) if part not in (None, "body") \
            else res["score"]
        dts.append(OksPrediction(image_id=res["image_id"], category_id=res["category_id"],
                                 keypoints=res["kpts"][3 * lo: 3 * hi], score=score,
                                 area=res["area"]))
    return OksEvaluation(image_ids=sorted(gt.image_ids), category_ids=sorted(gt.category_ids),
                         gts=gt.slice(lo, hi), dts=dts, sigmas=sigmas[lo:hi],
                         use_area=use_area, crowd=crowd)


def _prepare(gt: PathLike | Mapping[str, Any], results: ResultsLike,
             num_keypoints: int, use_area: bool, wholebody: bool, crowd: bool = False,
             ) -> tuple[_GroundTruth, list[dict[str, Any]]]:
    gt_data, gt_name = _load_gt(gt)
    part_keys = WHOLEBODY_PART_KEYS if wholebody else (("keypoints", num_keypoints),)
    ground_truth = _GroundTruth(gt_data, gt_name, part_keys, use_area, crowd)
    raw, res_name = _load_results(results)
    parsed = _parse_results(raw, res_name, ground_truth, num_keypoints, wholebody)
    return ground_truth, parsed


def _sigmas_of(meta: str | DatasetMeta | Sequence[float] | np.ndarray) -> np.ndarray:
    if isinstance(meta, (str, DatasetMeta)):
        return resolve_meta(meta).oks_sigmas
    return np.asarray(meta, dtype=np.float64).reshape(-1)


def coco_keypoint_metrics(
    gt: PathLike | Mapping[str, Any],
    results: ResultsLike,
    meta: str | DatasetMeta | Sequence[float] | np.ndarray = "coco",
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
    return _evaluation(ground_truth, parsed, sigmas, 0, num, use_area).run().keypoint_stats()


def crowdpose_metrics(
    gt: PathLike | Mapping[str, Any],
    results: ResultsLike,
    meta: str | DatasetMeta | Sequence[float] | np.ndarray = "crowdpose",
) -> dict[str, float]:
    """CrowdPose AP/AR and AP by crowd level: xtcocotools ``keypoints_crowd``, ``use_area=False``.

    A person counts only when the file's ``num_keypoints`` is not 0; in CrowdPose that count
    leaves out head_top and neck, so people labelled only there are ignored (ref §4.4).

    Args:
        gt: ground-truth json (images carry ``crowdIndex``, annotations ``num_keypoints``) or
            its parsed content.
        results: results in COCO results format (see :func:`coco_keypoint_metrics`).
        meta: dataset name, :class:`DatasetMeta` or the 14 sigmas.

    Returns:
        ``{"AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP (E)", "AP (M)", "AP (H)"}``; the crowd
        levels are rounded to 4 decimals and are -1 when a level has no image.

    Raises:
        InputError: as :func:`coco_keypoint_metrics`, or an image without ``crowdIndex`` or an
            annotation without ``num_keypoints``.
    """
    sigmas = _sigmas_of(meta)
    num = sigmas.shape[0]
    ground_truth, parsed = _prepare(gt, results, num, False, wholebody=False, crowd=True)
    for image_id, crowd in ground_truth.crowd_index.items():
        if crowd is None:
            raise InputError(f"{ground_truth.name}: image {image_id} has no 'crowdIndex' "
                             f"(needed for CrowdPose AP (E)/(M)/(H))")
    ev = _evaluation(ground_truth, parsed, sigmas, 0, num, use_area=False, crowd=True)
    out = ev.crowd_stats({k: float(v) for k, v in ground_truth.crowd_index.items()})
    return {name: float(out[name]) for name in CROWDPOSE_STAT_NAMES}


def wholebody_metrics(
    gt: PathLike | Mapping[str, Any],
    results: ResultsLike,
    meta: str | DatasetMeta | Sequence[float] | np.ndarray = "wholebody",
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
    ranges["wholebody"] = range(133)
    out: dict[str, float] = {}
    for part in WHOLEBODY_PARTS:
        rng = ranges[part]
        stats = _evaluation(ground_truth, parsed, sigmas, rng.start, rng.stop, use_area=True,
                            part=part).run().keypoint_stats()
        for name, value in stats.items():
            out[f"{part} {name}"] = float(value)
    for name in COCO_STAT_NAMES:
        out[name] = out[f"wholebody {name}"]
    return out

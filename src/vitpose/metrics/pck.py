"""Distance-based keypoint metrics: MPII PCKh, PCK with a box normaliser, AUC and EPE.

Formulas follow the official evaluation (ref §4.3, §4.8):

* **PCKh (MPII)**: a joint is correct when ``||pred - gt|| / head_size <= thr`` with
  ``head_size = 0.6 * ||head-box diagonal||``. Per-joint PCKh (in %) is over the visible joints.
  The mean ``PCKh`` weights joints by their visible counts and **excludes pelvis (6) and
  thorax (7)**; the groups Head (head_top), Shoulder, Elbow, Wrist, Hip, Knee and Ankle average
  the left and right joints. ``PCKh@0.1`` is row 10 of the official curve
  ``thr = arange(0, 0.51, 0.01)`` (``pckAll[10]`` of mmpose's ``TopDownMpiiDataset``), i.e. the
  threshold 0.1, with the per-joint values stored in float32 as there
  (:func:`pckh_per_joint` gives any threshold).
* **PCK** (mmpose ``keypoint_pck_accuracy``): distances are divided per axis by a normaliser
  ``[N, 2]``; a joint is correct when the normalised distance is ``< thr`` (strict); accuracy is
  computed per keypoint over the valid samples and averaged over keypoints that have any.
  InterHand2.6M uses ``thr = 0.2`` and ``max(w, h)`` of the tight joint box on both axes.
* **AUC**: the mean of PCK at thresholds ``0, 0.05, ..., 0.95`` with a fixed 30-px normaliser.
  Because PCK uses ``<``, the point at threshold 0 is always 0, so a perfect prediction scores
  0.95.
* **EPE**: mean pixel distance over all valid joints.

Samples with a zero normaliser are left out (their distances count as invalid), as in the
original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.interhand import read_interhand2d
from vitpose.datasets.mpii import MPII_NUM_JOINTS, MpiiHeadBoxes, load_mpii_head_boxes, read_mpii
from vitpose.datasets.records import (
    PathLike,
    PoseRecord,
    entry_name,
    int_id,
)
from vitpose.errors import InputError
from vitpose.fileio import read_results_file

__all__ = [
    "MPII_STAT_NAMES",
    "bbox_normalizer",
    "interhand2d_metrics",
    "keypoint_auc",
    "keypoint_distances",
    "keypoint_epe",
    "keypoint_pck",
    "mpii_metrics",
    "mpii_pckh",
    "pckh_per_joint",
]

#: Names returned by :func:`mpii_pckh`, in the official order.
MPII_STAT_NAMES: tuple[str, ...] = (
    "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh", "PCKh@0.1")

# MPII joint order (ref §4.9): left/right joint index pairs of each reported group.
_MPII_GROUPS = {"Shoulder": (13, 12), "Elbow": (14, 11), "Wrist": (15, 10), "Hip": (3, 2),
                "Knee": (4, 1), "Ankle": (5, 0)}
_MPII_HEAD = 9
_MPII_EXCLUDED = (6, 7)  # pelvis, thorax
# The official PCKh curve is arange(0, 0.51, 0.01); "PCKh@0.1" is its row 10 (= 0.1).
_MPII_CURVE = np.arange(0, 0.5 + 0.01, 0.01)
_MPII_PCKH01_ROW = 10

ResultsLike = PathLike | Sequence[Mapping[str, Any]] | np.ndarray


# --------------------------------------------------------------------------------------------
# Generic PCK / AUC / EPE
# --------------------------------------------------------------------------------------------


def keypoint_distances(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray,
                       normalize: np.ndarray) -> np.ndarray:
    """Per-axis normalised distances between predictions and ground truth.

    Args:
        pred: ``[N, K, 2]`` predicted ``(x, y)``.
        gt: ``[N, K, 2]`` ground-truth ``(x, y)``.
        mask: ``[N, K]`` bool, joints to evaluate.
        normalize: ``[N, 2]`` per-sample ``(x, y)`` normalisers; a sample with a zero entry is
            excluded.

    Returns:
        float64 ``[N, K]`` distances ``||(pred - gt) / normalize||``; -1 where not evaluated.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool).copy()
    norm = np.array(normalize, dtype=np.float64).reshape(-1, 2)
    if pred.shape != gt.shape or pred.ndim != 3 or mask.shape != pred.shape[:2] \
            or norm.shape[0] != pred.shape[0]:
        raise ValueError(f"shape mismatch: pred {pred.shape}, gt {gt.shape}, mask {mask.shape}, "
                         f"normalize {norm.shape}; expected [N, K, 2], [N, K, 2], [N, K], [N, 2]")
    mask[np.any(norm == 0, axis=1), :] = False
    norm[norm <= 0] = 1e6
    dist = np.full(mask.shape, -1.0)
    dist[mask] = np.linalg.norm(((pred - gt) / norm[:, None, :])[mask], axis=-1)
    return dist


def keypoint_pck(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, thr: float,
                 normalize: np.ndarray) -> tuple[np.ndarray, float, int]:
    """PCK: fraction of joints whose normalised distance is below ``thr``.

    Args:
        pred: ``[N, K, 2]`` predictions. gt: ``[N, K, 2]`` ground truth.
        mask: ``[N, K]`` joints to evaluate.
        thr: threshold on the normalised distance (strict ``<``).
        normalize: ``[N, 2]`` normalisers (see :func:`bbox_normalizer`).

    Returns:
        ``(per_keypoint [K], mean, count)``: per-keypoint accuracy (-1 for a keypoint with no
        valid sample), its mean over keypoints with samples (0 if none) and that number.
    """
    dist = keypoint_distances(pred, gt, mask, normalize)
    acc = np.full(dist.shape[1], -1.0)
    for k in range(dist.shape[1]):
        valid = dist[:, k] != -1
        if valid.any():
            acc[k] = float(np.count_nonzero(dist[valid, k] < thr)) / float(valid.sum())
    good = acc[acc >= 0]
    return acc, float(good.mean()) if good.size else 0.0, int(good.size)


def keypoint_auc(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray,
                 normalize: float = 30.0, num_steps: int = 20) -> float:
    """Area under the PCK curve for thresholds ``i / num_steps``, ``i = 0 .. num_steps - 1``.

    Args:
        pred, gt: ``[N, K, 2]``. mask: ``[N, K]``.
        normalize: fixed normaliser in pixels (official 30).
        num_steps: number of thresholds (official 20).

    Returns:
        The mean PCK over the thresholds (at most ``1 - 1 / num_steps``).
    """
    n = np.asarray(pred).shape[0]
    norm = np.full((n, 2), float(normalize))
    return float(sum(keypoint_pck(pred, gt, mask, i / num_steps, norm)[1]
                     for i in range(num_steps)) / num_steps)


def keypoint_epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """End-point error: mean pixel distance over the masked joints (0 if there are none).

    Args:
        pred, gt: ``[N, K, 2]``. mask: ``[N, K]``.
    """
    n = np.asarray(pred).shape[0]
    dist = keypoint_distances(pred, gt, mask, np.ones((n, 2)))
    valid = dist[dist != -1]
    return float(valid.sum() / max(1, valid.size))


def bbox_normalizer(boxes_xywh: np.ndarray, mode: str = "max") -> np.ndarray:
    """PCK normalisers from boxes.

    Args:
        boxes_xywh: ``[N, 4]`` boxes ``(x, y, w, h)``.
        mode: ``"max"``: ``max(w, h)`` on both axes (InterHand2.6M); ``"wh"``: ``w`` for x and
            ``h`` for y.

    Returns:
        float64 ``[N, 2]``.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    if mode == "max":
        side = boxes[:, 2:4].max(axis=1)
        return np.stack([side, side], axis=1)
    if mode == "wh":
        return boxes[:, 2:4].copy()
    raise ValueError(f"unknown normaliser mode {mode!r}; use 'max' or 'wh'")


# --------------------------------------------------------------------------------------------
# PCKh (MPII)
# --------------------------------------------------------------------------------------------


def _pckh_curve(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_sizes: np.ndarray,
                thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible).astype(bool)
    heads = np.asarray(head_sizes, dtype=np.float64).reshape(-1)
    if pred.shape != gt.shape or pred.ndim != 3 or vis.shape != pred.shape[:2] \
            or heads.shape[0] != pred.shape[0]:
        raise ValueError(f"shape mismatch: pred {pred.shape}, gt {gt.shape}, visible {vis.shape}, "
                         f"head_sizes {heads.shape}; expected [N, K, 2], [N, K, 2], [N, K], [N]")
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.linalg.norm(pred - gt, axis=-1) / heads[:, None]
        counts = vis.sum(axis=0)
        rows = [100.0 * np.sum((scaled <= t) & vis, axis=0) / counts for t in thresholds]
    return np.array(rows, dtype=np.float64), counts


def pckh_per_joint(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray,
                   head_sizes: np.ndarray, thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCKh in percent.

    Args:
        pred: ``[N, K, 2]`` predictions in pixels.
        gt: ``[N, K, 2]`` ground truth in the same pixel convention.
        visible: ``[N, K]`` joints to evaluate (MPII: not missing).
        head_sizes: ``[N]`` head sizes ``0.6 * ||head-box diagonal||`` in pixels.
        thr: threshold on ``distance / head_size`` (inclusive ``<=``).

    Returns:
        ``(pckh [K], counts [K])``: PCKh per joint (NaN where a joint is never visible) and the
        number of visible samples per joint.
    """
    rows, counts = _pckh_curve(pred, gt, visible, head_sizes, [thr])
    return rows[0], counts


def mpii_pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray,
              head_sizes: np.ndarray) -> dict[str, float]:
    """The official MPII report from arrays (16 joints in MPII order).

    Args:
        pred: ``[N, 16, 2]`` predictions. gt: ``[N, 16, 2]`` ground truth (same convention).
        visible: ``[N, 16]`` joints to evaluate.
        head_sizes: ``[N]`` head sizes in pixels.

    Returns:
        ``{"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh", "PCKh@0.1"}`` in
        percent; a group is NaN if one of its joints is never visible.
    """
    if np.asarray(pred).shape[1:] != (MPII_NUM_JOINTS, 2):
        raise ValueError(f"MPII PCKh needs [N, 16, 2] predictions, got {np.asarray(pred).shape}")
    curve, counts = _pckh_curve(pred, gt, visible, head_sizes, [0.5, *_MPII_CURVE])
    # the official curve array is float32 (pckAll), the 0.5 row float64
    pckh, pckh01 = curve[0], curve[1 + _MPII_PCKH01_ROW].astype(np.float32)
    weights = counts.astype(np.float64)
    weights[list(_MPII_EXCLUDED)] = 0.0
    total = weights.sum()
    ratio = weights / total if total > 0 else weights
    out = {"Head": float(pckh[_MPII_HEAD])}
    for name, (left, right) in _MPII_GROUPS.items():
        out[name] = float(0.5 * (pckh[left] + pckh[right]))
    out["PCKh"] = float(np.nansum(pckh * ratio))
    out["PCKh@0.1"] = float(np.nansum(pckh01 * ratio))
    return {name: out[name] for name in MPII_STAT_NAMES}


# --------------------------------------------------------------------------------------------
# Matching results to ground-truth records
# --------------------------------------------------------------------------------------------


def _predictions_for(records: Sequence[PoseRecord], results: ResultsLike,
                     num_keypoints: int) -> np.ndarray:
    """``[N, K, 2]`` predictions aligned with ``records``.

    ``results`` is an array ``[N, K, 2|3]`` in record order, or a list (or json file) of
    ``{"ann_id", "keypoints"}`` matched by :attr:`PoseRecord.ann_id`; a list without
    ``ann_id`` must be in record order.
    """
    n = len(records)
    if isinstance(results, np.ndarray):
        arr = np.asarray(results, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[0] != n or arr.shape[1] != num_keypoints \
                or arr.shape[2] not in (2, 3):
            raise InputError(f"predictions must have shape [{n}, {num_keypoints}, 2 or 3], "
                             f"got {arr.shape}")
        if not np.all(np.isfinite(arr[..., :2])):
            raise InputError("predictions hold NaN or infinite coordinates")
        return arr[..., :2]
    if isinstance(results, (str, Path)):
        name = str(results)
        data = read_results_file(results)
    else:
        name, data = "results", results
    if not isinstance(data, (list, tuple)):
        raise InputError(f"{name}: expected a list of results with 'ann_id' and 'keypoints'")
    data = list(data)
    by_id = {r.ann_id: i for i, r in enumerate(records)}
    out = np.full((n, num_keypoints, 2), np.nan)
    keyed = bool(data) and all(isinstance(d, Mapping) and "ann_id" in d for d in data)
    if not keyed and len(data) != n:
        raise InputError(f"{name}: {len(data)} results for {n} ground-truth samples; give "
                         f"'ann_id' in each result or one result per sample in order")
    first_of: dict[int, int] = {}
    for j, res in enumerate(data):
        where = entry_name("results", j, res, "ann_id")
        if not isinstance(res, Mapping) or "keypoints" not in res:
            raise InputError(f"{name}: {where} is missing the key 'keypoints'")
        if keyed:
            ann_id = int_id(res["ann_id"], name, where, "ann_id")
            if ann_id not in by_id:
                raise InputError(f"{name}: {where} ann_id {ann_id} is not a ground-truth sample")
            if ann_id in first_of:
                raise InputError(f"{name}: {where} is a second result for ann_id {ann_id} "
                                 f"(first: results[{first_of[ann_id]}]); give one result per "
                                 "ground-truth sample")
            first_of[ann_id] = j
            row = by_id[ann_id]
        else:
            row = j
        try:
            kp = np.asarray(res["keypoints"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"{name}: {where} key 'keypoints' must hold numbers") from None
        if kp.size == 3 * num_keypoints:
            kp = kp.reshape(num_keypoints, 3)[:, :2]
        elif kp.size == 2 * num_keypoints:
            kp = kp.reshape(num_keypoints, 2)
        else:
            raise InputError(f"{name}: {where} key 'keypoints' has {kp.size} values, expected "
                             f"{3 * num_keypoints} (x, y, score) or {2 * num_keypoints}")
        if not np.all(np.isfinite(kp)):
            raise InputError(f"{name}: {where} key 'keypoints' holds NaN or infinite values")
        out[row] = kp
    missing = [records[i].ann_id for i in range(n) if np.isnan(out[i, 0, 0])]
    if missing:
        raise InputError(f"{name}: no result for ground-truth sample(s) with ann_id "
                         f"{missing[:10]}{' ...' if len(missing) > 10 else ''}")
    return out


def mpii_metrics(
    gt_path: PathLike,
    results: ResultsLike,
    *,
    head_boxes: PathLike | MpiiHeadBoxes,
) -> dict[str, float]:
    """MPII PCKh report for predictions against an MPII json.

    Args:
        gt_path: MPII json (mmpose layout; ``mpii_val.json``).
        results: ``[N, 16, 2|3]`` array in entry order, or results ``{"ann_id": entry index,
            "keypoints": 16 x (x, y[, score])}`` in 0-based pixels (list or json file).
        head_boxes: head boxes, one per entry (see
            :func:`vitpose.datasets.mpii.load_mpii_head_boxes`). When the file also carries the
            official ``pos_gt_src`` / ``jnt_missing``, those are the ground truth (predictions
            shifted +1 to MATLAB pixels, as the official code does); otherwise the json joints and
            ``joints_vis`` are.

    Returns:
        See :func:`mpii_pckh`.

    Raises:
        InputError: malformed files, a head-box count that differs from the entries, or missing
            / unmatched results.
    """
    boxes = (head_boxes if isinstance(head_boxes, MpiiHeadBoxes)
             else load_mpii_head_boxes(head_boxes))
    records = read_mpii(gt_path, head_boxes=boxes)
    pred = _predictions_for(records, results, MPII_NUM_JOINTS)
    if boxes.joints is not None:
        gt = boxes.joints
        pred = pred + 1.0
        visible = ~boxes.missing if boxes.missing is not None else np.ones(gt.shape[:2], bool)
    else:
        gt = np.stack([r.keypoints for r in records]).astype(np.float64)
        visible = np.stack([r.visible for r in records]) > 0
    return mpii_pckh(pred, gt, visible, boxes.head_sizes)


def interhand2d_metrics(
    data_path: PathLike,
    results: ResultsLike,
    *,
    camera_path: PathLike | None = None,
    joint_3d_path: PathLike | None = None,
    pck_thr: float = 0.2,
    auc_normalizer: float = 30.0,
) -> dict[str, float]:
    """InterHand2.6M 2D report: PCK@``pck_thr`` (box ``max(w, h)``), AUC (30 px) and EPE.

    Args:
        data_path: ``*_data.json`` (camera and joint files found next to it unless given).
        results: ``[N, 21, 2|3]`` array in the order of
            :func:`vitpose.datasets.interhand.read_interhand2d`, or results
            ``{"ann_id", "keypoints": 21 x (x, y[, score])}`` matched by the record ``ann_id``.
        camera_path, joint_3d_path: optional explicit file paths.
        pck_thr: PCK threshold (official 0.2).
        auc_normalizer: AUC normaliser in pixels (official 30).

    Returns:
        ``{"PCK", "AUC", "EPE"}`` (PCK and AUC as fractions, EPE in pixels).

    Raises:
        InputError: malformed files or missing / unmatched results.
    """
    records = read_interhand2d(data_path, camera_path=camera_path, joint_3d_path=joint_3d_path)
    pred = _predictions_for(records, results, 21)
    gt = np.stack([r.keypoints for r in records]).astype(np.float64)
    mask = np.stack([r.visible for r in records]) > 0
    norm = bbox_normalizer(np.stack([r.box_xywh for r in records]), "max")
    return {
        "PCK": keypoint_pck(pred, gt, mask, pck_thr, norm)[1],
        "AUC": keypoint_auc(pred, gt, mask, auc_normalizer),
        "EPE": keypoint_epe(pred, gt, mask),
    }

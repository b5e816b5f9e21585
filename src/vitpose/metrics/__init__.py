"""Benchmark metrics: COCO-style OKS AP/AR (:mod:`.coco`) and PCKh / PCK / AUC / EPE (:mod:`.pck`).

:func:`evaluate` picks the official protocol of a dataset (ref §4) and returns a flat dict of
floats with stable names:

=====================================  ===================================================
dataset                                metric names
=====================================  ===================================================
coco, ochuman, ap10k, apt36k, custom   AP, AP50, AP75, AP (M), AP (L), AR, AR50, AR75,
                                       AR (M), AR (L)
aic                                    the same 10 (area = 0.53 w h)
crowdpose                              AP, AP50, AP75, AR, AR50, AR75, AP (E), AP (M), AP (H)
wholebody                              the 10 of the whole-body run, plus ``"<part> <name>"``
                                       for body, foot, face, lefthand, righthand, wholebody
mpii                                   Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, PCKh,
                                       PCKh@0.1 (percent)
interhand2d                            PCK, AUC, EPE
=====================================  ===================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vitpose.dataset_meta import DatasetMeta
from vitpose.datasets.mpii import MpiiHeadBoxes
from vitpose.datasets.records import PathLike, resolve_meta
from vitpose.errors import InputError
from vitpose.metrics.coco import (
    COCO_STAT_NAMES,
    CROWDPOSE_STAT_NAMES,
    WHOLEBODY_PARTS,
    coco_keypoint_metrics,
    crowdpose_metrics,
    wholebody_metrics,
)
from vitpose.metrics.pck import (
    MPII_STAT_NAMES,
    bbox_normalizer,
    interhand2d_metrics,
    keypoint_auc,
    keypoint_distances,
    keypoint_epe,
    keypoint_pck,
    mpii_metrics,
    mpii_pckh,
    pckh_per_joint,
)

__all__ = [
    "COCO_STAT_NAMES",
    "CROWDPOSE_STAT_NAMES",
    "MPII_STAT_NAMES",
    "USE_AREA",
    "WHOLEBODY_PARTS",
    "bbox_normalizer",
    "coco_keypoint_metrics",
    "crowdpose_metrics",
    "evaluate",
    "interhand2d_metrics",
    "keypoint_auc",
    "keypoint_distances",
    "keypoint_epe",
    "keypoint_pck",
    "mpii_metrics",
    "mpii_pckh",
    "pckh_per_joint",
    "wholebody_metrics",
]

#: Whether a COCO-style dataset's OKS uses the annotation ``area`` (else 0.53 w h), ref §4.
USE_AREA: dict[str, bool] = {"coco": True, "ochuman": True, "ap10k": True, "apt36k": True,
                             "wholebody": True, "aic": False, "crowdpose": False}


def evaluate(
    dataset_name: str | DatasetMeta,
    gt_path: PathLike,
    results: PathLike | Sequence[Mapping[str, Any]] | np.ndarray,
    *,
    use_area: bool | None = None,
    head_boxes: PathLike | MpiiHeadBoxes | None = None,
    camera_path: PathLike | None = None,
    joint_3d_path: PathLike | None = None,
    pck_thr: float = 0.2,
    auc_normalizer: float = 30.0,
) -> dict[str, float]:
    """Score predictions with the official protocol of a dataset.

    Args:
        dataset_name: registry name (``coco``, ``aic``, ``mpii``, ``crowdpose``, ``ochuman``,
            ``ap10k``, ``apt36k``, ``wholebody``/``coco_wholebody``, ``interhand2d``) or a custom
            :class:`DatasetMeta` (COCO-style OKS with its sigmas).
        gt_path: ground-truth file (InterHand2.6M: the ``*_data.json``).
        results: COCO results format for OKS datasets (json path or list of ``image_id``,
            ``category_id``, ``keypoints`` as flat ``x, y, score``, ``score``; WholeBody may use
            the separate ``foot_kpts`` / ``face_kpts`` / ``lefthand_kpts`` / ``righthand_kpts``
            fields). MPII / InterHand2.6M: a list of ``{"ann_id", "keypoints"}`` matched to the
            ground-truth records' ``ann_id``, or an ``[N, K, 2|3]`` array in record order.
        use_area: override the area rule of a COCO-style dataset (custom data default: True).
        head_boxes: MPII only (required): head boxes file, see
            :func:`vitpose.datasets.mpii.load_mpii_head_boxes`.
        camera_path, joint_3d_path: InterHand2.6M only: explicit camera / joint files.
        pck_thr: InterHand2.6M PCK threshold.
        auc_normalizer: InterHand2.6M AUC normaliser in pixels.

    Returns:
        Metric name -> value (see the module docstring for the names per dataset).

    Raises:
        InputError: unknown dataset, malformed files or results, or missing MPII head boxes.
    """
    meta = resolve_meta(dataset_name)
    name = meta.name
    if name == "mpii":
        if head_boxes is None:
            raise InputError(
                "MPII PCKh needs the head boxes of the ground truth, which the MPII json does "
                "not contain: pass head_boxes= a .npz/.json converted from mpii_gt_val.mat "
                "(keys 'headboxes_src', optionally 'pos_gt_src' and 'jnt_missing'), or the .mat "
                "itself with SciPy installed")
        return mpii_metrics(gt_path, results, head_boxes=head_boxes)
    if name == "interhand2d":
        return interhand2d_metrics(gt_path, results, camera_path=camera_path,
                                   joint_3d_path=joint_3d_path, pck_thr=pck_thr,
                                   auc_normalizer=auc_normalizer)
    if isinstance(results, np.ndarray):
        raise InputError(f"{name}: results must be in COCO results format (a list or json "
                         f"file), not an array")
    if name == "wholebody":
        return wholebody_metrics(gt_path, results, meta)
    if name == "crowdpose":
        return crowdpose_metrics(gt_path, results, meta)
    area = USE_AREA.get(name, True) if use_area is None else use_area
    return coco_keypoint_metrics(gt_path, results, meta, use_area=area)

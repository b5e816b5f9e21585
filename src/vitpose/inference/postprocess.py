"""Instance rescoring and OKS-based non-maximum suppression for top-down pose results.

Mirrors the COCO evaluation path of the official ViTPose (mmpose 0.x) top-down datasets:

* rescoring: instance score = (mean of the keypoint scores above ``vis_thr``) x box score;
* OKS-NMS (``oks_nms``): greedy, highest score first, dropping every instance whose object
  keypoint similarity to a kept one exceeds the threshold (0.9 for COCO).

OKS between two poses a, b with areas A_a, A_b (the official NMS uses the padded box area
``(200 sx) * (200 sy)``): ``mean_k exp(-d_k^2 / (2 * (2 sigma_k)^2 * ((A_a + A_b) / 2 + eps)))``.
Sigmas are passed in by the caller (see ``vitpose.dataset_meta``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rescore_instances", "oks_iou", "oks_nms"]


def rescore_instances(
    keypoint_scores: np.ndarray, box_scores: np.ndarray, vis_thr: float = 0.2
) -> np.ndarray:
    """Instance scores from keypoint and box scores.

    Args:
        keypoint_scores: ``[N, K]`` keypoint confidences (heatmap maxima).
        box_scores: ``[N]`` detector scores.
        vis_thr: only keypoint scores strictly above it are averaged (0.2 in the configs);
            an instance with none gets keypoint score 0.

    Returns:
        float64 ``[N]`` = mean(keypoint scores > ``vis_thr``) x box score.
    """
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    if ks.ndim != 2:
        raise ValueError(f"keypoint_scores must be [N, K], got shape {ks.shape}")
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if bs.shape[0] != ks.shape[0]:
        raise ValueError(f"{ks.shape[0]} instances but {bs.shape[0]} box scores")
    valid = ks > vis_thr
    count = valid.sum(axis=1)
    total = np.where(valid, ks, 0.0).sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean * bs


def oks_iou(
    kpts_a: np.ndarray,
    kpts_b: np.ndarray,
    area_a: float,
    areas_b: np.ndarray,
    sigmas: np.ndarray,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity of one pose against ``M`` others.

    Args:
        kpts_a: ``[K, 3]`` (x, y, score) in image pixels.
        kpts_b: ``[M, K, 3]``.
        area_a: area of instance a (pixels^2).
        areas_b: ``[M]`` areas.
        sigmas: ``[K]`` per-keypoint OKS sigmas (COCO: 0.026 ... 0.107).
        vis_thr: if given, only keypoints whose score is above it in *both* poses count, and a
            pair with no such keypoint gets OKS 0. (The original intended this, but its
            ``list(a) and list(b)`` test keeps only b's mask; the COCO evaluation never sets it.)

    Returns:
        float32 ``[M]`` OKS values in [0, 1].
    """
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64).reshape(-1, a.shape[0], a.shape[-1])
    areas_b = np.asarray(areas_b, dtype=np.float64).reshape(-1)
    variances = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    d2 = (b[..., 0] - a[:, 0]) ** 2 + (b[..., 1] - a[:, 1]) ** 2
    # np.spacing(1) keeps the division finite for zero areas.
    e = d2 / variances / ((area_a + areas_b[:, None]) / 2 + np.spacing(1)) / 2
    sim = np.exp(-e)
    if vis_thr is None:
        return sim.mean(axis=1).astype(np.float32)
    mask = (a[:, 2] > vis_thr)[None, :] & (b[..., 2] > vis_thr)
    count = mask.sum(axis=1)
    total = np.where(mask, sim, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    thr: float = 0.9,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression.

    Instances are visited by decreasing score (``argsort(scores)[::-1]``, as the original, so
    ties keep the original's order); each kept instance removes every remaining one whose OKS
    with it is ``> thr``.

    Args:
        keypoints: ``[N, K, 3]`` (x, y, score) in image pixels.
        scores: ``[N]`` instance scores (after :func:`rescore_instances`).
        areas: ``[N]`` instance areas (the official code uses the padded box area).
        sigmas: ``[K]`` OKS sigmas.
        thr: suppression threshold (0.9 for COCO).
        vis_thr: see :func:`oks_iou` (``None`` in the COCO evaluation).

    Returns:
        int64 ``[N_kept]`` indices into the inputs, in the order they were kept.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if kpts.ndim != 3 or kpts.shape[0] != scores.shape[0] or areas.shape[0] != scores.shape[0]:
        raise ValueError(f"need keypoints [N, K, 3], scores [N] and areas [N]; got "
                         f"{kpts.shape}, {scores.shape}, {areas.shape}")
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        ious = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, vis_thr)
        order = rest[ious <= thr]
    return np.asarray(keep, dtype=np.int64)

"""Person boxes as arrays: ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels
(``x, y`` = top-left corner), whatever their source (a detector, a detections file, the user).

* `sanitize_boxes` cleans boxes against the image size (NaN, empty, outside, tiny) and returns
  warnings for the caller to log.
* `nms_boxes`: greedy non-maximum suppression; `whole_image_box`: one box over the image;
  `empty_boxes`: the ``(0, 5)`` array.

Detection files (`vitpose.inference.detection_files`) and the detectors
(`vitpose.inference.detectors`) return these arrays; the pose pipeline takes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["empty_boxes", "nms_boxes", "sanitize_boxes", "whole_image_box"]


def empty_boxes() -> np.ndarray:
    """No boxes: a ``(0, 5)`` float32 array."""
    return np.zeros((0, 5), dtype=np.float32)


def whole_image_box(image_hw: tuple[int, int], score: float = 1.0) -> np.ndarray:
    """One box covering the whole image.

    Args:
        image_hw: image size ``(H, W)``.
        score: score to give the box.

    Returns:
        ``(1, 5)`` float32 ``[[0, 0, W, H, score]]``.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    return np.array([[0.0, 0.0, float(w), float(h), float(score)]], dtype=np.float32)


def nms_boxes(boxes_xywh: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on scored boxes.

    Args:
        boxes_xywh: ``(N, 5)`` boxes ``x, y, w, h, score``.
        iou_threshold: a box is dropped when its IoU with a higher-scoring kept box exceeds this.

    Returns:
        Indices of the kept boxes, highest score first (int64 ``(M,)``).
    """
    b = np.asarray(boxes_xywh, dtype=np.float64)
    if b.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    x1, y1 = b[:, 0], b[:, 1]
    x2, y2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    areas = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    order = np.argsort(-b[:, 4], kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def sanitize_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]],
    image_hw: tuple[int, int],
    min_size: float = 1.0,
    source: str = "",
) -> tuple[np.ndarray, list[str]]:
    """Cleans boxes against an image: clip to the image, drop unusable ones.

    Boxes with a NaN/inf value, zero or negative width/height, or that lie fully outside the
    image are dropped; the others are clipped to ``[0, W] x [0, H]`` and dropped if the clipped
    width or height is below ``min_size``. Boxes without a score column get score 1.

    Args:
        boxes: ``(N, 4)`` ``x, y, w, h`` or ``(N, 5)`` ``x, y, w, h, score`` in image pixels.
        image_hw: image size ``(H, W)``.
        min_size: smallest width/height (pixels) kept after clipping.
        source: name used in the warnings (e.g. the image file name).

    Returns:
        ``(kept, warnings)``: ``(M, 5)`` float32 boxes in image pixels, and one message per kind
        of problem found (empty when all boxes were fine).

    Raises:
        InputError: the array does not have 4 or 5 columns.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    where = f" for {source}" if source else ""
    if arr.size == 0:
        return empty_boxes(), []
    if arr.ndim == 1 and arr.shape[0] in (4, 5):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise InputError(f"boxes{where} must have shape (N, 4) or (N, 5), got {arr.shape}")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1))], axis=1)
    h, w = float(image_hw[0]), float(image_hw[1])
    warnings: list[str] = []

    def report(mask: np.ndarray, what: str) -> None:
        idx = np.nonzero(mask)[0].tolist()
        if idx:
            shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
            warnings.append(f"dropped {len(idx)} box(es){where} {what} (index {shown})")

    bad = ~np.isfinite(arr).all(axis=1)
    report(bad, "with NaN or infinite values")
    alive = ~bad
    with np.errstate(invalid="ignore"):
        flat = alive & ((arr[:, 2] <= 0) | (arr[:, 3] <= 0))
    report(flat, "with zero or negative width/height")
    alive &= ~flat

    x1 = np.clip(arr[:, 0], 0.0, w)
    y1 = np.clip(arr[:, 1], 0.0, h)
    x2 = np.clip(arr[:, 0] + arr[:, 2], 0.0, w)
    y2 = np.clip(arr[:, 1] + arr[:, 3], 0.0, h)
    with np.errstate(invalid="ignore"):
        outside = alive & ((x2 - x1 <= 0) | (y2 - y1 <= 0))
    report(outside, f"lying outside the {int(w)}x{int(h)} image")
    alive &= ~outside
    with np.errstate(invalid="ignore"):
        tiny = alive & ((x2 - x1 < min_size) | (y2 - y1 < min_size))
    report(tiny, f"smaller than {min_size:g} px after clipping to the image")
    alive &= ~tiny

    with np.errstate(invalid="ignore"):
        clipped = alive & (
            (np.abs(x1 - arr[:, 0]) > 1e-6)
            | (np.abs(y1 - arr[:, 1]) > 1e-6)
            | (np.abs(x2 - (arr[:, 0] + arr[:, 2])) > 1e-6)
            | (np.abs(y2 - (arr[:, 1] + arr[:, 3])) > 1e-6)
        )
    n_clipped = int(clipped.sum())
    if n_clipped:
        warnings.append(f"clipped {n_clipped} box(es){where} to the {int(w)}x{int(h)} image")

    out = np.stack([x1, y1, x2 - x1, y2 - y1, arr[:, 4]], axis=1)[alive]
    return out.astype(np.float32), warnings

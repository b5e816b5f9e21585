"""Drawing of pose predictions on images.

`draw_poses` draws boxes, skeleton links and keypoints with anti-aliased OpenCV primitives at
sub-pixel precision on a copy of the image. Dataset-specific skeletons and colours are passed in
by the caller (they live in `vitpose.dataset_meta`); without colours a hue ramp is used. Line
widths and radii scale with the image size so drawings look alike on thumbnails and 4K frames.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["default_colors", "draw_poses"]

_SHIFT = 4  # sub-pixel bits for cv2 drawing: coordinates are multiplied by 2**_SHIFT
_MAX_COORD = 1e5  # clamp far-away points so that the fixed-point coordinates cannot overflow

ColorsLike = Sequence[Sequence[int]] | np.ndarray | Sequence[int] | None


def default_colors(n: int) -> np.ndarray:
    """``n`` well-separated bright RGB colours (a hue ramp).

    Args:
        n: number of colours.

    Returns:
        ``(n, 3)`` uint8 RGB colours.
    """
    out = np.zeros((max(n, 0), 3), dtype=np.uint8)
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i / max(n, 1)) * 0.85, 0.85, 1.0)
        out[i] = (round(r * 255), round(g * 255), round(b * 255))
    return out


def _colors(colors: ColorsLike, n: int, what: str) -> list[tuple[int, int, int]]:
    if colors is None:
        arr = default_colors(n)
    else:
        arr = np.asarray(colors)
        if arr.ndim == 1 and arr.shape[0] == 3:
            arr = np.tile(arr[None], (n, 1))
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < n:
            raise ValueError(f"{what} must be one RGB colour or {n} RGB colours, got {arr.shape}")
    return [tuple(int(c) for c in row) for row in np.clip(arr[:n], 0, 255)]


def _fixed(x: float, y: float) -> tuple[int, int]:
    scale = 1 << _SHIFT
    x = min(max(x, -_MAX_COORD), _MAX_COORD)
    y = min(max(y, -_MAX_COORD), _MAX_COORD)
    return round(x * scale), round(y * scale)


def draw_poses(
    image_rgb: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    skeleton: Sequence[Sequence[int]],
    keypoint_colors: ColorsLike = None,
    link_colors: ColorsLike = None,
    kpt_thr: float = 0.3,
    boxes_xyxy: np.ndarray | None = None,
    radius: int | None = None,
    thickness: int | None = None,
    box_color: Sequence[int] = (0, 255, 0),
    box_labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Draws pose instances on a copy of an image.

    A keypoint is drawn when its score is at least ``kpt_thr`` and its position is finite; a link
    when both ends are drawn. Boxes come first, links over them, keypoints on top.

    Args:
        image_rgb: ``(H, W, 3)`` uint8 RGB image (not modified).
        keypoints: ``(N, K, 2)`` ``x, y`` in image pixels.
        scores: ``(N, K)`` keypoint confidences.
        skeleton: ``L`` pairs ``(i, j)`` of 0-based keypoint indices to connect.
        keypoint_colors: ``(K, 3)`` RGB colours or one RGB colour; None = hue ramp.
        link_colors: ``(L, 3)`` RGB colours or one RGB colour; None = hue ramp.
        kpt_thr: minimum score of a drawn keypoint.
        boxes_xyxy: optional ``(N, 4)`` (or ``(N, 5)`` with a score) boxes ``x1, y1, x2, y2`` in
            image pixels.
        radius: keypoint radius in pixels; None = about 0.5 % of the longer image side (>= 2).
        thickness: link / box width in pixels; None = about 0.3 % of the longer side (>= 1).
        box_color: RGB colour of the boxes.
        box_labels: optional text per box (e.g. a track id), drawn at its top-left corner.

    Returns:
        A new ``(H, W, 3)`` uint8 RGB image.

    Raises:
        ValueError: inconsistent array shapes or colour tables, or a skeleton index out of range.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image_rgb.shape}")
    canvas = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    h, w = canvas.shape[:2]
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.size == 0:
        kpts = kpts.reshape(0, 0, 2)
    if kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[2] != 2:
        raise ValueError(f"keypoints must have shape (N, K, 2), got {kpts.shape}")
    n, k = kpts.shape[:2]
    conf = np.asarray(scores, dtype=np.float64).reshape(n, k) if n else np.zeros((0, k))
    links = [(int(a), int(b)) for a, b in skeleton]
    for a, b in links:
        if not (0 <= a < k and 0 <= b < k) and n:
            raise ValueError(f"skeleton link ({a}, {b}) is out of range for {k} keypoints")

    long_side = max(h, w)
    r = int(radius) if radius is not None else max(2, round(long_side * 0.005))
    t = int(thickness) if thickness is not None else max(1, round(long_side * 0.003))
    kcol = _colors(keypoint_colors, k, "keypoint_colors")
    lcol = _colors(link_colors, len(links), "link_colors")
    bcol = tuple(int(c) for c in box_color)

    if boxes_xyxy is not None:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, np.shape(boxes_xyxy)[-1])
        font_scale = max(0.4, long_side / 1500.0)
        for i, box in enumerate(boxes):
            if not np.isfinite(box[:4]).all():
                continue
            p1, p2 = _fixed(box[0], box[1]), _fixed(box[2], box[3])
            cv2.rectangle(canvas, p1, p2, bcol, t, cv2.LINE_AA, _SHIFT)
            if box_labels is not None and i < len(box_labels) and box_labels[i]:
                org = (int(max(box[0], 0)), int(max(box[1] - 2 * t, 12 * font_scale)))
                cv2.putText(
                    canvas, str(box_labels[i]), org, cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    bcol, max(1, t // 2 + 1), cv2.LINE_AA,
                )  # fmt: skip

    visible = np.isfinite(kpts).all(axis=2) & np.isfinite(conf) & (conf >= kpt_thr)
    for i in range(n):
        for li, (a, b) in enumerate(links):
            if visible[i, a] and visible[i, b]:
                pa = _fixed(kpts[i, a, 0], kpts[i, a, 1])
                pb = _fixed(kpts[i, b, 0], kpts[i, b, 1])
                cv2.line(canvas, pa, pb, lcol[li], t, cv2.LINE_AA, _SHIFT)
        for j in range(k):
            if visible[i, j]:
                c = _fixed(kpts[i, j, 0], kpts[i, j, 1])
                cv2.circle(canvas, c, r << _SHIFT, kcol[j], -1, cv2.LINE_AA, _SHIFT)
    return canvas

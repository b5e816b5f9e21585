"""Geometry between a source image and a top-down crop, flips, and train-time augmentations.

ViTPose (Xu et al., NeurIPS 2022) uses the top-down pipeline of mmpose 0.x. Every function here
mirrors one official step, written from the maths:

* box ``(x, y, w, h)`` -> ``center`` / ``scale`` (aspect fix to the crop, padding 1.25, scale in
  units of 200 px): official ``_xywh2cs``.
* the classic 3-point affine (``get_affine_transform``) and the UDP warp matrix
  (``get_warp_matrix``, Huang et al., "The Devil is in the Details", CVPR 2020), the crop warp
  (``cv2.warpAffine``, bilinear, constant-0 border) and the joint transform of ``TopDownAffine``.
* heatmap -> image coordinates (``transform_preds``) and the flip-test ``flip_back`` (+ shift).
* train augmentations: ``TopDownRandomFlip``, ``TopDownHalfBodyTransform``,
  ``TopDownGetRandomScaleRotation`` and the box-centre jitter. All random functions take an
  explicit ``np.random.Generator``. Unlike the original, where the jitter is drawn once per box
  when the dataset is built, :func:`random_center_jitter` is meant to be called for every
  sample load, so the jitter changes from epoch to epoch.

Conventions: points are ``(x, y)`` in pixels, integer coordinates are pixel centres; ``center``
is ``(cx, cy)`` in image pixels; ``scale`` is ``(sx, sy)`` in units of 200 px (the box is
``sx * 200`` wide); sizes named ``*_wh`` are ``(width, height)``; images are ``[H, W, C]``.
Arrays are float32, except the classic affine matrix, which is float64 like OpenCV returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = [
    "box_xywh_to_center_scale",
    "center_scale_to_box_xyxy",
    "get_affine_transform",
    "get_warp_matrix",
    "crop_matrix",
    "warp_crop",
    "crop_boxes",
    "affine_points",
    "affine_joints",
    "top_down_affine",
    "transform_preds",
    "flip_back_heatmaps",
    "flip_back_heatmaps_torch",
    "flip_joints",
    "random_flip",
    "half_body_center_scale",
    "random_half_body",
    "random_scale_rotation",
    "random_center_jitter",
]

#: The official unit of ``scale``: the box is ``scale * PIXEL_STD`` pixels.
PIXEL_STD = 200.0

ArrayLike = np.ndarray | Sequence[float]
FlipPairs = np.ndarray | Sequence[Sequence[int]]


# ============================================================================================
# Boxes
# ============================================================================================


def box_xywh_to_center_scale(
    boxes_xywh: ArrayLike,
    image_size_wh: Sequence[int] = (192, 256),
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes -> (centre, scale) of the crops that the model sees (official ``_xywh2cs``).

    The box is first widened or heightened (about its centre) to the crop aspect ratio
    ``W / H`` (0.75 for 192x256), then multiplied by ``padding``. No jitter (see
    :func:`random_center_jitter` for training).

    Args:
        boxes_xywh: ``[N, 4]`` (or ``[4]``) boxes ``(x, y, w, h)`` in image pixels.
        image_size_wh: crop size ``(W, H)``.
        padding: box enlargement factor (1.25 for person boxes, 1.5 for half-body).

    Returns:
        ``center`` float32 ``[N, 2]`` (``[2]`` for one box) in image pixels and ``scale`` float32
        ``[N, 2]`` in units of 200 px.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    single = boxes.ndim == 1
    boxes = boxes.reshape(-1, 4)
    x, y, w, h = boxes.T
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1).astype(np.float32)
    aspect = image_size_wh[0] / image_size_wh[1]
    # Grow the short side so that w / h == aspect (float64, as the official Python floats).
    wider = w > aspect * h
    w_fix = np.where(wider, w, h * aspect)
    h_fix = np.where(wider, w * 1.0 / aspect, h)
    scale = np.stack([w_fix / PIXEL_STD, h_fix / PIXEL_STD], axis=-1).astype(np.float32)
    scale = scale * np.float32(padding)
    if single:
        return center[0], scale[0]
    return center, scale


def center_scale_to_box_xyxy(center: ArrayLike, scale: ArrayLike) -> np.ndarray:
    """(centre, scale) -> the crop's box ``(x1, y1, x2, y2)`` in image pixels.

    Args:
        center: ``[N, 2]`` or ``[2]`` in image pixels.
        scale: ``[N, 2]`` or ``[2]`` in units of 200 px.

    Returns:
        float32 ``[N, 4]`` (``[4]`` for 1-D input).
    """
    c = np.asarray(center, dtype=np.float32)
    half = np.asarray(scale, dtype=np.float32) * np.float32(PIXEL_STD * 0.5)
    return np.concatenate([c - half, c + half], axis=-1).astype(np.float32)


# ============================================================================================
# Affine matrices
# ============================================================================================


def _as_float(a: ArrayLike) -> np.ndarray:
    """``a`` as a numpy float array, keeping float32 / float64 as given (integers -> float64)."""
    arr = np.asarray(a)
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)


def _rotate(point: tuple[float, float], angle_rad: float) -> np.ndarray:
    """Rotate a 2-vector by ``angle_rad`` with the standard rotation matrix."""
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs])


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point that makes ``(a, b, c)`` a right angle at ``b``: ``b + rot90(a - b)``."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(
    center: ArrayLike,
    scale: ArrayLike,
    rot: float,
    output_size_wh: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Classic 3-point affine from a rotated box to the crop (official ``get_affine_transform``).

    Three source points are matched to three crop points: the box centre (+ ``shift`` times the
    box size) to the crop centre ``(W/2, H/2)``; the point half a box *width* above it, rotated by
    ``rot``, to the point ``W/2`` above the crop centre; and the third point completing a right
    angle. Only the box width sets the scale (the box is assumed to have the crop's aspect
    ratio). The points are float32 and solved with ``cv2.getAffineTransform`` as in the original.

    Args:
        center: ``(cx, cy)`` box centre in image pixels.
        scale: ``(sx, sy)`` box size in units of 200 px.
        rot: rotation in degrees. A positive angle shows the image content turned
            counter-clockwise on screen in the crop (e.g. +90: what is right of the centre
            appears above it). Note: the UDP matrix turns the other way for the same angle.
        output_size_wh: crop ``(W, H)``.
        shift: box-relative shift of the centre.
        inv: return the crop -> image matrix instead.

    Returns:
        float64 ``[2, 3]`` matrix (image -> crop, or crop -> image with ``inv``).
    """
    # float32 centre / scale stay float32 (as in the official pipeline): ``scale * 200`` rounds
    # differently in float32 and the matrix would differ by ulps.
    center = _as_float(center)
    size = _as_float(scale) * PIXEL_STD
    shift = np.asarray(shift, dtype=np.float64)
    dst_w, dst_h = output_size_wh[0], output_size_wh[1]
    rot_rad = np.pi * rot / 180.0
    src_dir = _rotate((0.0, size[0] * -0.5), rot_rad)
    dst_dir = np.array([0.0, dst_w * -0.5])

    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + size * shift
    src[1] = center + src_dir + size * shift
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def get_warp_matrix(
    theta: float,
    size_input: ArrayLike,
    size_dst: ArrayLike,
    size_target: ArrayLike,
) -> np.ndarray:
    """UDP warp matrix (official ``get_warp_matrix``).

    Rotates by ``theta`` about ``size_input / 2``, moves that point to ``size_target / 2`` and
    scales by ``size_dst / size_target``. UDP ``TopDownAffine`` calls it with
    ``(rot, center * 2, image_size - 1, scale * 200)``: the image point ``center`` goes to the crop
    point ``(image_size - 1) / 2`` (the middle pixel centre) and the box spans pixel centres
    ``0 .. image_size - 1`` ("(size - 1) scaling"). For a point ``(x, y)``:
    ``x' = s_x (cos t (x - c_x) - sin t (y - c_y) + S_w / 2)``,
    ``y' = s_y (sin t (x - c_x) + cos t (y - c_y) + S_h / 2)`` with ``s = size_dst / size_target``.

    Args:
        theta: rotation in degrees. A positive angle shows the content turned *clockwise* on
            screen in the crop, the opposite of :func:`get_affine_transform` (an official
            quirk; irrelevant for the symmetric random rotation of training).
        size_input: ``(w, h)``: twice the rotation centre.
        size_dst: ``(w, h)`` of the destination in pixel-centre intervals.
        size_target: ``(w, h)`` of the source box.

    Returns:
        float32 ``[2, 3]`` matrix.
    """
    t = math.radians(float(theta))
    # Keep float32 inputs float32: the original evaluates the translation terms in the inputs'
    # precision (float32 centre / scale in TopDownAffine), and we want the very same matrix.
    size_input, size_dst, size_target = (_as_float(a) for a in (size_input, size_dst, size_target))
    sx = size_dst[0] / size_target[0]
    sy = size_dst[1] / size_target[1]
    cs, sn = math.cos(t), math.sin(t)
    m = np.zeros((2, 3), dtype=np.float32)
    m[0, 0] = cs * sx
    m[0, 1] = -sn * sx
    m[0, 2] = sx * (-0.5 * size_input[0] * cs + 0.5 * size_input[1] * sn + 0.5 * size_target[0])
    m[1, 0] = sn * sy
    m[1, 1] = cs * sy
    m[1, 2] = sy * (-0.5 * size_input[0] * sn - 0.5 * size_input[1] * cs + 0.5 * size_target[1])
    return m


def crop_matrix(
    center: ArrayLike,
    scale: ArrayLike,
    rot: float,
    image_size_wh: Sequence[int],
    use_udp: bool,
) -> np.ndarray:
    """The image -> crop matrix of ``TopDownAffine``, used for the image warp and the joints.

    Args:
        center: ``(cx, cy)`` in image pixels.
        scale: ``(sx, sy)`` in units of 200 px.
        rot: rotation in degrees.
        image_size_wh: crop ``(W, H)``.
        use_udp: UDP matrix ``get_warp_matrix(rot, 2 c, size - 1, 200 s)`` (float32) instead of
            the classic ``get_affine_transform(c, s, rot, size)`` (float64).

    Returns:
        ``[2, 3]`` matrix.
    """
    if use_udp:
        # Centre / scale are float32 in the official pipeline; the matrix depends on it by ulps.
        c = np.asarray(center, dtype=np.float32)
        s = np.asarray(scale, dtype=np.float32)
        size = np.asarray(image_size_wh, dtype=np.float64)
        return get_warp_matrix(rot, c * 2.0, size - 1.0, s * np.float32(PIXEL_STD))
    return get_affine_transform(center, scale, rot, image_size_wh)


# ============================================================================================
# Warps and point transforms
# ============================================================================================


def warp_crop(image: np.ndarray, matrix: np.ndarray, size_wh: Sequence[int]) -> np.ndarray:
    """Warp ``image`` with ``matrix`` into a ``size_wh`` crop (bilinear, constant-0 border).

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` (any dtype OpenCV supports; the dtype is kept).
        matrix: ``[2, 3]`` image -> crop matrix.
        size_wh: crop ``(W, H)``.

    Returns:
        ``[H_crop, W_crop(, C)]`` crop.
    """
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        np.asarray(matrix),
        (int(size_wh[0]), int(size_wh[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def crop_boxes(
    image: np.ndarray,
    centers: ArrayLike,
    scales: ArrayLike,
    image_size_wh: Sequence[int],
    use_udp: bool,
    rotations: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``N`` boxes from one image (inference: one warp per box, rotation 0 by default).

    Args:
        image: ``[H, W, C]`` source image.
        centers: ``[N, 2]`` in image pixels.
        scales: ``[N, 2]`` in units of 200 px.
        image_size_wh: crop ``(W, H)``.
        use_udp: UDP or classic matrices (see :func:`crop_matrix`).
        rotations: optional ``[N]`` degrees.

    Returns:
        ``crops`` ``[N, H_crop, W_crop, C]`` (image dtype) and ``matrices`` float64
        ``[N, 2, 3]`` (image -> crop).
    """
    centers = np.asarray(centers, dtype=np.float32).reshape(-1, 2)
    scales = np.asarray(scales, dtype=np.float32).reshape(-1, 2)
    n = centers.shape[0]
    rots = np.zeros(n) if rotations is None else np.asarray(rotations, dtype=np.float64)
    w, h = int(image_size_wh[0]), int(image_size_wh[1])
    image = np.ascontiguousarray(image)
    crops = np.zeros((n, h, w) + image.shape[2:], dtype=image.dtype)
    mats = np.zeros((n, 2, 3), dtype=np.float64)
    for i in range(n):
        mats[i] = crop_matrix(centers[i], scales[i], float(rots[i]), image_size_wh, use_udp)
        crops[i] = warp_crop(image, mats[i], (w, h)).reshape(crops.shape[1:])
    return crops, mats


def affine_points(points: ArrayLike, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``[2, 3]`` affine matrix to points.

    Evaluated in the matrix's precision, as the original does: a float32 (UDP) matrix gives a
    float32 product of homogeneous points (``warp_affine_joints``), a float64 (classic) matrix
    a float64 product (``affine_transform``); the result is float32 either way.

    Args:
        points: ``[..., 2]`` (x, y).
        matrix: ``[2, 3]``.

    Returns:
        float32 ``[..., 2]``.
    """
    m = np.asarray(matrix)
    dtype = np.float32 if m.dtype == np.float32 else np.float64
    p = np.asarray(points, dtype=dtype)
    flat = p.reshape(-1, 2)
    homo = np.concatenate([flat, np.ones((flat.shape[0], 1), dtype=dtype)], axis=1)
    out = np.dot(homo, m.astype(dtype).T)
    return out.reshape(p.shape).astype(np.float32)


def _vis_column(visible: ArrayLike, num: int) -> np.ndarray:
    """Visibility as a ``[K]`` float32 vector (column 0 of a ``[K, C]`` array)."""
    v = np.asarray(visible, dtype=np.float32)
    if v.ndim == 2:
        v = v[:, 0]
    if v.shape != (num,):
        raise ValueError(f"visible must be [K] or [K, C] with K={num}, got {np.shape(visible)}")
    return v


def affine_joints(
    joints: ArrayLike, visible: ArrayLike, matrix: np.ndarray, use_udp: bool
) -> np.ndarray:
    """The joint part of ``TopDownAffine``: image pixels -> crop pixels.

    Without UDP the official code transforms only visible joints (invisible ones keep their
    input coordinates); with UDP it transforms all joints. Extra columns (e.g. z) are kept.

    Args:
        joints: ``[K, D]`` with ``D >= 2``, (x, y, ...) in image pixels.
        visible: ``[K]`` or ``[K, C]`` (column 0 used).
        matrix: ``[2, 3]`` image -> crop matrix (:func:`crop_matrix`).
        use_udp: see above.

    Returns:
        float32 ``[K, D]`` joints in crop pixels.
    """
    out = np.array(joints, dtype=np.float32, copy=True)
    moved = affine_points(out[:, :2], matrix)
    if use_udp:
        out[:, :2] = moved
    else:
        vis = _vis_column(visible, out.shape[0]) > 0
        out[vis, :2] = moved[vis]
    return out


def top_down_affine(
    image: np.ndarray,
    joints: ArrayLike,
    visible: ArrayLike,
    center: ArrayLike,
    scale: ArrayLike,
    rotation: float,
    image_size_wh: Sequence[int],
    use_udp: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Official ``TopDownAffine``: crop the image and move the joints into the crop.

    Args:
        image: ``[H, W, C]`` source image.
        joints: ``[K, D]`` (x, y, ...) in image pixels.
        visible: ``[K]`` or ``[K, C]``.
        center: ``(cx, cy)`` in image pixels.
        scale: ``(sx, sy)`` in units of 200 px.
        rotation: degrees.
        image_size_wh: crop ``(W, H)``.
        use_udp: UDP or classic geometry.

    Returns:
        ``crop`` ``[H_crop, W_crop, C]`` and float32 joints ``[K, D]`` in crop pixels.
    """
    m = crop_matrix(center, scale, rotation, image_size_wh, use_udp)
    crop = warp_crop(image, m, image_size_wh)
    return crop, affine_joints(joints, visible, m, use_udp)


def transform_preds(
    coords: ArrayLike,
    center: ArrayLike,
    scale: ArrayLike,
    output_size_wh: Sequence[int],
    use_udp: bool = False,
) -> np.ndarray:
    """Heatmap coordinates -> image coordinates (official ``transform_preds``, vectorised).

    ``x_img = x_hm * S_w / W + c_x - S_w / 2`` with ``S = 200 * scale``; UDP uses ``(W - 1)``
    instead of ``W`` because it measures sizes between the first and last pixel centres. No
    rotation. Computed in float32 with the official operation order.

    Args:
        coords: ``[N, K, 2]`` (or ``[K, 2]`` with a single centre) in heatmap pixels; extra
            columns beyond 2 are ignored.
        center: ``[N, 2]`` (or ``[2]``) in image pixels.
        scale: ``[N, 2]`` (or ``[2]``) in units of 200 px.
        output_size_wh: heatmap ``(W, H)``.
        use_udp: UDP ``(size - 1)`` scaling.

    Returns:
        float32 ``[N, K, 2]`` (or ``[K, 2]``) in image pixels.
    """
    c = np.asarray(coords, dtype=np.float32)[..., :2]
    single = c.ndim == 2
    c3 = c.reshape(1, *c.shape) if single else c
    ctr = np.asarray(center, dtype=np.float32).reshape(-1, 1, 2)
    size = np.asarray(scale, dtype=np.float32).reshape(-1, 1, 2) * np.float32(PIXEL_STD)
    denom = np.asarray(output_size_wh, dtype=np.float32) - np.float32(1.0 if use_udp else 0.0)
    out = (c3 * (size / denom) + ctr - size * np.float32(0.5)).astype(np.float32)
    return out[0] if single else out


# ============================================================================================
# Flips
# ============================================================================================


def _flip_permutation(num: int, flip_pairs: FlipPairs) -> np.ndarray:
    """Channel permutation that swaps every ``[left, right]`` pair."""
    perm = np.arange(num)
    for left, right in np.asarray(flip_pairs, dtype=np.int64).reshape(-1, 2):
        perm[left], perm[right] = right, left
    return perm


def flip_back_heatmaps(
    heatmaps: np.ndarray, flip_pairs: FlipPairs, shift: bool = False
) -> np.ndarray:
    """Heatmaps of a horizontally flipped crop -> heatmaps of the original crop.

    Swap the channels of every flip pair, then reverse the width axis. With ``shift`` the result
    is moved one column right (``out[..., 1:] = out[..., :-1]``, column 0 kept): the official
    ``shift_heatmap`` compensation of the classic (non-UDP) geometry, where flipping maps pixel
    ``x`` to ``W - 1 - x`` in the image but the heatmap grid is offset by half a stride.

    Args:
        heatmaps: ``[N, K, H, W]``.
        flip_pairs: ``[P, 2]`` ``[left, right]`` channel indices.
        shift: apply the one-column shift.

    Returns:
        ``[N, K, H, W]`` new array of the same dtype.
    """
    hm = np.asarray(heatmaps)
    perm = _flip_permutation(hm.shape[1], flip_pairs)
    out = np.ascontiguousarray(hm[:, perm][..., ::-1])
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


def flip_back_heatmaps_torch(
    heatmaps: torch.Tensor, flip_pairs: FlipPairs, shift: bool = False
) -> torch.Tensor:
    """Torch twin of :func:`flip_back_heatmaps` (same device and dtype, autograd-safe).

    Args:
        heatmaps: ``[N, K, H, W]`` tensor.
        flip_pairs: ``[P, 2]`` ``[left, right]`` channel indices.
        shift: apply the one-column shift.

    Returns:
        ``[N, K, H, W]`` new tensor.
    """
    perm = torch.as_tensor(_flip_permutation(heatmaps.shape[1], flip_pairs), device=heatmaps.device)
    out = heatmaps.index_select(1, perm).flip(-1)
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def flip_joints(
    joints: ArrayLike, visible: ArrayLike, image_width: int, flip_pairs: FlipPairs
) -> tuple[np.ndarray, np.ndarray]:
    """Joints of an image -> joints of the horizontally flipped image (official ``fliplr_joints``).

    Swaps the flip pairs (coordinates and visibility), maps ``x -> image_width - 1 - x`` (pixel
    centres mirror about ``(W - 1) / 2``) and, as the original, zeroes the coordinates of
    invisible joints.

    Args:
        joints: ``[K, D]`` (x, y, ...) in image pixels.
        visible: ``[K]`` or ``[K, C]``.
        image_width: width of the image in pixels.
        flip_pairs: ``[P, 2]``.

    Returns:
        float32 ``joints`` ``[K, D]`` and ``visible`` (same shape as given, float32).
    """
    j = np.asarray(joints, dtype=np.float32)
    v = np.asarray(visible, dtype=np.float32)
    perm = _flip_permutation(j.shape[0], flip_pairs)
    j = j[perm].copy()
    v = v[perm].copy()
    j[:, 0] = image_width - 1 - j[:, 0]
    j *= _vis_column(v, j.shape[0])[:, None]
    return j, v


def random_flip(
    image: np.ndarray,
    joints: ArrayLike,
    visible: ArrayLike,
    center: ArrayLike,
    flip_pairs: FlipPairs,
    rng: np.random.Generator,
    prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """``TopDownRandomFlip``: with probability ``prob`` mirror image, joints and box centre.

    Args:
        image: ``[H, W(, C)]``.
        joints: ``[K, D]`` in image pixels.
        visible: ``[K]`` or ``[K, C]``.
        center: ``(cx, cy)`` box centre in image pixels.
        flip_pairs: ``[P, 2]``.
        rng: random generator (one draw).
        prob: flip probability.

    Returns:
        ``(image, joints, visible, center, flipped)``; when not flipped the inputs are returned
        as float32 copies (the image unchanged).
    """
    c = np.array(center, dtype=np.float32, copy=True)
    if rng.random() >= prob:
        return (image, np.array(joints, dtype=np.float32), np.array(visible, dtype=np.float32),
                c, False)
    width = image.shape[1]
    flipped = np.ascontiguousarray(image[:, ::-1])
    j, v = flip_joints(joints, visible, width, flip_pairs)
    c[0] = width - c[0] - 1
    return flipped, j, v, c, True


# ============================================================================================
# Half body, scale / rotation, centre jitter
# ============================================================================================


def half_body_center_scale(
    joints: ArrayLike,
    visible: ArrayLike,
    upper_body_ids: Sequence[int],
    rng: np.random.Generator,
    image_size_wh: Sequence[int] = (192, 256),
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The box of the upper or the lower body (official ``half_body_transform``).

    Visible joints are split into "upper" (``upper_body_ids``) and all others ("lower"). The
    upper half is chosen if a standard-normal draw is ``< 0.5`` (probability about 0.69) and it
    has at least 3 joints; otherwise the lower half if it has at least 3; otherwise the upper.
    The box is the min/max of the chosen joints about their mean, aspect-fixed to the crop and
    enlarged by ``padding`` (1.5).

    Args:
        joints: ``[K, D]`` (x, y, ...) in image pixels.
        visible: ``[K]`` or ``[K, C]``.
        upper_body_ids: indices of the upper-body joints.
        rng: random generator (one normal draw).
        image_size_wh: crop ``(W, H)`` (for the aspect ratio).
        padding: box enlargement.

    Returns:
        ``(center [2], scale [2])`` float32, or ``None`` when fewer than 2 joints were selected.
    """
    j = np.asarray(joints, dtype=np.float32)
    vis = _vis_column(visible, j.shape[0]) > 0
    is_upper = np.zeros(j.shape[0], dtype=bool)
    is_upper[np.asarray(list(upper_body_ids), dtype=np.int64)] = True
    upper = j[vis & is_upper, :2]
    lower = j[vis & ~is_upper, :2]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    elif len(lower) > 2:
        chosen = lower
    else:
        chosen = upper
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0).astype(np.float32)
    w, h = (chosen.max(axis=0) - chosen.min(axis=0)).astype(np.float64)
    aspect = image_size_wh[0] / image_size_wh[1]
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * np.float32(padding)
    return center, scale


def random_half_body(
    center: ArrayLike,
    scale: ArrayLike,
    joints: ArrayLike,
    visible: ArrayLike,
    upper_body_ids: Sequence[int],
    rng: np.random.Generator,
    num_joints_half_body: int = 8,
    prob: float = 0.3,
    image_size_wh: Sequence[int] = (192, 256),
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``TopDownHalfBodyTransform``: sometimes replace the box by an upper- or lower-body box.

    Triggers only when *more than* ``num_joints_half_body`` joints are visible and a uniform draw
    is ``< prob``; then uses :func:`half_body_center_scale` (8 and 0.3 in the configs, 6 for
    CrowdPose; MPII and InterHand do not use it).

    Args:
        center: ``(cx, cy)`` current box centre.
        scale: ``(sx, sy)`` current box scale (200 px units).
        joints: ``[K, D]`` in image pixels.
        visible: ``[K]`` or ``[K, C]``.
        upper_body_ids: upper-body joint indices of the dataset.
        rng: random generator.
        num_joints_half_body: minimum visible joints (exclusive).
        prob: probability.
        image_size_wh: crop ``(W, H)``.
        padding: half-body box enlargement.

    Returns:
        ``(center, scale, applied)``, float32 ``[2]`` each.
    """
    c = np.array(center, dtype=np.float32, copy=True)
    s = np.array(scale, dtype=np.float32, copy=True)
    j = np.asarray(joints, dtype=np.float32)
    vis = _vis_column(visible, j.shape[0])
    if vis.sum() > num_joints_half_body and rng.random() < prob:
        res = half_body_center_scale(j, vis, upper_body_ids, rng, image_size_wh, padding)
        if res is not None:
            return res[0], res[1], True
    return c, s, False


def random_scale_rotation(
    scale: ArrayLike,
    rng: np.random.Generator,
    scale_factor: float = 0.5,
    rot_factor: float = 40.0,
    rot_prob: float = 0.6,
) -> tuple[np.ndarray, float]:
    """``TopDownGetRandomScaleRotation``: random zoom and rotation.

    ``scale *= clip(1 + scale_factor * N(0,1), 1 - scale_factor, 1 + scale_factor)`` and
    ``rotation = clip(rot_factor * N(0,1), -2 rot_factor, 2 rot_factor)`` with probability
    ``rot_prob``, else 0.

    Args:
        scale: ``(sx, sy)`` in units of 200 px.
        rng: random generator (three draws).
        scale_factor: 0.5 in the configs (0.3 InterHand).
        rot_factor: degrees, 40 in the configs (90 InterHand).
        rot_prob: probability of a rotation.

    Returns:
        ``(scale float32 [2], rotation in degrees)``.
    """
    s_factor = np.clip(rng.standard_normal() * scale_factor + 1,
                       1 - scale_factor, 1 + scale_factor)
    s = (np.asarray(scale, dtype=np.float32) * np.float32(s_factor)).astype(np.float32)
    r_factor = float(np.clip(rng.standard_normal() * rot_factor, -2 * rot_factor, 2 * rot_factor))
    rotation = r_factor if rng.random() <= rot_prob else 0.0
    return s, rotation


def random_center_jitter(
    center: ArrayLike,
    box_wh: ArrayLike,
    rng: np.random.Generator,
    prob: float = 0.3,
    factor: float = 0.4,
) -> np.ndarray:
    """Box-centre jitter: with probability ``prob`` move the centre by up to ``factor / 2`` box.

    ``center += factor * (u - 0.5) * (w, h)`` with ``u`` two independent U[0, 1) draws (up to
    +/-20 % of the box). Call it for every sample load: the original drew it once per box when
    building the dataset, which freezes the "augmentation" for the whole run.

    Args:
        center: ``(cx, cy)`` in image pixels.
        box_wh: ``(w, h)`` of the (un-padded) box in pixels.
        rng: random generator.
        prob: jitter probability.
        factor: jitter range as a fraction of the box size.

    Returns:
        float32 ``[2]`` centre.
    """
    c = np.array(center, dtype=np.float32, copy=True)
    if rng.random() < prob:
        wh = np.asarray(box_wh, dtype=np.float64)
        c = (c + factor * (rng.random(2) - 0.5) * wh).astype(np.float32)
    return c

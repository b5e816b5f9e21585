"""Shared heatmap maths for the codecs: Gaussian targets, arg-max, sub-pixel refinements.

Everything here is plain numpy (+ OpenCV for the Gaussian blur) and vectorised over instances
and keypoints. The decoding steps mirror the official ViTPose (mmpose 0.x) top-down
post-processing step by step, in the same float32 / float64 precision, so that our results agree
with the official ones to the last bit in almost every case:

* :func:`get_max_preds` - integer arg-max per heatmap, ``-1`` where the maximum is ``<= 0``.
* :func:`refine_quarter_offset` - the classic "+/-0.25 px towards the higher neighbour" step
  (Xiao et al., "Simple Baselines for Human Pose Estimation", ECCV 2018).
* :func:`refine_dark` - DARK: Gaussian modulation + second-order Taylor step on the log-heatmap
  (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose Estimation",
  CVPR 2020).
* :func:`refine_dark_udp` - the DARK variant used together with UDP (Huang et al., "The Devil is
  in the Details: Delving into Unbiased Data Processing for Human Pose Estimation", CVPR 2020).
* :func:`heatmap_to_image` - heatmap pixels -> image pixels (classic or UDP scaling).

Coordinates are ``(x, y)`` = (column, row); integer coordinates are pixel centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

try:  # torch is optional here: decoders accept tensors but never need torch themselves.
    import torch
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    torch = None  # type: ignore[assignment]

__all__ = [
    "as_numpy",
    "gaussian_blur",
    "get_max_preds",
    "refine_quarter_offset",
    "refine_dark",
    "refine_dark_udp",
    "heatmap_to_image",
    "msra_targets",
    "msra_unbiased_targets",
    "udp_gaussian_targets",
    "finish_targets",
]


def as_numpy(array, dtype=np.float32) -> np.ndarray:
    """Return ``array`` (numpy array, torch tensor or nested list) as a numpy array of ``dtype``."""
    if torch is not None and isinstance(array, torch.Tensor):
        array = array.detach()
        if array.is_floating_point() and array.dtype not in (torch.float32, torch.float64):
            array = array.float()  # numpy has no bfloat16; half gains nothing either
        array = array.cpu().numpy()
    return np.asarray(array, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Gaussian blur
# --------------------------------------------------------------------------------------------


def gaussian_blur(maps: np.ndarray, kernel: int, zero_pad: bool) -> np.ndarray:
    """Blur each ``[H, W]`` map with an OpenCV Gaussian (``sigma`` derived from ``kernel``).

    OpenCV derives ``sigma = 0.3 * ((kernel - 1) / 2 - 1) + 0.8`` (2.0 for ``kernel=11``).

    Two border conventions are needed:

    * ``zero_pad=False`` (DARK-UDP): ``cv2.GaussianBlur`` on the map itself, whose default border
      is ``BORDER_REFLECT_101``.
    * ``zero_pad=True`` (DARK): the map is first embedded in zeros (``(kernel-1)/2`` on every side),
      blurred, and cropped back, i.e. the outside of the heatmap counts as 0.

    Instead of one OpenCV call per map, all maps are stacked vertically into one tall
    single-channel image, each one padded vertically by the kernel radius (with the same border
    rule OpenCV would apply). Every output row then reads only rows of its own map, and because
    the row length (and so OpenCV's SIMD / tail split of a row) is the same as for a single map,
    the result is bit-identical to a per-map loop. (A multi-channel ``[H, W, C]`` call is *not*
    bit-identical: the single-channel row filter treats the last ``W % 8`` columns differently.)

    Args:
        maps: float32 ``[..., H, W]``; not modified.
        kernel: odd kernel size.
        zero_pad: border convention (see above).

    Returns:
        float32 ``[..., H, W]`` blurred maps.
    """
    if kernel % 2 != 1 or kernel < 1:
        raise ValueError(f"the blur kernel size must be a positive odd number, got {kernel}")
    maps = np.ascontiguousarray(maps, dtype=np.float32)
    lead = maps.shape[:-2]
    height, width = maps.shape[-2:]
    flat = maps.reshape(-1, height, width)
    count = flat.shape[0]
    if count == 0 or kernel == 1:
        return maps.copy()
    radius = (kernel - 1) // 2
    if zero_pad:
        padded = np.pad(flat, ((0, 0), (radius, radius), (radius, radius)))
        tall = padded.reshape(count * (height + 2 * radius), width + 2 * radius)
        out = cv2.GaussianBlur(tall, (kernel, kernel), 0)
        out = out.reshape(count, height + 2 * radius, width + 2 * radius)
        return np.ascontiguousarray(out[:, radius:-radius, radius:-radius]).reshape(maps.shape)
    if height <= radius:
        # Multiple reflections would be needed for the vertical padding; too rare to optimise.
        out = np.empty_like(flat)
        for i in range(count):
            out[i] = cv2.GaussianBlur(flat[i], (kernel, kernel), 0)
        return out.reshape(maps.shape)
    # numpy's 'reflect' (edge not repeated) is OpenCV's BORDER_REFLECT_101; only rows are padded,
    # columns keep OpenCV's own border handling so the row filter sees exactly width W.
    padded = np.pad(flat, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    tall = padded.reshape(count * (height + 2 * radius), width)
    out = cv2.GaussianBlur(tall, (kernel, kernel), 0).reshape(count, height + 2 * radius, width)
    return np.ascontiguousarray(out[:, radius:radius + height]).reshape(*lead, height, width)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer arg-max of every heatmap.

    Args:
        heatmaps: float32 ``[N, K, H, W]``.

    Returns:
        ``coords`` float32 ``[N, K, 2]`` (x, y) in heatmap pixels, ``(-1, -1)`` where the maximum
        is ``<= 0`` (an empty heatmap); ``maxvals`` float32 ``[N, K]``, the heatmap maximum. Ties
        go to the first pixel in row-major order (``np.argmax``).
    """
    n, k, _, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % width, idx // width], axis=-1).astype(np.float32)
    coords[maxvals <= 0.0] = -1.0
    return coords, maxvals.astype(np.float32, copy=False)


def _gather(maps: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``maps[n, k, ys[n, k], xs[n, k]]`` for every (n, k); indices are clipped into range."""
    n, k, height, width = maps.shape
    xs = np.clip(xs, 0, width - 1)
    ys = np.clip(ys, 0, height - 1)
    ni = np.arange(n)[:, None]
    ki = np.arange(k)[None, :]
    return maps[ni, ki, ys, xs]


def refine_quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Classic refinement: move each arg-max 0.25 px towards its higher neighbour, per axis.

    Applied only where ``1 < x < W - 1`` and ``1 < y < H - 1`` (official condition: a peak at
    column 1 or row 1 is *not* refined). The step is ``0.25 * sign(f(x+1) - f(x-1))``, so a zero
    difference gives no move.

    Args:
        heatmaps: float32 ``[N, K, H, W]`` (the raw heatmaps, not blurred).
        coords: float32 ``[N, K, 2]`` integer arg-max from :func:`get_max_preds`.

    Returns:
        float32 ``[N, K, 2]`` refined coordinates (a new array).
    """
    height, width = heatmaps.shape[-2:]
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ok = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
    diff_x = _gather(heatmaps, px + 1, py) - _gather(heatmaps, px - 1, py)
    diff_y = _gather(heatmaps, px, py + 1) - _gather(heatmaps, px, py - 1)
    step = np.stack([np.sign(diff_x), np.sign(diff_y)], axis=-1) * 0.25
    out = coords.copy()
    out[ok] += step[ok].astype(np.float32)
    return out


def refine_dark(heatmaps: np.ndarray, coords: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK refinement (``post_process='unbiased'`` of the classic decoder).

    Steps (as in the official code):

    1. Blur each heatmap with a zero-padded OpenCV Gaussian and rescale it so that its maximum
       equals the original maximum (distribution modulation).
    2. ``log(max(map, 1e-10))``.
    3. Where ``1 < x < W - 2`` and ``1 < y < H - 2`` (the +/-2 neighbours must exist), take one
       Newton step ``p <- p - H^-1 g`` with central differences of spacing 2 for the Hessian
       (``dxx = (f(x+2) - 2f + f(x-2)) / 4``, ``dxy`` from the four diagonal neighbours), skipped
       when the Hessian determinant is exactly 0.

    Args:
        heatmaps: float32 ``[N, K, H, W]``; not modified.
        coords: float32 ``[N, K, 2]`` integer arg-max.
        kernel: odd blur kernel size (11 in every ViTPose config).

    Returns:
        float32 ``[N, K, 2]`` refined coordinates (a new array).
    """
    height, width = heatmaps.shape[-2:]
    blurred = gaussian_blur(heatmaps, kernel, zero_pad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        # An all-zero map gives 0/0 = NaN here, as in the official code; its arg-max is -1 so
        # it is never refined.
        ratio = heatmaps.max(axis=(2, 3)) / blurred.max(axis=(2, 3))
        blurred *= ratio[..., None, None]
        logmap = np.log(np.maximum(blurred, np.float32(1e-10)))
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ok = (px > 1) & (px < width - 2) & (py > 1) & (py < height - 2)

    def f(dx: int, dy: int) -> np.ndarray:
        return _gather(logmap, px + dx, py + dy)

    centre = f(0, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        gx = np.float32(0.5) * (f(1, 0) - f(-1, 0))
        gy = np.float32(0.5) * (f(0, 1) - f(0, -1))
        dxx = np.float32(0.25) * (f(2, 0) - np.float32(2) * centre + f(-2, 0))
        dxy = np.float32(0.25) * (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1))
        dyy = np.float32(0.25) * (f(0, 2) - np.float32(2) * centre + f(0, -2))
        # The official test is done in float32.
        det32 = dxx * dyy - dxy ** 2
    ok &= det32 != 0
    # Solve the 2x2 system in float64 (the official uses a float32 LAPACK inverse; the two agree
    # to about one float32 ulp).
    a, b, d = dxx[ok].astype(np.float64), dxy[ok].astype(np.float64), dyy[ok].astype(np.float64)
    g0, g1 = gx[ok].astype(np.float64), gy[ok].astype(np.float64)
    det = a * d - b * b
    off_x = -(d * g0 - b * g1) / det
    off_y = -(-b * g0 + a * g1) / det
    out = coords.copy()
    out[ok] += np.stack([off_x, off_y], axis=-1).astype(np.float32)
    return out


def refine_dark_udp(heatmaps: np.ndarray, coords: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK refinement as used with UDP (official ``post_dark_udp``).

    Steps:

    1. Blur every heatmap with ``cv2.GaussianBlur`` (border ``REFLECT_101``, no rescaling).
    2. Clip to ``[0.001, 50]`` and take the natural log.
    3. Edge-pad each map by one pixel and read the 3x3 neighbourhood of the arg-max through a
       *flat* index into the whole padded batch; compute the gradient
       ``g = ((f(x+1)-f(x-1))/2, (f(y+1)-f(y-1))/2)`` and Hessian (``dxx = f(x+1) - 2f + f(x-1)``,
       ``dxy = (f(x+1,y+1) - f(x+1,y) - f(x,y+1) + 2f - f(x-1,y) - f(x,y-1) + f(x-1,y-1)) / 2``).
    4. Newton step ``p <- p - (H + eps I)^-1 g`` with ``eps`` = float32 machine epsilon, solved
       in float64.

    Every keypoint is refined, also those with arg-max ``(-1, -1)`` (empty maps). Their flat index
    then points at the padded corner and the neighbours ``(x-1, y-1)`` etc. fall into the previous
    heatmap (or, for the very first one, wrap to the end of the batch). This reproduces the
    official output bit for bit; such keypoints have a score ``<= 0`` anyway.

    Args:
        heatmaps: float32 ``[N, K, H, W]``; not modified.
        coords: float32 ``[N, K, 2]`` integer arg-max.
        kernel: odd blur kernel size (11 in every ViTPose config).

    Returns:
        float32 ``[N, K, 2]`` refined coordinates (a new array).
    """
    n, k, height, width = heatmaps.shape
    logmap = gaussian_blur(heatmaps, kernel, zero_pad=False)
    np.clip(logmap, 0.001, 50, out=logmap)
    np.log(logmap, out=logmap)
    padded = np.pad(logmap, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge").ravel()
    row = width + 2
    # The flat index is formed in float like the official code, then truncated to int.
    index = coords[..., 0] + 1 + (coords[..., 1] + 1) * row
    index = index + (row * (height + 2)) * np.arange(n * k).reshape(n, k)
    index = index.astype(np.int64)

    def f(offset: int) -> np.ndarray:
        # Negative indices wrap around, exactly like numpy fancy indexing in the official code.
        return padded[index + offset]

    centre = f(0)
    ix1, ix1_ = f(1), f(-1)
    iy1, iy1_ = f(row), f(-row)
    ix1y1, ix1_y1_ = f(row + 1), f(-row - 1)
    gx = np.float32(0.5) * (ix1 - ix1_)
    gy = np.float32(0.5) * (iy1 - iy1_)
    dxx = ix1 - np.float32(2) * centre + ix1_
    dyy = iy1 - np.float32(2) * centre + iy1_
    # Same operation order as the official expression (float32 sums are order dependent).
    dxy = np.float32(0.5) * (ix1y1 - ix1 - iy1 + centre + centre - ix1_ - iy1_ + ix1_y1_)
    eps = float(np.finfo(np.float32).eps)
    a = dxx.astype(np.float64) + eps
    b = dxy.astype(np.float64)
    d = dyy.astype(np.float64) + eps
    g0 = gx.astype(np.float64)
    g1 = gy.astype(np.float64)
    det = a * d - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        off_x = (d * g0 - b * g1) / det
        off_y = (-b * g0 + a * g1) / det
    out = coords.astype(np.float64) - np.stack([off_x, off_y], axis=-1)
    return out.astype(np.float32)


def heatmap_to_image(
    coords: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    heatmap_size_wh: Sequence[int],
    use_udp: bool,
) -> np.ndarray:
    """Map heatmap coordinates back to image pixels (official ``transform_preds``, vectorised).

    ``x_img = x_hm * S_w / W_hm + c_x - S_w / 2`` (classic) or ``x_hm * S_w / (W_hm - 1) + ...``
    (UDP: the first and last heatmap pixel centres map onto the box edges), with
    ``S = scale * 200``. Computed in float32 with the official operation order.

    Kept in sync with :func:`vitpose.transforms.transform_preds` (the codecs package is a leaf
    and may not import it; a test checks that both agree).

    Args:
        coords: ``[N, K, 2]`` heatmap coordinates.
        center: ``[N, 2]`` box centres in image pixels.
        scale: ``[N, 2]`` box scales in units of 200 px.
        heatmap_size_wh: ``(W_hm, H_hm)``.
        use_udp: UDP ``(size - 1)`` scaling.

    Returns:
        float32 ``[N, K, 2]`` image coordinates.
    """
    coords = np.asarray(coords, dtype=np.float32)
    center = np.asarray(center, dtype=np.float32).reshape(-1, 1, 2)
    size = np.asarray(scale, dtype=np.float32).reshape(-1, 1, 2) * np.float32(200.0)
    denom = np.asarray(heatmap_size_wh, dtype=np.float32) - np.float32(1.0 if use_udp else 0.0)
    step = size / denom
    return (coords * step + center - size * np.float32(0.5)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Encoding (training targets)
# --------------------------------------------------------------------------------------------


def msra_targets(
    keypoints: np.ndarray,
    visible: np.ndarray,
    input_size_wh: Sequence[int],
    heatmap_size_wh: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Classic MSRA targets: an integer-centred Gaussian (peak exactly 1) in a 6σ+1 window.

    The centre is ``int(joint / stride + 0.5)`` with ``stride = input_size / heatmap_size``;
    ``int`` truncates towards zero, so ``-0.8`` becomes 0 (official behaviour). The weight is
    the visibility, set to 0 when the window lies entirely outside the heatmap (official test:
    ``ul >= size`` or ``br < 0``; note ``br == 0`` keeps weight 1 with an all-zero target).

    Args:
        keypoints: ``[K, 2]`` (x, y) in input-crop pixels.
        visible: ``[K]`` visibility (0/1).
        input_size_wh: crop ``(W, H)``.
        heatmap_size_wh: heatmap ``(W, H)``.
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        ``target`` float32 ``[K, H, W]`` and ``weight`` float32 ``[K]``.
    """
    width, height = int(heatmap_size_wh[0]), int(heatmap_size_wh[1])
    num = keypoints.shape[0]
    stride = np.asarray(input_size_wh, dtype=np.float64) / np.array([width, height], np.float64)
    weight = np.asarray(visible, dtype=np.float32).copy()
    target = np.zeros((num, height, width), dtype=np.float32)
    radius = int(sigma * 3)
    # The float32 Gaussian patch, centred on its middle pixel (value 1 there).
    size = 2 * radius + 1
    ax = np.arange(size, dtype=np.float32)
    patch = np.exp(-((ax[None, :] - radius) ** 2 + (ax[:, None] - radius) ** 2)
                   / np.float32(2 * sigma ** 2))
    for j in range(num):
        # int() truncates towards zero: the official rounding (not floor) for negative values.
        mu_x = int(float(keypoints[j, 0]) / stride[0] + 0.5)
        mu_y = int(float(keypoints[j, 1]) / stride[1] + 0.5)
        x0, y0 = mu_x - radius, mu_y - radius
        x1, y1 = mu_x + radius + 1, mu_y + radius + 1
        if x0 >= width or y0 >= height or x1 < 0 or y1 < 0:
            weight[j] = 0.0
        if weight[j] > 0.5:
            target[j, max(0, y0):min(y1, height), max(0, x0):min(x1, width)] = patch[
                max(0, -y0):min(y1, height) - y0, max(0, -x0):min(x1, width) - x0]
    return target, weight


def msra_unbiased_targets(
    keypoints: np.ndarray,
    visible: np.ndarray,
    input_size_wh: Sequence[int],
    heatmap_size_wh: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """DARK "unbiased" targets: a Gaussian centred on the exact sub-pixel location.

    ``mu = joint / stride`` (``stride = input / heatmap``), evaluated on the whole heatmap
    (no window). The weight is 0 when the 6σ+1 window around ``mu`` lies entirely outside.

    Args and returns as :func:`msra_targets`.
    """
    width, height = int(heatmap_size_wh[0]), int(heatmap_size_wh[1])
    num = keypoints.shape[0]
    stride = np.asarray(input_size_wh, dtype=np.float64) / np.array([width, height], np.float64)
    weight = np.asarray(visible, dtype=np.float32).copy()
    target = np.zeros((num, height, width), dtype=np.float32)
    radius = sigma * 3
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    for j in range(num):
        # float64 like the official (float32 joint / float64 stride).
        mu_x = np.float64(keypoints[j, 0]) / stride[0]
        mu_y = np.float64(keypoints[j, 1]) / stride[1]
        if (mu_x - radius >= width or mu_y - radius >= height
                or mu_x + radius + 1 < 0 or mu_y + radius + 1 < 0):
            weight[j] = 0.0
        if weight[j] > 0.5:
            target[j] = np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * sigma ** 2))
    return target, weight


def udp_gaussian_targets(
    keypoints: np.ndarray,
    visible: np.ndarray,
    input_size_wh: Sequence[int],
    heatmap_size_wh: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """UDP Gaussian targets: a sub-pixel Gaussian in a 6σ+1 window around the rounded centre.

    UDP uses ``stride = (input_size - 1) / (heatmap_size - 1)`` so that the first and last pixel
    centres of crop and heatmap coincide. ``mu = joint / stride``; the window is centred on
    ``int(mu + 0.5)`` and the Gaussian on ``mu`` itself, so the peak is ``<= 1``. The weight is
    the visibility, 0 when the window lies entirely outside.

    Args and returns as :func:`msra_targets`.
    """
    width, height = int(heatmap_size_wh[0]), int(heatmap_size_wh[1])
    num = keypoints.shape[0]
    stride = ((np.asarray(input_size_wh, dtype=np.float64) - 1.0)
              / (np.array([width, height], np.float64) - 1.0))
    weight = np.asarray(visible, dtype=np.float32).copy()
    target = np.zeros((num, height, width), dtype=np.float32)
    radius = int(sigma * 3)
    size = 2 * radius + 1
    ax = np.arange(size, dtype=np.float32)
    for j in range(num):
        mu_x_ac = np.float64(keypoints[j, 0]) / stride[0]
        mu_y_ac = np.float64(keypoints[j, 1]) / stride[1]
        mu_x = int(mu_x_ac + 0.5)
        mu_y = int(mu_y_ac + 0.5)
        x0, y0 = mu_x - radius, mu_y - radius
        x1, y1 = mu_x + radius + 1, mu_y + radius + 1
        if x0 >= width or y0 >= height or x1 < 0 or y1 < 0:
            weight[j] = 0.0
            continue
        if weight[j] <= 0.5:
            continue
        # Patch centre shifted by the sub-pixel remainder (float64, as in the official code).
        cx = size // 2 + (mu_x_ac - mu_x)
        cy = size // 2 + (mu_y_ac - mu_y)
        patch = np.exp(-((ax[None, :] - cx) ** 2 + (ax[:, None] - cy) ** 2) / (2 * sigma ** 2))
        target[j, max(0, y0):min(y1, height), max(0, x0):min(x1, width)] = patch[
            max(0, -y0):min(y1, height) - y0, max(0, -x0):min(x1, width) - x0]
    return target, weight


def finish_targets(
    target: np.ndarray,
    weight: np.ndarray,
    joint_weights: np.ndarray | None = None,
    max_num_joints: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply per-joint loss weights and pad to a fixed number of channels.

    Args:
        target: float32 ``[K, H, W]``.
        weight: float32 ``[K]``.
        joint_weights: optional ``[K]`` (or ``[K, 1]``) dataset joint weights; when given the
            weights are multiplied by them (official ``use_different_joint_weights=True``).
        max_num_joints: optional ``M >= K``: append ``M - K`` all-zero targets with weight 0
            (ViTPose+ pads every dataset to 133 channels so samples can be batched together).

    Returns:
        ``target`` float32 ``[M, H, W]`` and ``weight`` float32 ``[M]``.
    """
    num = target.shape[0]
    if joint_weights is not None:
        jw = np.asarray(joint_weights, dtype=np.float32).reshape(-1)
        if jw.shape[0] != num:
            raise ValueError(f"joint_weights has {jw.shape[0]} entries for {num} keypoints")
        weight = (weight * jw).astype(np.float32)
    if max_num_joints is not None and max_num_joints != num:
        if max_num_joints < num:
            raise ValueError(f"max_num_joints={max_num_joints} is smaller than {num} keypoints")
        padded_t = np.zeros((max_num_joints,) + target.shape[1:], dtype=np.float32)
        padded_t[:num] = target
        padded_w = np.zeros((max_num_joints,), dtype=np.float32)
        padded_w[:num] = weight
        target, weight = padded_t, padded_w
    return target, weight

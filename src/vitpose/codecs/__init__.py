"""Heatmap codecs: training targets (encode) and keypoint decoding, in crop / heatmap space.

* :class:`MSRAHeatmap` - classic targets (optionally DARK-unbiased) and arg-max decoding with
  no refinement, the 0.25 px shift, or DARK.
* :class:`UDPHeatmap` - UDP targets and arg-max + DARK-UDP decoding.
* :func:`decode_heatmaps` - the one-call equivalent of the official ``keypoints_from_heatmaps``
  (heatmaps + crop centre/scale -> image keypoints and scores), used by the inference pipeline.
"""

from __future__ import annotations

import numpy as np

from ._ops import as_numpy, get_max_preds, heatmap_to_image
from .base import HeatmapCodec, check_heatmaps
from .msra import MSRAHeatmap
from .udp import UDPHeatmap

__all__ = [
    "CODECS",
    "DECODE_MODES",
    "HeatmapCodec",
    "MSRAHeatmap",
    "UDPHeatmap",
    "build_codec",
    "decode_heatmaps",
    "get_max_preds",
]

#: Codec classes by name.
CODECS: dict[str, type[HeatmapCodec]] = {"msra": MSRAHeatmap, "udp": UDPHeatmap}

#: Accepted ``mode`` values of :func:`decode_heatmaps`.
DECODE_MODES = ("none", "default", "dark", "unbiased", "udp")


def build_codec(name: str, **kwargs) -> HeatmapCodec:
    """Build a codec by name.

    Args:
        name: ``'msra'`` or ``'udp'`` (case-insensitive).
        **kwargs: constructor arguments (``input_size_wh``, ``heatmap_size_wh``, ``sigma``, ...).

    Returns:
        The codec instance.

    Raises:
        ValueError: unknown name.
    """
    key = str(name).lower()
    if key not in CODECS:
        raise ValueError(f"unknown heatmap codec {name!r}; choose one of {sorted(CODECS)}")
    return CODECS[key](**kwargs)


def decode_heatmaps(
    heatmaps: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    mode: str | None = "udp",
    kernel: int = 11,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps of top-down crops -> image keypoints (official ``keypoints_from_heatmaps``).

    Modes (official arguments in brackets):

    * ``'udp'`` (``use_udp=True, target_type='GaussianHeatmap'``, any ``post_process``): integer
      arg-max + DARK-UDP refinement (OpenCV blur with ``kernel``, clip, log, Newton step) + UDP
      transform ``x * S / (W_hm - 1)``. COCO / MPII / ViTPose+ configs.
    * ``'default'`` (``post_process='default'``): arg-max + 0.25 px towards the higher neighbour
      + classic transform ``x * S / W_hm``. AIC, AP-10K, APT-36K, CrowdPose, OCHuman, WholeBody...
    * ``'dark'`` or ``'unbiased'`` (``post_process='unbiased'``): arg-max + DARK (zero-padded
      blur with ``kernel``, rescaled to the original maximum, log, Taylor step) + classic transform.
    * ``'none'`` or ``None`` (``post_process=None``): integer arg-max + classic transform.

    ``S = scale * 200`` and the result is ``x_img = x_hm * S / W' + c - S / 2``.

    Args:
        heatmaps: ``[N, K, H, W]`` float heatmaps (numpy or torch; the input is not modified).
        center: ``[N, 2]`` crop centres ``(cx, cy)`` in image pixels.
        scale: ``[N, 2]`` crop scales in units of 200 px.
        mode: see above.
        kernel: odd Gaussian kernel size for the DARK variants (11 in every ViTPose config).

    Returns:
        ``coords`` float32 ``[N, K, 2]`` in image pixels and ``scores`` float32 ``[N, K]`` (the
        heatmap maximum at the arg-max, before any refinement).

    Raises:
        ValueError: unknown mode, or shapes that do not fit.
    """
    hm = check_heatmaps(heatmaps)
    n = hm.shape[0]
    center = as_numpy(center).reshape(-1, 2)
    scale = as_numpy(scale).reshape(-1, 2)
    if center.shape[0] != n or scale.shape[0] != n:
        raise ValueError(f"need one center and scale per instance: heatmaps have N={n}, "
                         f"center {center.shape[0]}, scale {scale.shape[0]}")
    key = "none" if mode is None else str(mode).lower()
    if key == "udp":
        codec: HeatmapCodec = UDPHeatmap(blur_kernel=kernel)
    elif key in ("none", "default", "dark", "unbiased"):
        codec = MSRAHeatmap(post_process=key, blur_kernel=kernel)
    else:
        raise ValueError(f"unknown decode mode {mode!r}; choose one of {DECODE_MODES}")
    coords, scores = codec.decode(hm)
    size_wh = (hm.shape[3], hm.shape[2])
    return heatmap_to_image(coords, center, scale, size_wh, codec.use_udp), scores

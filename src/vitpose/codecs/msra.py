"""MSRA heatmap codec: classic integer-centred Gaussian targets and arg-max based decoding.

Targets follow the official ViTPose (mmpose 0.x) ``TopDownGenerateTarget(encoding='MSRA')``
(Xiao et al., "Simple Baselines for Human Pose Estimation", ECCV 2018), optionally with the
DARK "unbiased" sub-pixel Gaussian (Zhang et al., CVPR 2020, ``unbiased_encoding=True``).
Decoding follows the non-UDP branch of the official ``keypoints_from_heatmaps``. These are the
settings of the AIC, AP-10K, APT-36K, CrowdPose, OCHuman, InterHand2.6M and COCO-WholeBody
configs (classic affine, ``stride = input / heatmap``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ops import (
    get_max_preds,
    msra_targets,
    msra_unbiased_targets,
    refine_dark,
    refine_quarter_offset,
)
from .base import HeatmapCodec, check_heatmaps

__all__ = ["MSRAHeatmap"]

_POST_PROCESS = (None, "none", "default", "unbiased", "dark")


class MSRAHeatmap(HeatmapCodec):
    """Classic (non-UDP) heatmap codec.

    Args:
        input_size_wh: crop ``(W, H)``.
        heatmap_size_wh: heatmap ``(W, H)``.
        sigma: target Gaussian sigma in heatmap pixels.
        unbiased: encode with the DARK sub-pixel Gaussian instead of the integer-centred one.
        post_process: decoding refinement:

            * ``None`` / ``'none'``: integer arg-max only.
            * ``'default'``: arg-max + 0.25 px towards the higher neighbour (official default).
            * ``'unbiased'`` / ``'dark'``: arg-max + DARK (blur with ``blur_kernel``, log,
              one Taylor/Newton step).
        blur_kernel: odd OpenCV Gaussian kernel size for DARK (11 in the configs).
    """

    name = "msra"
    use_udp = False

    def __init__(
        self,
        input_size_wh: Sequence[int] = (192, 256),
        heatmap_size_wh: Sequence[int] = (48, 64),
        sigma: float = 2.0,
        unbiased: bool = False,
        post_process: str | None = "default",
        blur_kernel: int = 11,
    ) -> None:
        super().__init__(input_size_wh, heatmap_size_wh, sigma)
        if post_process not in _POST_PROCESS:
            raise ValueError(f"post_process must be one of {_POST_PROCESS}, got {post_process!r}")
        if blur_kernel % 2 != 1 or blur_kernel < 1:
            raise ValueError(f"blur_kernel must be a positive odd number, got {blur_kernel}")
        self.unbiased = bool(unbiased)
        self.post_process = None if post_process == "none" else post_process
        self.blur_kernel = int(blur_kernel)

    def __repr__(self) -> str:
        return (f"{super().__repr__()[:-1]}, unbiased={self.unbiased}, "
                f"post_process={self.post_process!r}, blur_kernel={self.blur_kernel})")

    def _encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fn = msra_unbiased_targets if self.unbiased else msra_targets
        return fn(keypoints, visible, self.input_size_wh, self.heatmap_size_wh, self.sigma)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arg-max + the configured refinement (see the class docstring).

        Args:
            heatmaps: ``[N, K, H, W]`` (numpy or torch).

        Returns:
            ``coords`` float32 ``[N, K, 2]`` in heatmap pixels (``-1`` before refinement where the
            map's maximum is ``<= 0``; such points are never refined here) and ``scores`` float32
            ``[N, K]`` (the heatmap maximum).
        """
        hm = check_heatmaps(heatmaps)
        coords, scores = get_max_preds(hm)
        if self.post_process in ("unbiased", "dark"):
            coords = refine_dark(hm, coords, self.blur_kernel)
        elif self.post_process == "default":
            coords = refine_quarter_offset(hm, coords)
        return coords, scores

"""UDP heatmap codec: unbiased-data-processing Gaussian targets and DARK-UDP decoding.

Mirrors the official ViTPose (mmpose 0.x) ``TopDownGenerateTarget(encoding='UDP',
target_type='GaussianHeatmap')`` and the ``use_udp=True`` branch of ``keypoints_from_heatmaps``
(arg-max + ``post_dark_udp``), from Huang et al., "The Devil is in the Details: Delving into
Unbiased Data Processing for Human Pose Estimation" (CVPR 2020). This is the regime of the
COCO, MPII and all ViTPose+ configs. UDP measures sizes in pixel-centre intervals, so every
scale factor is ``(size - 1)`` based: the first and last pixel centres of the crop, heatmap and
box coincide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ops import get_max_preds, refine_dark_udp, udp_gaussian_targets
from .base import HeatmapCodec, check_heatmaps

__all__ = ["UDPHeatmap"]


class UDPHeatmap(HeatmapCodec):
    """UDP heatmap codec (Gaussian targets).

    Decoding is always integer arg-max + DARK-UDP refinement (OpenCV Gaussian blur with
    ``blur_kernel``, clip to [0.001, 50], log, one Newton step); the official ``post_process``
    setting is ignored when ``use_udp=True``, and there is no 0.25 px shift.

    Args:
        input_size_wh: crop ``(W, H)``.
        heatmap_size_wh: heatmap ``(W, H)``.
        sigma: target Gaussian sigma in heatmap pixels.
        blur_kernel: odd OpenCV Gaussian kernel size (11 in the configs).
    """

    name = "udp"
    use_udp = True

    def __init__(
        self,
        input_size_wh: Sequence[int] = (192, 256),
        heatmap_size_wh: Sequence[int] = (48, 64),
        sigma: float = 2.0,
        blur_kernel: int = 11,
    ) -> None:
        super().__init__(input_size_wh, heatmap_size_wh, sigma)
        if blur_kernel % 2 != 1 or blur_kernel < 1:
            raise ValueError(f"blur_kernel must be a positive odd number, got {blur_kernel}")
        self.blur_kernel = int(blur_kernel)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, blur_kernel={self.blur_kernel})"

    def _encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return udp_gaussian_targets(
            keypoints, visible, self.input_size_wh, self.heatmap_size_wh, self.sigma)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arg-max + DARK-UDP refinement.

        Args:
            heatmaps: ``[N, K, H, W]`` (numpy or torch).

        Returns:
            ``coords`` float32 ``[N, K, 2]`` in heatmap pixels and ``scores`` float32 ``[N, K]``
            (heatmap maximum; a score ``<= 0`` marks an empty map whose coordinates are
            meaningless, as in the official code).
        """
        hm = check_heatmaps(heatmaps)
        coords, scores = get_max_preds(hm)
        coords = refine_dark_udp(hm, coords, self.blur_kernel)
        return coords, scores

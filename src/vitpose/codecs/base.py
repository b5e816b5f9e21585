"""Abstract heatmap codec: keypoints <-> per-joint heatmaps in crop / heatmap space.

A codec turns the keypoints of one top-down crop into training targets (``encode``) and the
network's heatmaps of a batch of crops back into keypoints (``decode``). It knows nothing about
the source image: mapping back to image pixels needs the crop's centre and scale
(:meth:`HeatmapCodec.decode_to_image`). The concrete codecs mirror the official ViTPose
(mmpose 0.x) ``TopDownGenerateTarget`` and ``keypoints_from_heatmaps``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ._ops import as_numpy, finish_targets, heatmap_to_image

__all__ = ["HeatmapCodec"]


class HeatmapCodec(ABC):
    """Base class of the heatmap codecs.

    Args:
        input_size_wh: crop size ``(W, H)`` in pixels, e.g. ``(192, 256)``.
        heatmap_size_wh: heatmap size ``(W, H)``, e.g. ``(48, 64)``.
        sigma: Gaussian sigma of the targets in heatmap pixels (2 in every ViTPose config).
    """

    #: Short registry name (see :data:`vitpose.codecs.CODECS`).
    name: str = ""
    #: Whether decoded heatmap coordinates map back with the UDP ``(size - 1)`` rule.
    use_udp: bool = False

    def __init__(
        self,
        input_size_wh: Sequence[int] = (192, 256),
        heatmap_size_wh: Sequence[int] = (48, 64),
        sigma: float = 2.0,
    ) -> None:
        if len(input_size_wh) != 2 or len(heatmap_size_wh) != 2:
            raise ValueError("input_size_wh and heatmap_size_wh must be (width, height) pairs")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.input_size_wh = (int(input_size_wh[0]), int(input_size_wh[1]))
        self.heatmap_size_wh = (int(heatmap_size_wh[0]), int(heatmap_size_wh[1]))
        self.sigma = sigma

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size_wh={self.input_size_wh}, "
                f"heatmap_size_wh={self.heatmap_size_wh}, sigma={self.sigma})")

    # ---------------------------------------------------------------- encode

    @abstractmethod
    def _encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets ``[K, H, W]`` and weights ``[K]`` from ``keypoints [K, 2]``, ``visible [K]``."""

    def encode(
        self,
        keypoints: np.ndarray,
        visible: np.ndarray,
        *,
        joint_weights: np.ndarray | None = None,
        max_num_joints: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training targets for one crop.

        Args:
            keypoints: ``[K, 2]`` (x, y) in crop pixels (extra columns, e.g. a z of 0, are
                ignored).
            visible: ``[K]`` visibility 0/1 (a ``[K, C]`` array uses column 0).
            joint_weights: optional ``[K]`` per-joint loss weights, multiplied into the weights
                (official ``use_different_joint_weights=True``).
            max_num_joints: optional channel count ``M >= K``: pad with zero targets of weight 0
                (ViTPose+ pads every dataset to 133).

        Returns:
            ``target`` float32 ``[K, H_hm, W_hm]`` (``[M, ...]`` when padded) and ``weight``
            float32 ``[K]`` (``[M]``): the visibility, 0 when the Gaussian window lies entirely
            outside the heatmap, times ``joint_weights``.
        """
        kpts = as_numpy(keypoints)
        if kpts.ndim != 2 or kpts.shape[1] < 2:
            raise ValueError(f"keypoints must be [K, 2], got shape {kpts.shape}")
        vis = as_numpy(visible)
        if vis.ndim == 2:
            vis = vis[:, 0]
        if vis.shape != (kpts.shape[0],):
            raise ValueError(f"visible must be [K] with K={kpts.shape[0]}, got {vis.shape}")
        target, weight = self._encode(kpts[:, :2], vis)
        return finish_targets(target, weight, joint_weights, max_num_joints)

    # ---------------------------------------------------------------- decode

    @abstractmethod
    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints from heatmaps.

        Args:
            heatmaps: ``[N, K, H, W]`` (numpy or torch).

        Returns:
            ``coords`` float32 ``[N, K, 2]`` in heatmap pixels and ``scores`` float32 ``[N, K]``
            (the heatmap maximum; not changed by any refinement).
        """

    def decode_to_image(
        self, heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode and map back to image pixels.

        Args:
            heatmaps: ``[N, K, H, W]``.
            center: ``[N, 2]`` crop centres in image pixels.
            scale: ``[N, 2]`` crop scales in units of 200 px.

        Returns:
            ``coords`` float32 ``[N, K, 2]`` image pixels and ``scores`` float32 ``[N, K]``.
        """
        hm = check_heatmaps(heatmaps)
        coords, scores = self.decode(hm)
        size_wh = (hm.shape[3], hm.shape[2])
        return heatmap_to_image(coords, center, scale, size_wh, self.use_udp), scores


def check_heatmaps(heatmaps) -> np.ndarray:
    """``heatmaps`` (numpy or torch) as a float32 numpy ``[N, K, H, W]`` array."""
    hm = as_numpy(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [N, K, H, W], got shape {hm.shape}")
    return hm

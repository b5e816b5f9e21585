"""What every detector shares: the `Detector` interface, the names `build_detector` takes, the
image check, the whole-image "detector" and the advice given when a learned detector cannot be
had."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ...errors import InputError
from ..boxes import whole_image_box

__all__ = ["DETECTOR_NAMES", "OFFLINE_HINT", "Detector", "WholeImageDetector", "check_image"]

#: The way out when a learned detector cannot be downloaded (part of its error messages).
OFFLINE_HINT = (
    "If this machine is offline, download the detector on another machine and pass its folder "
    "(--detector PATH; files already in the Hugging Face cache are used with HF_HUB_OFFLINE=1), "
    "or use '--detector hog' (weaker, offline), '--detector none' (whole image) or a "
    "detections file."
)


#: Names accepted by `build_detector` (aliases map to the same detector).
DETECTOR_NAMES: dict[str, str] = {
    "auto": "auto",
    "hog": "hog",
    "dfine-n": "transformers",
    "dfine-s": "transformers",
    "rtdetr": "transformers",
    "rt-detr": "transformers",
    "transformers": "transformers",
    "detr": "transformers",
    "none": "whole-image",
    "whole-image": "whole-image",
    "whole": "whole-image",
}


class Detector(Protocol):
    """Anything that maps an RGB image to person boxes."""

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Detects people.

        Args:
            image_rgb: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            ``(N, 5)`` float32 boxes ``x, y, w, h, score`` in image pixels.
        """
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """`image` when it is an ``(H, W, 3)`` uint8 array, else an `InputError`."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise InputError(f"expected an RGB image of shape (H, W, 3), got {shape}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {image.dtype}")
    return image


class WholeImageDetector:
    """Returns one box covering the whole image (for single-person crops)."""

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Args: image_rgb: ``(H, W, 3)`` image. Returns: ``(1, 5)`` float32 box."""
        return whole_image_box(image_rgb.shape[:2])

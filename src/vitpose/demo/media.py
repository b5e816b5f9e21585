"""Pictures and clips of the demo: previews scaled for the browser, the example clip."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..inference.io import read_image
from ..inference.video import VideoWriter

__all__ = ["fit_image", "make_example_video"]


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (never up) so that its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return image
    return cv2.resize(image, (max(2, round(w * s)), max(2, round(h * s))),
                      interpolation=cv2.INTER_AREA)


def make_example_video(image_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                       frames: int = 24, fps: float = 8.0) -> Path:
    """A short mp4 from one image: a slow zoom towards the centre with a small pan.

    Args:
        image_path: the still image.
        out_path: the mp4 to write.
        frames: number of frames; fps: their rate.

    Returns:
        ``out_path``.
    """
    image = read_image(image_path)
    h, w = image.shape[:2]
    out = Path(out_path)
    with VideoWriter(out, fps) as writer:
        for i in range(frames):
            t = i / max(frames - 1, 1)
            zoom = 1.0 + 0.25 * t
            dx = 0.04 * w * math.sin(math.pi * t)
            m = np.array([[zoom, 0.0, (1 - zoom) * w / 2 + dx],
                          [0.0, zoom, (1 - zoom) * h / 2]], np.float32)
            writer.write(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT))
    return out

"""OpenCV's HOG + linear SVM people detector: offline, no download, far weaker than a learned
detector (fairly upright, unoccluded people at least ~64x128 pixels tall; loose boxes)."""

from __future__ import annotations

import cv2
import numpy as np

from ...errors import DownloadError
from ..boxes import empty_boxes, nms_boxes, sanitize_boxes
from .base import check_image

__all__ = ["HOGPersonDetector"]


class HOGPersonDetector:
    """OpenCV's HOG + linear-SVM people detector (Dalal-Triggs): offline but low quality.

    It scans a 64x128 window over an image pyramid, so people shorter than about 128 pixels (after
    the optional ``upscale``) are missed, as are most sitting, lying, heavily occluded or crowded
    people; expect far lower recall than a learned detector. Boxes include the window margin, so
    they are shrunk by ``shrink`` on each side. The score is ``sigmoid(svm_margin)``, in (0, 1)
    but not a calibrated probability.

    Note that the plain ``opencv-python(-headless)`` 5.x wheels dropped the HOG detector (it moved
    to the contrib modules); it is present in OpenCV 4.x and in ``opencv-contrib-python`` 5.x.

    Args:
        max_long_side: images whose longer side exceeds this are downscaled first (speed).
        upscale: extra scale factor applied before detection (e.g. 2.0 to find small people).
        win_stride: window step in pixels (smaller = slower, slightly better).
        scale: pyramid scale step.
        hit_threshold: SVM margin threshold (raise it for fewer false positives).
        nms_iou: IoU above which overlapping detections are merged by NMS.
        shrink: fraction of width / height removed from each side of the raw boxes.

    Raises:
        DownloadError: this OpenCV build has no HOG people detector.
    """

    def __init__(
        self,
        max_long_side: int = 1280,
        upscale: float = 1.0,
        win_stride: int = 8,
        scale: float = 1.05,
        hit_threshold: float = 0.0,
        nms_iou: float = 0.45,
        shrink: tuple[float, float] = (0.1, 0.05),
    ) -> None:
        hog_cls = getattr(cv2, "HOGDescriptor", None)
        people = getattr(cv2, "HOGDescriptor_getDefaultPeopleDetector", None)
        if hog_cls is not None and people is None:
            people = getattr(hog_cls, "getDefaultPeopleDetector", None)
        if hog_cls is None or people is None:
            raise DownloadError(
                f"this OpenCV build ({cv2.__version__}) has no HOG people detector: OpenCV 5 "
                "moved it out of the main wheels. Install 'opencv-contrib-python-headless' or "
                "'opencv-python-headless<5', or use '--detector rtdetr', '--detector none' or a "
                "detections file."
            )
        self._hog = hog_cls()
        self._hog.setSVMDetector(people())
        self.max_long_side = int(max_long_side)
        self.upscale = float(upscale)
        self.win_stride = int(win_stride)
        self.scale = float(scale)
        self.hit_threshold = float(hit_threshold)
        self.nms_iou = float(nms_iou)
        self.shrink = (float(shrink[0]), float(shrink[1]))

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Detects people.

        Args:
            image_rgb: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first.
        """
        image = check_image(image_rgb)
        h, w = image.shape[:2]
        factor = self.upscale
        if max(h, w) * factor > self.max_long_side:
            factor = self.max_long_side / float(max(h, w))
        if abs(factor - 1.0) > 1e-6:
            size = (max(1, round(w * factor)), max(1, round(h * factor)))
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            work = cv2.resize(image, size, interpolation=interp)
        else:
            work = image
        if work.shape[0] < 128 or work.shape[1] < 64:
            return empty_boxes()
        rects, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(work),  # colour: gradients take the strongest channel
            hitThreshold=self.hit_threshold,
            winStride=(self.win_stride, self.win_stride),
            padding=(8, 8),
            scale=self.scale,
        )
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        if rects.shape[0] == 0:
            return empty_boxes()
        margins = np.asarray(weights, dtype=np.float64).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-margins))
        sx, sy = self.shrink
        boxes = np.empty((rects.shape[0], 5), dtype=np.float64)
        boxes[:, 0] = (rects[:, 0] + sx * rects[:, 2]) / factor
        boxes[:, 1] = (rects[:, 1] + sy * rects[:, 3]) / factor
        boxes[:, 2] = rects[:, 2] * (1.0 - 2.0 * sx) / factor
        boxes[:, 3] = rects[:, 3] * (1.0 - 2.0 * sy) / factor
        boxes[:, 4] = scores
        boxes = boxes[nms_boxes(boxes, self.nms_iou)]
        kept, _ = sanitize_boxes(boxes, (h, w))
        return kept

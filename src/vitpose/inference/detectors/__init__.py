"""Person (and animal) detectors for top-down pose estimation.

Every detector returns boxes as a float32 array of shape ``(N, 5)``: ``x, y, w, h, score`` in
original-image pixels (``x, y`` = top-left corner; `vitpose.inference.boxes`). The detectors
are:

* `TransformersDetector` (`transformers_detector`): a DETR-family detector from the Hugging
  Face hub (downloaded through `vitpose.hub.fetch`) or a folder, run through OpenVINO or ONNX
  Runtime (fixed-size input on the CPU; the faster one here, by a calibration remembered in
  the cache) or PyTorch (`runners`, on the package's runtime stack `vitpose.inference.engines`).
  ``auto``, the default, is D-FINE-N (`AUTO_DETECTOR`); D-FINE-S and RT-DETR-R50 are
  selectable (`DETECTOR_MODELS` in `detr`, and docs/DETECTORS.md for the choice). It can keep
  several classes and says which class each box is (`TransformersDetector.detect_labeled`),
  which routes animals to an animal keypoint head.
* `HOGPersonDetector` (`hog`): OpenCV's built-in HOG + linear SVM people detector. Offline, no
  download, but far weaker: it only finds fairly upright, unoccluded people at least ~64x128
  pixels tall, misses many people in crowded or unusual poses, and its boxes are loose. Use it
  for smoke tests or when nothing else is available.
* `WholeImageDetector` (`base`): one box covering the image (for crops that already contain
  one person).

`build_detector` (`registry`) builds a detector from its command-line name. Box helpers
(`sanitize_boxes`, `nms_boxes`, `whole_image_box`) live in `vitpose.inference.boxes` and the
detection files (`load_coco_detections`, `load_box_mapping`, `load_image_ids`, `find_boxes`)
in `vitpose.inference.detection_files`; both are re-exported here.
"""

from ..boxes import nms_boxes, sanitize_boxes, whole_image_box
from ..detection_files import find_boxes, load_box_mapping, load_coco_detections, load_image_ids
from .base import DETECTOR_NAMES, OFFLINE_HINT, Detector, WholeImageDetector
from .detr import (
    ANIMAL_CLASSES,
    AUTO_DETECTOR,
    COCO_CLASSES,
    DEFAULT_TRANSFORMERS_DETECTOR,
    DETECTOR_MODELS,
    DETR_640_PREPROCESS,
    DetrPreprocess,
    decode_detr_detections,
    decode_detr_outputs,
    detector_config,
)
from .hog import HOGPersonDetector
from .registry import build_detector
from .runners import (
    AUTO_DETECTOR_ENGINES,
    DETECTOR_CALIBRATION_ROUNDS,
    DETECTOR_ENGINES,
    DETECTOR_TIE,
    available_detector_engines,
    choose_detector_engine,
    detector_engine_order,
)
from .transformers_detector import TransformersDetector, TransformersPersonDetector, random_detector

__all__ = [
    "ANIMAL_CLASSES",
    "AUTO_DETECTOR",
    "AUTO_DETECTOR_ENGINES",
    "COCO_CLASSES",
    "DEFAULT_TRANSFORMERS_DETECTOR",
    "DETECTOR_CALIBRATION_ROUNDS",
    "DETECTOR_ENGINES",
    "DETECTOR_MODELS",
    "DETECTOR_NAMES",
    "DETECTOR_TIE",
    "DETR_640_PREPROCESS",
    "OFFLINE_HINT",
    "Detector",
    "DetrPreprocess",
    "HOGPersonDetector",
    "TransformersDetector",
    "TransformersPersonDetector",
    "WholeImageDetector",
    "available_detector_engines",
    "build_detector",
    "choose_detector_engine",
    "decode_detr_detections",
    "decode_detr_outputs",
    "detector_config",
    "detector_engine_order",
    "find_boxes",
    "load_box_mapping",
    "load_coco_detections",
    "load_image_ids",
    "nms_boxes",
    "random_detector",
    "sanitize_boxes",
    "whole_image_box",
]

"""Person (and animal) box sources for top-down pose estimation.

Every source returns boxes as a float32 array of shape ``(N, 5)``: ``x, y, w, h, score`` in
original-image pixels (``x, y`` = top-left corner). The sources are:

* `TransformersDetector`: a DETR-family detector from the Hugging Face hub (downloaded through
  `vitpose.hub.fetch`), run through OpenVINO or ONNX Runtime (fixed-size input on the CPU; the
  faster one here, by a calibration remembered in the cache) or PyTorch. ``auto``, the
  default, is D-FINE-N (`AUTO_DETECTOR`); D-FINE-S and RT-DETR-R50 are selectable
  (`DETECTOR_MODELS`, and docs/DETECTORS.md for the choice). It can keep several classes
  and says which class each box is (`TransformersDetector.detect_labeled`), which routes
  animals to an animal keypoint head.
* `HOGPersonDetector`: OpenCV's built-in HOG + linear SVM people detector. Offline, no download,
  but far weaker: it only finds fairly upright, unoccluded people at least ~64x128 pixels tall,
  misses many people in crowded or unusual poses, and its boxes are loose. Use it for smoke tests
  or when nothing else is available.
* `WholeImageDetector`: one box covering the image (for crops that already contain one person).
* detection files: `load_coco_detections` (COCO results format) and `load_box_mapping` (plain
  ``{file_name: [[x, y, w, h, score], ...]}``), looked up per image with `find_boxes`.

`sanitize_boxes` cleans boxes from any source against the image size and returns warnings for the
caller to log; `build_detector` builds a detector from its command-line name.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vitpose.errors import DownloadError, InputError

__all__ = [
    "ANIMAL_CLASSES",
    "AUTO_DETECTOR",
    "COCO_CLASSES",
    "DEFAULT_TRANSFORMERS_DETECTOR",
    "AUTO_DETECTOR_ENGINES",
    "DETECTOR_ENGINES",
    "DETECTOR_MODELS",
    "DETECTOR_NAMES",
    "Detector",
    "HOGPersonDetector",
    "TransformersDetector",
    "TransformersPersonDetector",
    "WholeImageDetector",
    "available_detector_engines",
    "choose_detector_engine",
    "build_detector",
    "decode_detr_detections",
    "detector_config",
    "decode_detr_outputs",
    "find_boxes",
    "load_box_mapping",
    "load_coco_detections",
    "nms_boxes",
    "random_detector",
    "sanitize_boxes",
    "whole_image_box",
]

logger = logging.getLogger(__name__)

#: Hub id of the default learned detector: RT-DETR (ResNet-50-vd), pre-trained on Objects365 and
#: fine-tuned on COCO (about 55 box AP on COCO val2017), Apache-2.0, and the detector the
#: ``transformers`` ViTPose documentation pairs with ViTPose.
DEFAULT_TRANSFORMERS_DETECTOR = "PekingU/rtdetr_r50vd_coco_o365"

_OFFLINE_HINT = (
    "If this machine is offline, download the detector on another machine and pass its folder "
    "(--detector PATH; files already in the Hugging Face cache are used with HF_HUB_OFFLINE=1), "
    "or use '--detector hog' (weaker, offline), '--detector none' (whole image) or a "
    "detections file."
)


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


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise InputError(f"expected an RGB image of shape (H, W, 3), got {shape}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {image.dtype}")
    return image


# --------------------------------------------------------------------------------------------
# Box helpers
# --------------------------------------------------------------------------------------------


def whole_image_box(image_hw: tuple[int, int], score: float = 1.0) -> np.ndarray:
    """One box covering the whole image.

    Args:
        image_hw: image size ``(H, W)``.
        score: score to give the box.

    Returns:
        ``(1, 5)`` float32 ``[[0, 0, W, H, score]]``.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    return np.array([[0.0, 0.0, float(w), float(h), float(score)]], dtype=np.float32)


def nms_boxes(boxes_xywh: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on scored boxes.

    Args:
        boxes_xywh: ``(N, 5)`` boxes ``x, y, w, h, score``.
        iou_threshold: a box is dropped when its IoU with a higher-scoring kept box exceeds this.

    Returns:
        Indices of the kept boxes, highest score first (int64 ``(M,)``).
    """
    b = np.asarray(boxes_xywh, dtype=np.float64)
    if b.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    x1, y1 = b[:, 0], b[:, 1]
    x2, y2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    areas = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    order = np.argsort(-b[:, 4], kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def sanitize_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]],
    image_hw: tuple[int, int],
    min_size: float = 1.0,
    source: str = "",
) -> tuple[np.ndarray, list[str]]:
    """Cleans boxes against an image: clip to the image, drop unusable ones.

    Boxes with a NaN/inf value, zero or negative width/height, or that lie fully outside the
    image are dropped; the others are clipped to ``[0, W] x [0, H]`` and dropped if the clipped
    width or height is below ``min_size``. Boxes without a score column get score 1.

    Args:
        boxes: ``(N, 4)`` ``x, y, w, h`` or ``(N, 5)`` ``x, y, w, h, score`` in image pixels.
        image_hw: image size ``(H, W)``.
        min_size: smallest width/height (pixels) kept after clipping.
        source: name used in the warnings (e.g. the image file name).

    Returns:
        ``(kept, warnings)``: ``(M, 5)`` float32 boxes in image pixels, and one message per kind
        of problem found (empty when all boxes were fine).

    Raises:
        InputError: the array does not have 4 or 5 columns.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    where = f" for {source}" if source else ""
    if arr.size == 0:
        return _empty_boxes(), []
    if arr.ndim == 1 and arr.shape[0] in (4, 5):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise InputError(f"boxes{where} must have shape (N, 4) or (N, 5), got {arr.shape}")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1))], axis=1)
    h, w = float(image_hw[0]), float(image_hw[1])
    warnings: list[str] = []

    def report(mask: np.ndarray, what: str) -> None:
        idx = np.nonzero(mask)[0].tolist()
        if idx:
            shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
            warnings.append(f"dropped {len(idx)} box(es){where} {what} (index {shown})")

    bad = ~np.isfinite(arr).all(axis=1)
    report(bad, "with NaN or infinite values")
    alive = ~bad
    with np.errstate(invalid="ignore"):
        flat = alive & ((arr[:, 2] <= 0) | (arr[:, 3] <= 0))
    report(flat, "with zero or negative width/height")
    alive &= ~flat

    x1 = np.clip(arr[:, 0], 0.0, w)
    y1 = np.clip(arr[:, 1], 0.0, h)
    x2 = np.clip(arr[:, 0] + arr[:, 2], 0.0, w)
    y2 = np.clip(arr[:, 1] + arr[:, 3], 0.0, h)
    with np.errstate(invalid="ignore"):
        outside = alive & ((x2 - x1 <= 0) | (y2 - y1 <= 0))
    report(outside, f"lying outside the {int(w)}x{int(h)} image")
    alive &= ~outside
    with np.errstate(invalid="ignore"):
        tiny = alive & ((x2 - x1 < min_size) | (y2 - y1 < min_size))
    report(tiny, f"smaller than {min_size:g} px after clipping to the image")
    alive &= ~tiny

    with np.errstate(invalid="ignore"):
        clipped = alive & (
            (np.abs(x1 - arr[:, 0]) > 1e-6)
            | (np.abs(y1 - arr[:, 1]) > 1e-6)
            | (np.abs(x2 - (arr[:, 0] + arr[:, 2])) > 1e-6)
            | (np.abs(y2 - (arr[:, 1] + arr[:, 3])) > 1e-6)
        )
    n_clipped = int(clipped.sum())
    if n_clipped:
        warnings.append(f"clipped {n_clipped} box(es){where} to the {int(w)}x{int(h)} image")

    out = np.stack([x1, y1, x2 - x1, y2 - y1, arr[:, 4]], axis=1)[alive]
    return out.astype(np.float32), warnings


# --------------------------------------------------------------------------------------------
# Detection files
# --------------------------------------------------------------------------------------------


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} not found: {p}")
    try:
        with p.open("r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what} {p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {p}: {exc}") from exc


def _parse_box(values: Any, where: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) not in (4, 5):
        raise InputError(f"{where}: a box must be a list [x, y, w, h] or [x, y, w, h, score]")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: box values must be numbers, got {values!r}") from exc
    if len(out) == 4:
        out.append(1.0)
    return out


def _as_array(rows: list[list[float]]) -> np.ndarray:
    if not rows:
        return _empty_boxes()
    with np.errstate(over="ignore"):  # beyond float32: inf, dropped by `sanitize_boxes`
        return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


def load_coco_detections(
    det_json: str | os.PathLike[str],
    images_json: str | os.PathLike[str] | None = None,
    score_thr: float = 0.0,
    category_id: int | None = 1,
) -> dict[str | int, np.ndarray]:
    """Reads detections in COCO results format.

    The file is a list of ``{"image_id", "bbox": [x, y, w, h], "score", "category_id"}`` entries
    (a dict with an ``"annotations"`` list, e.g. ground truth, is accepted too; a missing score
    counts as 1).

    Args:
        det_json: the detections file.
        images_json: a COCO file with an ``"images"`` list (``id``, ``file_name``). When given, the
            result is keyed by file name and contains every listed image (with an empty array when
            it has no detections); detections of unlisted images are skipped with a warning.
            When omitted, the result is keyed by integer ``image_id``.
        score_thr: keep detections with ``score >= score_thr``.
        category_id: keep only this category (1 = person in COCO); None keeps all.

    Returns:
        ``{file_name or image_id: (N, 5) float32 x, y, w, h, score}`` in original-image pixels,
        each sorted by descending score.

    Raises:
        InputError: a file is missing or malformed; the message names the file and the entry.
    """
    det_path = Path(det_json)
    data = _read_json(det_path, "detections file")
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(
            f"detections file {det_path} must hold a list of COCO result entries "
            "({'image_id', 'bbox', 'score', 'category_id'})"
        )
    per_image: dict[int, list[list[float]]] = {}
    for i, entry in enumerate(data):
        where = f"{det_path} entry {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
        if "image_id" not in entry or "bbox" not in entry:
            raise InputError(f"{where}: missing 'image_id' or 'bbox'")
        if category_id is not None and entry.get("category_id", category_id) != category_id:
            continue
        box = _parse_box(entry["bbox"], where)
        try:
            box[4] = float(entry.get("score", 1.0))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: score must be a number") from exc
        if box[4] < score_thr:
            continue
        try:
            image_id = int(entry["image_id"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: image_id must be an integer") from exc
        per_image.setdefault(image_id, []).append(box)

    def finish(rows: list[list[float]]) -> np.ndarray:
        arr = _as_array(rows)
        return arr[np.argsort(-arr[:, 4], kind="stable")]

    if images_json is None:
        return {k: finish(v) for k, v in per_image.items()}

    img_path = Path(images_json)
    info = _read_json(img_path, "images file")
    images = info.get("images") if isinstance(info, dict) else info
    if not isinstance(images, list):
        raise InputError(f"images file {img_path} has no 'images' list")
    id_to_name: dict[int, str] = {}
    for i, im in enumerate(images):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise InputError(f"{img_path} images[{i}]: needs 'id' and 'file_name'")
        id_to_name[int(im["id"])] = str(im["file_name"])
    unknown = sorted(set(per_image) - set(id_to_name))
    if unknown:
        logger.warning(
            "%d image id(s) in %s are not listed in %s and are skipped (e.g. %s)",
            len(unknown), det_path, img_path, unknown[:5],
        )  # fmt: skip
    return {name: finish(per_image.get(image_id, [])) for image_id, name in id_to_name.items()}


def load_box_mapping(json_path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a plain ``{file_name: [[x, y, w, h, score], ...]}`` box file.

    A box may omit the score (``[x, y, w, h]`` counts as score 1); an image may map to an empty
    list.

    Args:
        json_path: the JSON file.

    Returns:
        ``{file_name: (N, 5) float32 x, y, w, h, score}`` in original-image pixels.

    Raises:
        InputError: the file is missing or malformed; the message names the file, key and index.
    """
    p = Path(json_path)
    data = _read_json(p, "box file")
    if not isinstance(data, dict):
        raise InputError(f"box file {p} must hold an object {{file_name: [[x, y, w, h, score]]}}")
    out: dict[str, np.ndarray] = {}
    for name, boxes in data.items():
        if not isinstance(boxes, list):
            raise InputError(f"{p} [{name!r}]: expected a list of boxes")
        rows = [_parse_box(b, f"{p} [{name!r}] box {j}") for j, b in enumerate(boxes)]
        out[str(name)] = _as_array(rows)
    return out


def find_boxes(
    mapping: Mapping[str | int, np.ndarray], image_path: str | os.PathLike[str]
) -> np.ndarray | None:
    """Looks up the boxes of one image in a detections mapping.

    Tries, in order: the path as given, its POSIX form, the file name, and (for integer-keyed
    mappings) the integer value of the file-name stem, so that COCO files such as
    ``000000000785.jpg`` find image id 785.

    Args:
        mapping: a result of `load_coco_detections` or `load_box_mapping`.
        image_path: the image being processed.

    Returns:
        The ``(N, 5)`` boxes, or None when the image is not in the mapping.
    """
    p = Path(image_path)
    for key in (os.fspath(image_path), p.as_posix(), p.name):
        if key in mapping:
            return mapping[key]
    digits = re.fullmatch(r"\D*0*(\d+)", p.stem)
    if digits is not None:
        image_id = int(digits.group(1))
        if image_id in mapping:
            return mapping[image_id]
    return None


# --------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------


class WholeImageDetector:
    """Returns one box covering the whole image (for single-person crops)."""

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Args: image_rgb: ``(H, W, 3)`` image. Returns: ``(1, 5)`` float32 box."""
        return whole_image_box(image_rgb.shape[:2])


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
        image = _check_image(image_rgb)
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
            return _empty_boxes()
        rects, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(work),  # colour: gradients take the strongest channel
            hitThreshold=self.hit_threshold,
            winStride=(self.win_stride, self.win_stride),
            padding=(8, 8),
            scale=self.scale,
        )
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        if rects.shape[0] == 0:
            return _empty_boxes()
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


def decode_detr_outputs(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    image_hw: tuple[int, int],
    label_ids: Sequence[int],
    threshold: float,
    sigmoid: bool,
) -> np.ndarray:
    """Turns one image's DETR-family outputs into scored pixel boxes of the wanted classes.

    Same as `decode_detr_detections` without the class ids.
    """
    return decode_detr_detections(logits, pred_boxes, image_hw, label_ids, threshold, sigmoid)[0]


def decode_detr_detections(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    image_hw: tuple[int, int],
    label_ids: Sequence[int],
    threshold: float,
    sigmoid: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Turns one image's DETR-family outputs into scored pixel boxes and their classes.

    Args:
        logits: ``(Q, C)`` class logits per query; with ``sigmoid=False`` the last column is the
            "no object" class.
        pred_boxes: ``(Q, 4)`` ``cx, cy, w, h`` normalised to ``[0, 1]`` of the network input,
            which covers the whole (unpadded) image.
        image_hw: original image size ``(H, W)``.
        label_ids: class indices to keep (e.g. the id of "person").
        threshold: minimum score.
        sigmoid: True for focal-loss models (D-FINE, RT-DETR, Deformable/Conditional DETR): a
            query's class is its most likely one among ``label_ids`` and its score that
            class's sigmoid. False for softmax models (DETR, YOLOS): a query is kept when its
            most likely real class is in ``label_ids``.

    Returns:
        ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first, and the
        ``(N,)`` int64 class ids of the boxes.
    """
    logits = np.asarray(logits, dtype=np.float64)
    boxes = np.asarray(pred_boxes, dtype=np.float64)
    ids = np.asarray(list(label_ids), dtype=np.int64)
    if logits.shape[0] == 0 or ids.size == 0:
        return _empty_boxes(), np.zeros((0,), np.int64)
    if sigmoid:
        probs = 1.0 / (1.0 + np.exp(-logits[:, ids]))
        best = ids[probs.argmax(axis=1)]
        scores = probs.max(axis=1)
        keep = scores >= threshold
    else:
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        real = p[:, :-1]
        best = real.argmax(axis=1)
        scores = real.max(axis=1)
        keep = np.isin(best, ids) & (scores >= threshold)
    h, w = float(image_hw[0]), float(image_hw[1])
    b = boxes[keep]
    out = np.empty((b.shape[0], 5), dtype=np.float64)
    out[:, 0] = (b[:, 0] - 0.5 * b[:, 2]) * w
    out[:, 1] = (b[:, 1] - 0.5 * b[:, 3]) * h
    out[:, 2] = b[:, 2] * w
    out[:, 3] = b[:, 3] * h
    out[:, 4] = scores[keep]
    order = np.argsort(-out[:, 4], kind="stable")
    return out[order].astype(np.float32), best[keep][order].astype(np.int64)


_CV2_INTERP = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LANCZOS4, 2: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}


class _Preprocess:
    """Resize / rescale / normalise settings read from a hub ``preprocessor_config.json``.

    ``transformers`` 5 image processors need Pillow or torchvision, neither of which vitpose
    depends on, so the settings are applied here with OpenCV instead.
    """

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.do_resize = bool(cfg.get("do_resize", True))
        size = dict(cfg.get("size") or {"shortest_edge": 800, "longest_edge": 1333})
        self.size = size
        resample = cfg.get("resample")
        self.interp = _CV2_INTERP.get(
            int(resample) if resample is not None else 2, cv2.INTER_LINEAR
        )
        self.do_rescale = bool(cfg.get("do_rescale", True))
        self.rescale_factor = float(cfg.get("rescale_factor", 1 / 255))
        self.do_normalize = bool(cfg.get("do_normalize", True))
        self.mean = np.asarray(cfg.get("image_mean", [0.485, 0.456, 0.406]), dtype=np.float32)
        self.std = np.asarray(cfg.get("image_std", [0.229, 0.224, 0.225]), dtype=np.float32)

    @property
    def fixed_size(self) -> bool:
        """True when every image is resized to the same ``(height, width)``."""
        return self.do_resize and "height" in self.size and "width" in self.size

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """Network input size for an ``(h, w)`` image."""
        if not self.do_resize:
            return h, w
        s = self.size
        if "height" in s and "width" in s:
            return int(s["height"]), int(s["width"])
        if "shortest_edge" in s:
            short, long_ = float(min(h, w)), float(max(h, w))
            f = float(s["shortest_edge"]) / short
            if s.get("longest_edge") and long_ * f > float(s["longest_edge"]):
                f = float(s["longest_edge"]) / long_
            return max(1, round(h * f)), max(1, round(w * f))
        if "max_height" in s and "max_width" in s:
            f = min(float(s["max_height"]) / h, float(s["max_width"]) / w)
            return max(1, round(h * f)), max(1, round(w * f))
        if "longest_edge" in s:
            f = float(s["longest_edge"]) / max(h, w)
            return max(1, round(h * f)), max(1, round(w * f))
        return h, w

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(3, h, w)`` float32 network input."""
        h, w = image.shape[:2]
        oh, ow = self.output_hw(h, w)
        x = image if (oh, ow) == (h, w) else cv2.resize(image, (ow, oh), interpolation=self.interp)
        x = x.astype(np.float32)
        if self.do_rescale:
            x *= self.rescale_factor
        if self.do_normalize:
            x = (x - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1))


#: COCO detector classes that are routed to an animal keypoint set (AP-10K and APT-36K annotate
#: mammals; birds have no keypoint set in ViTPose+).
ANIMAL_CLASSES: tuple[str, ...] = (
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
)

#: Short names of the learned detectors -> Hugging Face hub ids (see docs/DETECTORS.md for the
#: published COCO box AP, licences and the speed measured here). All are DETR-family models that
#: ``transformers`` loads with ``AutoModelForObjectDetection``.
DETECTOR_MODELS: dict[str, str] = {
    "dfine-n": "ustc-community/dfine-nano-coco",
    "dfine-s": "ustc-community/dfine-small-coco",
    "rtdetr": DEFAULT_TRANSFORMERS_DETECTOR,
}
#: What ``--detector auto`` (the default) loads: D-FINE-N, 42.8 COCO box AP, Apache-2.0, ~4 M
#: parameters, about 30 ms per 640x640 frame through ONNX Runtime or OpenVINO on a 2-core Zen 5
#: CPU.
AUTO_DETECTOR = "dfine-n"
#: Engines a learned detector runs on.
DETECTOR_ENGINES = ("auto", "onnxruntime", "openvino", "torch")
#: The runtimes ``engine="auto"`` chooses between on the CPU (fixed input size), the faster
#: one by a short calibration remembered beside the cached export (`choose_detector_engine`);
#: this order breaks ties and is the order tried. PyTorch when none is installed.
AUTO_DETECTOR_ENGINES = ("openvino", "onnxruntime")
#: Engines within this fraction of the fastest tie (the first of `AUTO_DETECTOR_ENGINES` wins).
DETECTOR_TIE = 0.03
#: Interleaved timing rounds of that calibration (the fastest round of each engine counts).
DETECTOR_CALIBRATION_ROUNDS = 5

_AUTO_WARNED = False


def _detector_graph(model: Any) -> Any:
    """The detector as a plain function of a fixed-size tensor:
    ``pixel_values [B, 3, H, W] -> (logits [B, Q, C], pred_boxes [B, Q, 4])`` (what ONNX export
    and any inference engine take)."""
    import torch

    class DetectorGraph(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.inner(pixel_values=pixel_values)
            return out.logits, out.pred_boxes

    return DetectorGraph(model).eval()


class _TorchRunner:
    """Runs the detector graph with PyTorch (any input size, any device)."""

    name = "torch"

    def __init__(self, graph: Any, device: Any) -> None:
        self.graph = graph.to(device)
        self.device = device

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            logits, boxes = self.graph(torch.from_numpy(batch).to(self.device))
        return logits.float().cpu().numpy(), boxes.float().cpu().numpy()


def _export_detector(graph: Any, input_hw: tuple[int, int], path: Path | None) -> bytes | Path:
    """The ONNX graph of the detector for a fixed input size: the cached file `path` when it
    exists, else exported (and written to `path` when given, else returned as bytes)."""
    import warnings

    import torch

    if path is not None and path.is_file():
        return path
    x = torch.zeros((1, 3, *input_hw), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.cpu(), (x,), buffer, input_names=["pixel_values"],
                          output_names=["logits", "pred_boxes"], opset_version=17,
                          dynamo=False)
    source = buffer.getvalue()
    if path is None:
        return source
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(source)
    os.replace(tmp, path)
    logger.info("exported the detector to %s", path)
    return path


class _OrtRunner:
    """Runs the detector graph with ONNX Runtime (CPU), exported once for a fixed input size
    (the session settings are the pose engines', `engines.runtime.ort_session`).

    The export is cached in ``path`` (when given) so that later runs start at once.
    """

    name = "onnxruntime"

    def __init__(self, graph: Any, input_hw: tuple[int, int], path: Path | None) -> None:
        import torch

        from .engines.runtime import ort_session

        source = _export_detector(graph, input_hw, path)
        self.path = path
        # no busy-waiting between runs: the pose model needs the cores in between
        self.session = ort_session(source, threads=max(1, torch.get_num_threads()),
                                   spinning=False, quiet=True, what="the detector")

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [self.session.run(None, {"pixel_values": np.ascontiguousarray(batch[i:i + 1])})
                for i in range(len(batch))]
        return (np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]))


class _OpenVinoRunner:
    """Runs the detector graph with OpenVINO (CPU, float32), compiled from the cached ONNX
    export with the pose engines' settings (`engines.runtime.compile_openvino`: latency hint,
    compiled-model cache on disk)."""

    name = "openvino"

    def __init__(self, graph: Any, input_hw: tuple[int, int], path: Path | None) -> None:
        import tempfile

        import torch

        from .engines.runtime import compile_openvino

        source = _export_detector(graph, input_hw, path)
        self.path = path
        threads = max(1, torch.get_num_threads())
        if isinstance(source, Path):
            self.compiled, _ = compile_openvino(source, torch.float32, threads=threads)
        else:  # not cacheable (e.g. random weights): compiled from a temporary file
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "detector.onnx"
                file.write_bytes(source)
                self.compiled, _ = compile_openvino(file, torch.float32, threads=threads,
                                                    use_cache=False)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [self.request.infer({0: np.ascontiguousarray(batch[i:i + 1])})
                for i in range(len(batch))]
        return (np.concatenate([np.asarray(o[0], np.float32) for o in outs]),
                np.concatenate([np.asarray(o[1], np.float32) for o in outs]))


def _onnx_cache_path(model_id: str, model: Any, input_hw: tuple[int, int],
                     onnx_dir: str | os.PathLike[str] | None) -> Path | None:
    """Where the ONNX export of a hub/folder detector is cached (None: not cacheable)."""
    import hashlib

    import torch
    import transformers

    parts = [model_id, str(getattr(model.config, "_commit_hash", None)), str(input_hw),
             transformers.__version__, torch.__version__]
    local = Path(model_id)
    if local.is_dir():
        parts += [f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(local.glob("*.safetensors"))]
        parts += [f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(local.glob("*.bin"))]
    elif parts[1] == "None":
        return None  # neither a hub snapshot nor a folder: no stable key
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    if onnx_dir is not None:
        base = Path(onnx_dir)
    elif os.environ.get("VITPOSE_CACHE"):
        base = Path(os.environ["VITPOSE_CACHE"]).expanduser() / "detectors"
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(cache) / "vitpose" / "detectors"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", local.name if local.is_dir() else model_id)
    return base / f"{safe}-{input_hw[0]}x{input_hw[1]}-{key}.onnx"


def _detector_source_error(model_id: str, exc: BaseException) -> InputError:
    """The one message for a folder, file or downloaded repository that is not a detector
    (downloads fail earlier, with `vitpose.hub.fetch`'s message)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    local = Path(model_id)
    where = "folder" if local.is_dir() else ("file" if local.exists() else "model")
    return InputError(
        f"the detector {where} {model_id!r} is not a transformers object-detection model "
        f"({reason}); give a detector name ({', '.join(sorted(DETECTOR_NAMES))}), a Hugging "
        "Face hub id or a folder with config.json, the weights and preprocessor_config.json"
    )


def _is_hub_id(name: str) -> bool:
    """``owner/name`` with the hub's characters (not a path such as ``./x`` or ``/a/b``)."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None


#: What a detector takes from its hub repository: configs (model, image processor) and weights.
_DETECTOR_FILES = ("*.json", "*.safetensors")


def _fetch_detector(model_id: str, revision: str | None,
                    cache_dir: str | os.PathLike[str] | None) -> Path:
    """The local snapshot of a hub detector, through the one hub door (`vitpose.hub.fetch`:
    the cache first, one quick reachability check, the offline rules and messages)."""
    from vitpose.hub import fetch

    folder = fetch(model_id, what=f"the detector {model_id!r}", allow_patterns=_DETECTOR_FILES,
                   revision=revision, cache_dir=cache_dir, advice=_OFFLINE_HINT)
    if not any(folder.glob("*.safetensors")):  # an older repository: PyTorch .bin weights
        folder = fetch(model_id, what=f"the detector {model_id!r}",
                       allow_patterns=(*_DETECTOR_FILES, "*.bin"), revision=revision,
                       cache_dir=cache_dir, advice=_OFFLINE_HINT)
    return folder


def _load_transformers_detector(model_id: str, revision: str | None,
                                cache_dir: str | os.PathLike[str] | None
                                ) -> tuple[Any, dict[str, Any]]:
    """The ``transformers`` model and image-processor settings of a local folder or hub id
    (downloaded through `_fetch_detector`)."""
    try:
        from transformers import AutoModelForObjectDetection
        from transformers.image_processing_base import ImageProcessingMixin
    except ImportError as exc:
        raise DownloadError(
            "the learned person detector needs the 'transformers' package "
            f"(pip install transformers): {exc}. {_OFFLINE_HINT}"
        ) from exc
    local = Path(os.path.expanduser(model_id))
    if local.is_file():
        raise _detector_source_error(model_id, InputError("a file, not a model folder"))
    if not local.is_dir() and not _is_hub_id(model_id):
        raise InputError(f"the detector folder {model_id!r} does not exist (a hub detector is "
                         "named owner/name)")
    folder = local if local.is_dir() else _fetch_detector(model_id, revision, cache_dir)
    try:
        model = AutoModelForObjectDetection.from_pretrained(folder)
        proc_cfg, _ = ImageProcessingMixin.get_image_processor_dict(os.fspath(folder))
    except ImportError as exc:  # e.g. a model whose backbone needs timm
        raise DownloadError(
            f"the detector {model_id!r} needs a package that is not installed: {exc}. "
            f"{_OFFLINE_HINT}"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _detector_source_error(model_id, exc) from exc
    if not local.is_dir():  # a hub snapshot folder is named by its commit: the export's key
        model.config._commit_hash = folder.name
    return model, proc_cfg


_RunnerType = Any  # _OrtRunner | _OpenVinoRunner


def _build_runner(name: str, graph: Any, hw: tuple[int, int], path: Path | None) -> _RunnerType:
    return (_OpenVinoRunner if name == "openvino" else _OrtRunner)(graph, hw, path)


def _first_runner(graph: Any, hw: tuple[int, int], path: Path | None, names: Sequence[str],
                  model_id: str, strict: bool) -> _RunnerType | None:
    """The first of the `names` engines that runs the graph (None: none does, PyTorch runs
    it). ``strict``: an engine that fails is an error (a named engine), else a warning."""
    for name in names:
        try:
            return _build_runner(name, graph, hw, path)
        except Exception as exc:  # noqa: BLE001 - an exporter/runtime gap: torch still works
            if strict:
                raise InputError(f"the detector {model_id!r} could not be run with "
                                 f"{_ENGINE_TITLES[name]}: {exc}") from exc
            logger.warning("the detector %s does not run with %s (%s)", model_id,
                           _ENGINE_TITLES[name], exc)
    return None


def choose_detector_engine(seconds: Mapping[str, float],
                           order: Sequence[str] = AUTO_DETECTOR_ENGINES) -> str:
    """What ``--det-engine auto`` keeps, given seconds per frame of each candidate engine:
    the fastest; one within `DETECTOR_TIE` of it that comes first in `order` wins a tie (a
    difference below the noise of a timing does not flip the choice between runs)."""
    if not seconds:
        raise ValueError("no detector engine was timed")
    best = min(seconds.values())
    rank = {name: i for i, name in enumerate(order)}
    near = [name for name, t in seconds.items() if t <= best * (1.0 + DETECTOR_TIE)]
    return min(near, key=lambda name: (rank.get(name, len(rank)), seconds[name]))


def _time_runners(runners: Mapping[str, Any], hw: tuple[int, int],
                  rounds: int = DETECTOR_CALIBRATION_ROUNDS) -> dict[str, float]:
    """Seconds per frame of each runner on one random input: a warm-up call, then `rounds`
    interleaved rounds; the fastest round of each counts (the least disturbed one)."""
    import time

    batch = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    for runner in runners.values():
        runner(batch)
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            t0 = time.perf_counter()
            runner(batch)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _choice_record(path: Path | None) -> Path | None:
    """Where the `auto` engine choice of a cached export is remembered (beside it)."""
    return None if path is None else path.with_name(path.stem + ".auto-engine.json")


def _calibration_fingerprint(names: Sequence[str]) -> dict[str, Any]:
    """What makes the choice differ: the machine, threads and runtime versions, the
    candidates."""
    from .engines.auto import machine_fingerprint

    return {**machine_fingerprint(), "candidates": list(names)}


def _remembered_engine(record: Path | None, fingerprint: Mapping[str, Any]) -> str | None:
    if record is None or not record.is_file():
        return None
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != json.loads(json.dumps(
            fingerprint)):
        return None
    engine = data.get("engine")
    return engine if engine in fingerprint["candidates"] else None


def _remember_engine(record: Path | None, fingerprint: Mapping[str, Any], engine: str,
                     seconds: Mapping[str, float]) -> None:
    if record is None:
        return
    data = {"engine": engine, "ms_per_frame": {k: round(1e3 * v, 3) for k, v in seconds.items()},
            "fingerprint": dict(fingerprint)}
    tmp = record.with_name(record.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, record)
    except OSError as exc:  # a read-only cache: calibrate again next time
        logger.warning("cannot remember the detector engine choice in %s: %s", record, exc)


def _calibrated_runner(graph: Any, hw: tuple[int, int], path: Path | None,
                       names: Sequence[str], model_id: str) -> _RunnerType | None:
    """``--det-engine auto`` among several installed runtimes: the choice remembered for this
    export, machine and runtimes, else a short calibration (`_time_runners`,
    `choose_detector_engine`), remembered beside the cached export."""
    fingerprint = _calibration_fingerprint(names)
    record = _choice_record(path)
    remembered = _remembered_engine(record, fingerprint)
    if remembered is not None:
        ordered = [remembered, *[n for n in names if n != remembered]]
        return _first_runner(graph, hw, path, ordered, model_id, strict=False)
    runners: dict[str, Any] = {}
    for name in names:
        runner = _first_runner(graph, hw, path, [name], model_id, strict=False)
        if runner is not None:
            runners[name] = runner
    if len(runners) < 2:
        return next(iter(runners.values()), None)
    seconds = _time_runners(runners, hw)
    engine = choose_detector_engine(seconds, names)
    logger.info("detector engine auto: %s (%s ms per frame)", _ENGINE_TITLES[engine],
                ", ".join(f"{_ENGINE_TITLES[k]} {1e3 * v:.1f}" for k, v in seconds.items()))
    _remember_engine(record, fingerprint, engine, seconds)
    return runners[engine]


class TransformersDetector:
    """A DETR-family object detector (D-FINE, RT-DETR, ...) loaded with ``transformers``.

    Loads the model with ``transformers.AutoModelForObjectDetection`` and reads the image
    processor settings (``preprocessor_config.json``) from the same repository; resizing and
    normalisation are done with OpenCV so that Pillow/torchvision are not needed. The wanted
    classes are looked up by name in ``config.id2label``. Weights are downloaded on first use
    and cached by ``huggingface_hub``.

    The network is run as a plain function of a fixed-size tensor (`_detector_graph`): when the
    input size is fixed and the device is the CPU, through OpenVINO or ONNX Runtime, whichever
    a short calibration found faster here (`AUTO_DETECTOR_ENGINES`, `choose_detector_engine`;
    exported once and cached under ``~/.cache/vitpose/detectors`` with the choice; 3-5x faster
    than eager PyTorch on CPUs), else through PyTorch.

    Args:
        model_id: a name of `DETECTOR_MODELS`, a hub id or a local folder of a ``transformers``
            object-detection model.
        threshold: minimum detection score.
        device: torch device string (``"cuda"``, ``"cpu"``, ...); None picks CUDA when available.
        labels: class names to keep (case-insensitive), e.g. ``("person",)``.
        strict_labels: every name in ``labels`` must be a class of the model (else only one
            of them must be).
        revision: hub revision (branch, tag or commit).
        cache_dir: hub cache folder (default: the ``huggingface_hub`` cache).
        nms_iou: optional NMS IoU for duplicate removal (DETR models are usually NMS-free).
        max_detections: keep at most this many boxes per image.
        engine: ``"auto"``, ``"openvino"``, ``"onnxruntime"`` or ``"torch"``.
        onnx_dir: where ONNX exports are cached (default ``$VITPOSE_CACHE/detectors``).

    Raises:
        DownloadError: ``transformers`` is not installed, or the model cannot be fetched (offline,
            unknown id); the message suggests the offline alternatives.
        InputError: the folder is not an object detector; the model lacks a requested class; an
            unknown engine.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_TRANSFORMERS_DETECTOR,
        threshold: float = 0.5,
        device: str | None = None,
        labels: Sequence[str] = ("person",),
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        nms_iou: float | None = None,
        max_detections: int = 100,
        engine: str = "auto",
        strict_labels: bool = True,
        onnx_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        model_id = DETECTOR_MODELS.get(model_id, model_id)
        _check_engine(engine)
        model, proc_cfg = _load_transformers_detector(model_id, revision, cache_dir)
        self._setup(model, proc_cfg, model_id=model_id, threshold=threshold, device=device,
                    labels=labels, strict_labels=strict_labels, nms_iou=nms_iou,
                    max_detections=max_detections, engine=engine, onnx_dir=onnx_dir,
                    cacheable=True)

    @classmethod
    def from_model(cls, model: Any, preprocessor_config: Mapping[str, Any], *,
                   name: str = "custom detector", threshold: float = 0.5,
                   device: str | None = None, labels: Sequence[str] = ("person",),
                   strict_labels: bool = True, nms_iou: float | None = None,
                   max_detections: int = 100, engine: str = "auto") -> TransformersDetector:
        """A detector around an already built ``transformers`` detection model (e.g. one with
        random weights from its config, for tests and speed measurements)."""
        _check_engine(engine)
        self = cls.__new__(cls)
        self._setup(model, dict(preprocessor_config), model_id=name, threshold=threshold,
                    device=device, labels=labels, strict_labels=strict_labels, nms_iou=nms_iou,
                    max_detections=max_detections, engine=engine, onnx_dir=None, cacheable=False)
        return self

    def _setup(self, model: Any, proc_cfg: Mapping[str, Any], *, model_id: str,
               threshold: float, device: str | None, labels: Sequence[str],
               strict_labels: bool, nms_iou: float | None, max_detections: int, engine: str,
               onnx_dir: str | os.PathLike[str] | None, cacheable: bool) -> None:
        import torch

        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        by_name = {name.lower(): i for i, name in id2label.items()}
        wanted = [name.lower() for name in labels]
        missing = [name for name in wanted if name not in by_name]
        found = [name for name in wanted if name in by_name]
        if (strict_labels and missing) or not found:
            some = ", ".join(sorted(set(id2label.values()))[:90])
            raise InputError(
                f"the detector {model_id!r} has no class named {', '.join(map(repr, missing))}; "
                f"its classes are: {some}"
            )
        self.label_ids = sorted(by_name[name] for name in found)
        self.class_names = {i: id2label[i] for i in self.label_ids}
        self.model_id = model_id
        self.threshold = float(threshold)
        self.nms_iou = nms_iou
        self.max_detections = int(max_detections)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval()
        self.preprocess = _Preprocess(proc_cfg)
        focal = getattr(model.config, "use_focal_loss", None)
        self._focal: bool | None = bool(focal) if focal is not None else None
        self._num_labels = len(id2label)
        graph = _detector_graph(self.model)
        self.runner: _TorchRunner | _OrtRunner | _OpenVinoRunner
        choices = _engine_order(engine, self.preprocess.fixed_size, self.device)
        if choices and not self.preprocess.fixed_size:
            raise InputError(f"the detector {model_id!r} resizes images to varying sizes; "
                             f"the {engine} engine needs a fixed input size (use torch)")
        hw = self.preprocess.output_hw(1, 1)
        path = _onnx_cache_path(model_id, model, hw, onnx_dir) if choices and cacheable else None
        if engine == "auto" and len(choices) > 1:
            self.runner = _calibrated_runner(graph, hw, path, choices, model_id)
        else:
            self.runner = _first_runner(graph, hw, path, choices, model_id, strict=engine != "auto")
        if self.runner is None:
            self.runner = _TorchRunner(graph, self.device)
        self.engine = self.runner.name

    def _uses_sigmoid(self, num_logits: int) -> bool:
        if self._focal is not None:
            return self._focal
        return num_logits != self._num_labels + 1  # softmax models add a "no object" column

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Detects the wanted classes in one image.

        Args:
            image_rgb: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first.
        """
        return self.detect_labeled_batch([image_rgb])[0][0]

    def detect_labeled(self, image_rgb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Boxes and the class name of each box (see `detect_labeled_batch`)."""
        return self.detect_labeled_batch([image_rgb])[0]

    def detect_batch(self, images_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detects in several images; one ``(N_i, 5)`` float32 array per image."""
        return [boxes for boxes, _ in self.detect_labeled_batch(images_rgb)]

    def detect_labeled_batch(self, images_rgb: Sequence[np.ndarray]
                             ) -> list[tuple[np.ndarray, list[str]]]:
        """Detects in several images (one forward pass when the model input is fixed-size).

        Args:
            images_rgb: ``(H, W, 3)`` uint8 RGB images, sizes may differ.

        Returns:
            Per image: ``(N, 5)`` float32 ``x, y, w, h, score`` in its pixels, best first, and
            the ``N`` class names (``config.id2label``) of the boxes.
        """
        images = [_check_image(im) for im in images_rgb]
        if not images:
            return []
        if self.preprocess.fixed_size:
            groups = [list(range(len(images)))]
        else:
            groups = [[i] for i in range(len(images))]
        results: list[tuple[np.ndarray, list[str]]] = [(_empty_boxes(), [])] * len(images)
        for group in groups:
            batch = np.stack([self.preprocess(images[i]) for i in group])
            logits, pred_boxes = self.runner(batch)
            sigmoid = self._uses_sigmoid(logits.shape[-1])
            for j, i in enumerate(group):
                hw = images[i].shape[:2]
                boxes, ids = decode_detr_detections(
                    logits[j], pred_boxes[j], hw, self.label_ids, self.threshold, sigmoid
                )
                if self.nms_iou is not None and boxes.shape[0] > 1:
                    keep = nms_boxes(boxes, self.nms_iou)
                    boxes, ids = boxes[keep], ids[keep]
                boxes, ids = boxes[: self.max_detections], ids[: self.max_detections]
                boxes, kept = _sanitize_keep(boxes, hw)
                results[i] = (boxes, [self.class_names[int(c)] for c in ids[kept]])
        return results


#: The former name (person boxes only by default).
TransformersPersonDetector = TransformersDetector


def _sanitize_keep(boxes: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`sanitize_boxes` that also says which input rows were kept (to keep labels aligned)."""
    marked = np.concatenate([boxes[:, :4], np.arange(len(boxes), dtype=np.float64)[:, None]
                             + 1.0], axis=1) if len(boxes) else boxes
    out, _ = sanitize_boxes(marked, hw)
    if not len(out):
        return _empty_boxes(), np.zeros((0,), np.int64)
    rows = np.rint(out[:, 4] - 1.0).astype(np.int64)
    out[:, 4] = boxes[rows, 4]
    return out, rows


def _check_engine(engine: str) -> None:
    if engine not in DETECTOR_ENGINES:
        raise InputError(f"unknown detector engine {engine!r}; choose one of "
                         f"{', '.join(DETECTOR_ENGINES)}")


def _have_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _have_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


_ENGINE_TITLES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "torch": "PyTorch"}


def _engine_order(engine: str, fixed_size: bool, device: Any) -> list[str]:
    """The exported-graph engines to try (an empty list: PyTorch).

    A named engine is that engine. ``auto`` on the CPU with a fixed input size is the installed
    runtimes of `AUTO_DETECTOR_ENGINES`, in that order (with two, a calibration picks the
    faster: `_calibrated_runner`); elsewhere PyTorch.
    """
    if engine == "torch":
        return []
    if engine != "auto":
        if engine == "openvino" and not _have_openvino():
            raise InputError("the openvino detector engine needs openvino: "
                             "pip install 'vitpose[openvino]'")
        if engine == "openvino" and getattr(device, "type", "cpu") != "cpu":
            raise InputError("the openvino detector engine runs on the CPU (--device cpu)")
        return [engine]
    if not fixed_size or getattr(device, "type", "cpu") != "cpu":
        return []
    have = {"onnxruntime": _have_onnxruntime(), "openvino": _have_openvino()}
    return [name for name in AUTO_DETECTOR_ENGINES if have[name]]


def available_detector_engines(device: str = "cpu") -> list[str]:
    """The detector engines that can run on `device` here (torch always)."""
    out = ["torch"]
    if str(device).startswith("cpu"):
        out += [n for n, ok in (("onnxruntime", _have_onnxruntime()),
                                ("openvino", _have_openvino())) if ok]
    return out

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


def _is_model_source(name: str) -> bool:
    """A hub id (``owner/name``) or a local path rather than a detector name."""
    return "/" in name or os.sep in name or Path(name).exists()


def build_detector(name: str, device: str | None = None, **kwargs: Any) -> Detector:
    """Builds a detector from its command-line name.

    Args:
        name: ``"auto"`` (D-FINE-N, `AUTO_DETECTOR`; offline: says so once and falls back to
            HOG), ``"dfine-n"``, ``"dfine-s"``, ``"rtdetr"`` (see `DETECTOR_MODELS`),
            ``"transformers"`` / ``"detr"`` (pass ``model_id=``), a hub id or a local folder of
            a ``transformers`` detector, ``"hog"``, or ``"none"`` / ``"whole-image"``.
        device: where a neural detector runs (the pose model's device, so that
            ``--device cpu`` or ``cuda:1`` holds for both); ignored by HOG and whole-image.
        **kwargs: passed to the detector's constructor (``labels=``, ``engine=``, ...;
            options a fallback detector does not take are dropped for it).

    Returns:
        A callable ``image_rgb -> (N, 5) x, y, w, h, score`` boxes (learned detectors also have
        ``detect_labeled`` with the class of each box).

    Raises:
        InputError: unknown name, not a detector, missing classes, unexpected keyword arguments.
        DownloadError: the detector's model or library is unavailable (except for ``auto``).
    """
    key = str(name).strip()
    kind = DETECTOR_NAMES.get(key.lower())
    if kind is None and _is_model_source(key):
        kind = "transformers"
        kwargs.setdefault("model_id", key)
    if kind is None:
        raise InputError(
            f"unknown detector {name!r}; choose one of: {', '.join(sorted(DETECTOR_NAMES))}, a "
            "Hugging Face hub id or a local detector folder"
        )
    if kind == "transformers" and key.lower() in DETECTOR_MODELS:
        kwargs.setdefault("model_id", DETECTOR_MODELS[key.lower()])
    if kind == "auto":
        kwargs.setdefault("model_id", DETECTOR_MODELS[AUTO_DETECTOR])
        try:
            return _build(TransformersDetector, name, device, kwargs)
        except DownloadError as exc:
            global _AUTO_WARNED
            if not _AUTO_WARNED:
                _AUTO_WARNED = True
                logger.warning(
                    "the default detector (auto) is D-FINE-N (%s), which is not available: %s "
                    "If this machine is offline, download it on another machine and pass its "
                    "folder with --detector PATH (files already in the Hugging Face cache are "
                    "used with HF_HUB_OFFLINE=1). Using OpenCV's HOG person detector instead "
                    "(offline, lower quality).",
                    kwargs["model_id"], str(exc).replace(_OFFLINE_HINT, "").strip(),
                )
            return _build(HOGPersonDetector, "hog", device, {})
    cls: type = {
        "hog": HOGPersonDetector,
        "transformers": TransformersDetector,
        "whole-image": WholeImageDetector,
    }[kind]
    return _build(cls, name, device, kwargs)


def _build(cls: type, name: str, device: str | None, kwargs: dict[str, Any]) -> Any:
    params = inspect.signature(cls).parameters
    if device is not None and "device" in params:
        kwargs.setdefault("device", device)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise InputError(f"invalid options for detector {name!r}: {exc}") from exc
    return cls(**kwargs)


#: The 80 COCO detection classes in the order of the ``id2label`` of the COCO detectors.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: The image processor settings of the `DETECTOR_MODELS` (all resize to 640x640, scale to 0..1).
DETR_640_PREPROCESS: dict[str, Any] = {
    "do_resize": True, "size": {"height": 640, "width": 640}, "resample": 2, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": False,
}


def detector_config(name: str) -> Any:
    """The ``transformers`` config of a `DETECTOR_MODELS` entry (the architecture of the hub
    checkpoint, COCO classes), to build it with random weights for tests and speed
    measurements (speed does not depend on the weights). D-FINE settings follow transformers'
    conversion script of the original checkpoints."""
    import transformers

    labels = dict(enumerate(COCO_CLASSES))
    common = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}}
    hgnet = {"model_type": "hgnet_v2", "layer_type": "basic", "embedding_size": 32,
             "hidden_sizes": [128, 256, 512, 1024], "stem_channels": [3, 16, 16],
             "stage_in_channels": [16, 64, 256, 512], "stage_mid_channels": [16, 32, 64, 128],
             "stage_out_channels": [64, 256, 512, 1024], "stage_num_blocks": [1, 1, 2, 1],
             "stage_downsample": [False, True, True, True],
             "stage_light_block": [False, False, True, True], "stage_kernel_size": [3, 3, 5, 5],
             "stage_numb_of_layers": [3, 3, 3, 3], "use_learnable_affine_block": True}
    if name == "dfine-n":
        return transformers.DFineConfig(
            backbone_config={**hgnet, "out_indices": [3, 4]}, num_feature_levels=2,
            encoder_ffn_dim=512, encode_proj_layers=[1], d_model=128, encoder_hidden_dim=128,
            decoder_ffn_dim=512, encoder_in_channels=[512, 1024], decoder_n_points=[6, 6],
            decoder_in_channels=[128, 128], feat_strides=[16, 32], depth_mult=0.5,
            decoder_layers=3, hidden_expansion=0.34, **common)
    if name == "dfine-s":
        return transformers.DFineConfig(
            backbone_config={**hgnet, "out_indices": [2, 3, 4]}, decoder_layers=3,
            hidden_expansion=0.5, depth_mult=0.34, decoder_n_points=[3, 6, 3],
            encoder_in_channels=[256, 512, 1024], **common)
    if name == "rtdetr":
        return transformers.RTDetrConfig(**common)
    raise InputError(f"no built-in config for detector {name!r}; choose one of "
                     f"{', '.join(DETECTOR_MODELS)}")


def random_detector(name: str = AUTO_DETECTOR, **kwargs: Any) -> TransformersDetector:
    """A `TransformersDetector` with the architecture of a `DETECTOR_MODELS` entry and random
    weights (seeded), for tests and speed measurements without the hub."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = detector_config(name)
    cls = (transformers.DFineForObjectDetection if name.startswith("dfine")
           else transformers.RTDetrForObjectDetection)
    model = cls(config).eval()
    return TransformersDetector.from_model(model, DETR_640_PREPROCESS, name=f"{name} (random)",
                                           **kwargs)

"""Person box sources for top-down pose estimation.

Every source returns boxes as a float32 array of shape ``(N, 5)``: ``x, y, w, h, score`` in
original-image pixels (``x, y`` = top-left corner). The sources are:

* `TransformersPersonDetector`: a DETR-family detector from the Hugging Face hub (RT-DETR by
  default), run with ``transformers``. This is the recommended detector.
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
    "DEFAULT_TRANSFORMERS_DETECTOR",
    "DETECTOR_NAMES",
    "Detector",
    "HOGPersonDetector",
    "TransformersPersonDetector",
    "WholeImageDetector",
    "build_detector",
    "decode_detr_outputs",
    "find_boxes",
    "load_box_mapping",
    "load_coco_detections",
    "nms_boxes",
    "sanitize_boxes",
    "whole_image_box",
]

logger = logging.getLogger(__name__)

#: Hub id of the default learned detector: RT-DETR (ResNet-50-vd), pre-trained on Objects365 and
#: fine-tuned on COCO (about 55 box AP on COCO val2017), Apache-2.0, and the detector the
#: ``transformers`` ViTPose documentation pairs with ViTPose.
DEFAULT_TRANSFORMERS_DETECTOR = "PekingU/rtdetr_r50vd_coco_o365"

_OFFLINE_HINT = (
    "Without internet access use '--detector hog' (weaker, offline), '--detector none' "
    "(whole image) or a detections file."
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

    Args:
        logits: ``(Q, C)`` class logits per query; with ``sigmoid=False`` the last column is the
            "no object" class.
        pred_boxes: ``(Q, 4)`` ``cx, cy, w, h`` normalised to ``[0, 1]`` of the network input,
            which covers the whole (unpadded) image.
        image_hw: original image size ``(H, W)``.
        label_ids: class indices to keep (e.g. the id of "person").
        threshold: minimum score.
        sigmoid: True for focal-loss models (RT-DETR, Deformable/Conditional DETR): the score of
            a query is the highest sigmoid over ``label_ids``. False for softmax models (DETR,
            YOLOS): a query is kept when its most likely real class is in ``label_ids``.

    Returns:
        ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first.
    """
    logits = np.asarray(logits, dtype=np.float64)
    boxes = np.asarray(pred_boxes, dtype=np.float64)
    ids = np.asarray(list(label_ids), dtype=np.int64)
    if logits.shape[0] == 0 or ids.size == 0:
        return _empty_boxes()
    if sigmoid:
        probs = 1.0 / (1.0 + np.exp(-logits[:, ids]))
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
    out = out[np.argsort(-out[:, 4], kind="stable")]
    return out.astype(np.float32)


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


class TransformersPersonDetector:
    """A DETR-family object detector from the Hugging Face hub, keeping person boxes.

    Loads the model with ``transformers.AutoModelForObjectDetection`` and reads the image
    processor settings (``preprocessor_config.json``) from the same repository; resizing and
    normalisation are done with OpenCV so that Pillow/torchvision are not needed. The wanted
    class ids are looked up by name in ``config.id2label``. Weights are downloaded on first use
    and cached by ``huggingface_hub``.

    Args:
        model_id: hub id or local folder of a ``transformers`` object-detection model.
        threshold: minimum detection score.
        device: torch device string (``"cuda"``, ``"cpu"``, ...); None picks CUDA when available.
        labels: class names to keep (case-insensitive), e.g. ``("person",)``.
        revision: hub revision (branch, tag or commit).
        cache_dir: hub cache folder (default: the ``huggingface_hub`` cache).
        nms_iou: optional NMS IoU for duplicate removal (DETR models are usually NMS-free).
        max_detections: keep at most this many boxes per image.

    Raises:
        DownloadError: ``transformers`` is not installed, or the model cannot be fetched (offline,
            unknown id); the message suggests the offline alternatives.
        InputError: the model has none of the requested ``labels``.
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
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForObjectDetection
            from transformers.image_processing_base import ImageProcessingMixin
        except ImportError as exc:
            raise DownloadError(
                "the learned person detector needs the 'transformers' package "
                f"(pip install transformers): {exc}. {_OFFLINE_HINT}"
            ) from exc

        kwargs: dict[str, Any] = {"revision": revision}
        if cache_dir is not None:
            kwargs["cache_dir"] = os.fspath(cache_dir)
        try:
            model = AutoModelForObjectDetection.from_pretrained(model_id, **kwargs)
            proc_cfg, _ = ImageProcessingMixin.get_image_processor_dict(model_id, **kwargs)
        except (OSError, ValueError) as exc:
            raise DownloadError(
                f"could not load the detector {model_id!r} from the Hugging Face hub or the "
                f"local cache: {exc}. {_OFFLINE_HINT}"
            ) from exc
        except ImportError as exc:  # e.g. a model whose backbone needs timm
            raise DownloadError(
                f"the detector {model_id!r} needs a package that is not installed: {exc}. "
                f"{_OFFLINE_HINT}"
            ) from exc
        except Exception as exc:  # network stacks raise their own types (httpx, requests, ...)
            if type(exc).__module__.split(".")[0] in {"httpx", "requests", "huggingface_hub"}:
                raise DownloadError(
                    f"could not download the detector {model_id!r}: {exc}. {_OFFLINE_HINT}"
                ) from exc
            raise

        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        wanted = {name.lower() for name in labels}
        self.label_ids = sorted(i for i, name in id2label.items() if name.lower() in wanted)
        if not self.label_ids:
            some = ", ".join(sorted(set(id2label.values()))[:20])
            raise InputError(
                f"detector {model_id!r} has no class named {sorted(wanted)}; its classes "
                f"include: {some}"
            )
        self.model_id = model_id
        self.threshold = float(threshold)
        self.nms_iou = nms_iou
        self.max_detections = int(max_detections)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.preprocess = _Preprocess(proc_cfg)
        focal = getattr(model.config, "use_focal_loss", None)
        self._focal: bool | None = bool(focal) if focal is not None else None
        self._num_labels = len(id2label)

    def _uses_sigmoid(self, num_logits: int) -> bool:
        if self._focal is not None:
            return self._focal
        return num_logits != self._num_labels + 1  # softmax models add a "no object" column

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Detects people in one image.

        Args:
            image_rgb: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first.
        """
        return self.detect_batch([image_rgb])[0]

    def detect_batch(self, images_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detects people in several images (one forward pass when the model input is fixed-size).

        Args:
            images_rgb: ``(H, W, 3)`` uint8 RGB images, sizes may differ.

        Returns:
            One ``(N_i, 5)`` float32 array per image, ``x, y, w, h, score`` in its pixels.
        """
        import torch

        images = [_check_image(im) for im in images_rgb]
        if not images:
            return []
        if self.preprocess.fixed_size:
            groups = [list(range(len(images)))]
        else:
            groups = [[i] for i in range(len(images))]
        results: list[np.ndarray] = [_empty_boxes()] * len(images)
        for group in groups:
            batch = np.stack([self.preprocess(images[i]) for i in group])
            pixel_values = torch.from_numpy(batch).to(self.device)
            with torch.inference_mode():
                out = self.model(pixel_values=pixel_values)
            logits = out.logits.float().cpu().numpy()
            pred_boxes = out.pred_boxes.float().cpu().numpy()
            sigmoid = self._uses_sigmoid(logits.shape[-1])
            for j, i in enumerate(group):
                hw = images[i].shape[:2]
                boxes = decode_detr_outputs(
                    logits[j], pred_boxes[j], hw, self.label_ids, self.threshold, sigmoid
                )
                if self.nms_iou is not None and boxes.shape[0] > 1:
                    boxes = boxes[nms_boxes(boxes, self.nms_iou)]
                boxes, _ = sanitize_boxes(boxes[: self.max_detections], hw)
                results[i] = boxes
        return results


#: Names accepted by `build_detector` (aliases map to the same detector).
DETECTOR_NAMES: dict[str, str] = {
    "hog": "hog",
    "rtdetr": "transformers",
    "rt-detr": "transformers",
    "transformers": "transformers",
    "detr": "transformers",
    "none": "whole-image",
    "whole-image": "whole-image",
    "whole": "whole-image",
}


def build_detector(name: str, device: str | None = None, **kwargs: Any) -> Detector:
    """Builds a detector from its command-line name.

    Args:
        name: ``"hog"``, ``"rtdetr"`` / ``"transformers"`` / ``"detr"`` (a hub model, see
            `TransformersPersonDetector`; pass ``model_id=`` for another one), or ``"none"`` /
            ``"whole-image"``.
        device: where a neural detector runs (the pose model's device, so that
            ``--device cpu`` or ``cuda:1`` holds for both); ignored by HOG and whole-image.
        **kwargs: passed to the detector's constructor.

    Returns:
        A callable ``image_rgb -> (N, 5) x, y, w, h, score`` boxes.

    Raises:
        InputError: unknown name or unexpected keyword arguments.
        DownloadError: the detector's model or library is unavailable.
    """
    kind = DETECTOR_NAMES.get(str(name).strip().lower())
    if kind is None:
        raise InputError(
            f"unknown detector {name!r}; choose one of: {', '.join(sorted(DETECTOR_NAMES))}"
        )
    cls: type = {
        "hog": HOGPersonDetector,
        "transformers": TransformersPersonDetector,
        "whole-image": WholeImageDetector,
    }[kind]
    if device is not None and "device" in inspect.signature(cls).parameters:
        kwargs.setdefault("device", device)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise InputError(f"invalid options for detector {name!r}: {exc}") from exc
    return cls(**kwargs)

"""Readers for COCO-style keypoint files, COCO-WholeBody and COCO results-format detections.

COCO-style keypoint json (``images`` / ``annotations`` / ``categories``, keypoints as flat
``x, y, v`` triplets) is shared by COCO, AI Challenger, CrowdPose, OCHuman, AP-10K, APT-36K and
custom data; only the keypoint layout (:class:`~vitpose.dataset_meta.DatasetMeta`) differs.

Filtering and box handling follow the official top-down COCO dataset (ref §2.5 step 2):

* the box is cleaned to the image: ``x1 = max(0, x)``, ``y1 = max(0, y)``,
  ``x2 = min(W - 1, x1 + max(0, w - 1))``, ``y2 = min(H - 1, y1 + max(0, h - 1))``, and kept
  only if ``area > 0`` (when given) and ``x2 > x1`` and ``y2 > y1``; the record's box is
  ``(x1, y1, x2 - x1, y2 - y1)``;
* by default (``skip_unlabeled=True, skip_crowd=True``) annotations whose keypoints are all zero
  or whose ``num_keypoints`` is 0, and ``iscrowd`` annotations, are dropped. The official code
  applies this same filter to training **and** to ground-truth-box testing (AIC, OCHuman,
  AP-10K...); pass ``False`` to keep every annotation with a valid box;
* visibility ``v' = min(1, v)`` (COCO-WholeBody: ``v > 0``).

Detections (``image_id``, ``bbox``, ``score``, ``category_id`` rows) keep only ``category_id``
``== 1`` (people) with ``score >= det_bbox_thr``; their boxes are used as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.dataset_meta import DatasetMeta, get_dataset_meta
from vitpose.datasets.records import (
    PathLike,
    PoseRecord,
    crop_center_scale,
    entry_name,
    finite_number,
    finite_numbers,
    int_id,
    require_key,
    resolve_meta,
)
from vitpose.errors import InputError
from vitpose.fileio import read_json

__all__ = [
    "WHOLEBODY_PART_KEYS",
    "read_coco_keypoints",
    "read_coco_wholebody",
    "read_detections",
]

#: COCO-WholeBody annotation keys in channel order, with their keypoint counts.
WHOLEBODY_PART_KEYS: tuple[tuple[str, int], ...] = (
    ("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21),
    ("righthand_kpts", 21),
)


class _ImageInfo:
    """What the readers need of one ``images`` entry."""

    __slots__ = ("id", "file_name", "height", "width", "crowd_index")

    def __init__(self, image_id: int, file_name: str, height: int | None, width: int | None,
                 crowd_index: float | None) -> None:
        self.id = image_id
        self.file_name = file_name
        self.height = height
        self.width = width
        self.crowd_index = crowd_index


def _read_images(data: Any, path: Path, need_size: bool) -> dict[int, _ImageInfo]:
    """Index the ``images`` section by id, validating each entry."""
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a COCO-style JSON object with 'images' and "
                         f"'annotations', got {type(data).__name__}")
    images = require_key(data, "images", path, "the top-level object")
    if not isinstance(images, list):
        raise InputError(f"{path}: key 'images' must be a list")
    index: dict[int, _ImageInfo] = {}
    for i, img in enumerate(images):
        where = entry_name("images", i, img)
        image_id = int_id(require_key(img, "id", path, where), path, where, "id")
        file_name = require_key(img, "file_name", path, where)
        if not isinstance(file_name, str) or not file_name:
            raise InputError(f"{path}: {where} key 'file_name' must be a non-empty string")
        height = width = None
        if need_size or ("height" in img and "width" in img):
            height = int(finite_number(require_key(img, "height", path, where), path, where, "height"))
            width = int(finite_number(require_key(img, "width", path, where), path, where, "width"))
        crowd = img.get("crowdIndex")
        crowd_index = None if crowd is None else finite_number(crowd, path, where, "crowdIndex")
        if image_id in index:
            raise InputError(f"{path}: {where} repeats image id {image_id}")
        index[image_id] = _ImageInfo(image_id, file_name, height, width, crowd_index)
    return index


def _clean_box(bbox: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Official box cleaning; returns ``(x1, y1, x2, y2)``."""
    x, y, w, h = (float(v) for v in bbox)
    x1 = max(0.0, x)
    y1 = max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    return x1, y1, x2, y2


def _read_annotations(
    data: Mapping[str, Any],
    path: Path,
    images: dict[int, _ImageInfo],
    part_keys: tuple[tuple[str, int], ...],
) -> list[dict[str, Any]]:
    """Validate every annotation; returns parsed fields (keypoints as ``[K, 3]`` float64)."""
    anns = require_key(data, "annotations", path, "the top-level object")
    if not isinstance(anns, list):
        raise InputError(f"{path}: key 'annotations' must be a list")
    parsed = []
    for i, ann in enumerate(anns):
        where = entry_name("annotations", i, ann)
        ann_id = int_id(require_key(ann, "id", path, where), path, where, "id")
        image_id = int_id(require_key(ann, "image_id", path, where), path, where, "image_id")
        if image_id not in images:
            raise InputError(f"{path}: {where} key 'image_id' = {image_id} is not in 'images'")
        bbox = finite_numbers(require_key(ann, "bbox", path, where), 4, path, where, "bbox")
        blocks = []
        for key, count in part_keys:
            blocks.append(finite_numbers(require_key(ann, key, path, where), 3 * count, path, where,
                                   key).reshape(count, 3))
        area = ann.get("area")
        parsed.append({
            "index": i,
            "id": ann_id,
            "image_id": image_id,
            "bbox": bbox,
            "kpts": np.concatenate(blocks, axis=0),
            "body_max": float(blocks[0].max()) if blocks[0].size else 0.0,
            "num_keypoints": ann.get("num_keypoints"),
            "iscrowd": bool(ann.get("iscrowd", 0)),
            "area": None if area is None else finite_number(area, path, where, "area"),
            "category_id": int_id(ann.get("category_id", 1), path, where, "category_id"),
        })
    return parsed


def _records_from_coco(
    path: Path,
    data: Any,
    meta: DatasetMeta,
    part_keys: tuple[tuple[str, int], ...],
    *,
    image_root: PathLike | None,
    input_size_hw: tuple[int, int],
    padding: float,
    skip_unlabeled: bool,
    skip_crowd: bool,
    visibility_positive: bool,
) -> list[PoseRecord]:
    images = _read_images(data, path, need_size=True)
    anns = _read_annotations(data, path, images, part_keys)
    root = Path(image_root) if image_root is not None else path.parent
    records = []
    for ann in anns:
        img = images[ann["image_id"]]
        # need_size=True above guarantees width and height.
        x1, y1, x2, y2 = _clean_box(ann["bbox"], int(img.width or 0), int(img.height or 0))
        if not ((ann["area"] is None or ann["area"] > 0) and x2 > x1 and y2 > y1):
            continue
        if skip_crowd and ann["iscrowd"]:
            continue
        if skip_unlabeled and (ann["body_max"] == 0 or ann["num_keypoints"] == 0):
            continue
        box = np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)
        center, scale = crop_center_scale((x1, y1, x2 - x1, y2 - y1), input_size_hw, padding)
        kpts = ann["kpts"]
        if visibility_positive:
            visible = (kpts[:, 2] > 0).astype(np.float32)
        else:
            visible = np.minimum(1.0, kpts[:, 2]).astype(np.float32)
        extras: dict[str, Any] = {}
        if ann["num_keypoints"] is not None:
            extras["num_keypoints"] = ann["num_keypoints"]
        records.append(PoseRecord(
            image_path=root / img.file_name,
            image_id=img.id,
            ann_id=ann["id"],
            dataset=meta.name,
            box_xywh=box,
            box_score=1.0,
            center=center,
            scale=scale,
            keypoints=kpts[:, :2].astype(np.float32),
            visible=visible,
            category_id=ann["category_id"],
            image_size_hw=(img.height, img.width),
            area=ann["area"],
            iscrowd=ann["iscrowd"],
            crowd_index=img.crowd_index,
            extras=extras,
        ))
    return records


def read_coco_keypoints(
    ann_path: PathLike,
    dataset: str | DatasetMeta = "coco",
    *,
    image_root: PathLike | None = None,
    input_size_hw: tuple[int, int] = (256, 192),
    padding: float = 1.25,
    skip_unlabeled: bool = True,
    skip_crowd: bool = True,
) -> list[PoseRecord]:
    """Read a COCO-style keypoint file (COCO, AIC, CrowdPose, OCHuman, AP-10K, APT-36K, custom).

    Args:
        ann_path: the annotation json.
        dataset: registry name or a :class:`~vitpose.dataset_meta.DatasetMeta` (custom data);
            fixes ``K``: every annotation must have ``3 K`` keypoint values.
        image_root: folder the ``file_name`` entries are relative to (default: the json's
            folder).
        input_size_hw: model input ``(H, W)``, for the aspect fix of the crop.
        padding: box context factor.
        skip_unlabeled: drop annotations without labelled keypoints (official).
        skip_crowd: drop ``iscrowd`` annotations (official).

    Returns:
        One record per kept annotation, in file order.

    Raises:
        InputError: unreadable json, a missing key, a wrong keypoint count, NaN values or an
            unknown image id; the message names the file and the entry (index and id) and key.
    """
    path = Path(ann_path)
    meta = resolve_meta(dataset)
    if meta.name == "wholebody":
        return read_coco_wholebody(path, image_root=image_root, input_size_hw=input_size_hw,
                                   padding=padding, skip_unlabeled=skip_unlabeled,
                                   skip_crowd=skip_crowd)
    data = read_json(path, "annotation")
    return _records_from_coco(
        path, data, meta, (("keypoints", meta.num_keypoints),), image_root=image_root,
        input_size_hw=input_size_hw, padding=padding, skip_unlabeled=skip_unlabeled,
        skip_crowd=skip_crowd, visibility_positive=False)


def read_coco_wholebody(
    ann_path: PathLike,
    *,
    image_root: PathLike | None = None,
    input_size_hw: tuple[int, int] = (256, 192),
    padding: float = 1.25,
    skip_unlabeled: bool = True,
    skip_crowd: bool = True,
) -> list[PoseRecord]:
    """Read a COCO-WholeBody file into 133-keypoint records.

    The 133 channels are ``keypoints`` (17 body), ``foot_kpts`` (6), ``face_kpts`` (68),
    ``lefthand_kpts`` (21) and ``righthand_kpts`` (21), in that order (ref §4.7). The unlabelled
    filter looks at the body keypoints only, as the official reader does. Arguments, errors:
    as :func:`read_coco_keypoints`.
    """
    path = Path(ann_path)
    data = read_json(path, "annotation")
    return _records_from_coco(
        path, data, get_dataset_meta("wholebody"), WHOLEBODY_PART_KEYS, image_root=image_root,
        input_size_hw=input_size_hw, padding=padding, skip_unlabeled=skip_unlabeled,
        skip_crowd=skip_crowd, visibility_positive=True)


def read_detections(
    det_path: PathLike,
    ann_path: PathLike,
    *,
    dataset: str | DatasetMeta = "coco",
    image_root: PathLike | None = None,
    input_size_hw: tuple[int, int] = (256, 192),
    padding: float = 1.25,
    det_bbox_thr: float = 0.0,
    category_id: int | None = 1,
) -> list[PoseRecord]:
    """Read person detections (COCO results format) into records without keypoints.

    Args:
        det_path: json list of ``{"image_id", "bbox": [x, y, w, h], "score", "category_id"}``.
        ann_path: annotation (or image-info) json whose ``images`` map ids to file names.
        dataset: dataset the records are for (stored in :attr:`PoseRecord.dataset`).
        image_root: folder of the images (default: the annotation json's folder).
        input_size_hw: model input ``(H, W)``.
        padding: box context factor.
        det_bbox_thr: keep detections with ``score >= det_bbox_thr`` (official 0.0).
        category_id: keep only this category (1 = person, official); ``None`` keeps all.

    Returns:
        One record per kept detection, in file order; ``ann_id`` is the row index in the file.

    Raises:
        InputError: unreadable json, a missing key, NaN values or an image id absent from the
            annotation file; the message names the file and the row.
    """
    det_path, ann_path = Path(det_path), Path(ann_path)
    meta = resolve_meta(dataset)
    images = _read_images(read_json(ann_path, "annotation"), ann_path, need_size=False)
    dets = read_json(det_path, "detection")
    if not isinstance(dets, list):
        raise InputError(f"{det_path}: expected a JSON list of detections "
                         f"(COCO results format), got {type(dets).__name__}")
    root = Path(image_root) if image_root is not None else ann_path.parent
    records = []
    for i, det in enumerate(dets):
        where = entry_name("detections", i, det, "image_id")
        image_id = int_id(require_key(det, "image_id", det_path, where), det_path, where, "image_id")
        if image_id not in images:
            raise InputError(f"{det_path}: {where} image_id {image_id} is not in the 'images' "
                             f"of {ann_path}")
        bbox = finite_numbers(require_key(det, "bbox", det_path, where), 4, det_path, where, "bbox")
        score = finite_number(require_key(det, "score", det_path, where), det_path, where, "score")
        cat = int_id(det.get("category_id", 1), det_path, where, "category_id")
        if category_id is not None and cat != category_id:
            continue
        if score < det_bbox_thr:
            continue
        img = images[image_id]
        center, scale = crop_center_scale(bbox, input_size_hw, padding)
        size = None if img.height is None or img.width is None else (img.height, img.width)
        records.append(PoseRecord(
            image_path=root / img.file_name,
            image_id=image_id,
            ann_id=i,
            dataset=meta.name,
            box_xywh=bbox.astype(np.float32),
            box_score=score,
            center=center,
            scale=scale,
            category_id=cat,
            image_size_hw=size,
            crowd_index=img.crowd_index,
        ))
    return records

"""The common top-down sample record and the small helpers shared by the annotation readers.

Every reader in :mod:`vitpose.datasets` turns a benchmark's own annotation format into a list of
:class:`PoseRecord`: one person (or animal, or hand) box in one image, with its crop centre and
scale already computed the official way (ref §2.5 step 2), and, for ground truth, its keypoints
and visibility in original-image pixels.

Conventions (docs/ARCHITECTURE.md): points are ``(x, y)`` in original-image pixels, sizes are
``(H, W)``, ``center`` is ``(cx, cy)`` in pixels and ``scale`` is ``(sx, sy)`` in units of 200 px.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.dataset_meta import DatasetMeta, get_dataset_meta
from vitpose.errors import InputError
from vitpose.transforms import box_xywh_to_center_scale

__all__ = [
    "PoseRecord",
    "PathLike",
    "crop_center_scale",
    "entry_name",
    "finite_number",
    "finite_numbers",
    "int_id",
    "require_key",
    "resolve_meta",
]

PathLike = str | Path

@dataclass
class PoseRecord:
    """One top-down sample: a box in an image, plus ground truth when known.

    Attributes:
        image_path: path of the image file.
        image_id: the benchmark's image id (MPII has none: the index of the image name in order
            of first appearance).
        ann_id: id of this sample, unique within one annotation file: the annotation id for
            COCO-style files, the entry index for MPII, ``2 * annotation id + hand`` (0 right,
            1 left) for InterHand2.6M, the row index for detection files. Results for the PCK
            benchmarks (MPII, InterHand) are matched to ground truth by this id.
        dataset: dataset name (the :class:`~vitpose.dataset_meta.DatasetMeta` name).
        box_xywh: float32 ``[4]`` box ``(x, y, w, h)`` in pixels: the cleaned annotation box, the
            detection box, the tight joint box (InterHand) or the unpadded square person box
            (MPII).
        box_score: detection score (1.0 for ground-truth boxes).
        center: float32 ``[2]`` crop centre ``(cx, cy)`` in pixels.
        scale: float32 ``[2]`` crop size ``(sx, sy)`` in units of 200 px, padded (x1.25, x1.5 for
            InterHand) and aspect-fixed to the model input (square for MPII).
        keypoints: float32 ``[K, 2]`` ground-truth ``(x, y)`` in pixels, or ``None`` (detections).
        visible: float32 ``[K]`` 0/1 ground-truth visibility (labelled = 1), or ``None``.
        category_id: category of the box (1 = person; AP-10K animal categories differ).
        image_size_hw: ``(H, W)`` of the image when the annotation file says so, else ``None``.
        area: annotation ``area`` (segmentation area), when present.
        iscrowd: the annotation's ``iscrowd`` flag.
        crowd_index: the image's CrowdPose ``crowdIndex``, when present.
        head_size: MPII head size ``0.6 * ||head-box diagonal||`` in pixels, when head boxes were
            given.
        extras: any other per-format facts (e.g. ``num_keypoints``, ``hand``).
    """

    image_path: Path
    image_id: int
    ann_id: int
    dataset: str
    box_xywh: np.ndarray
    box_score: float
    center: np.ndarray
    scale: np.ndarray
    keypoints: np.ndarray | None = None
    visible: np.ndarray | None = None
    category_id: int = 1
    image_size_hw: tuple[int, int] | None = None
    area: float | None = None
    iscrowd: bool = False
    crowd_index: float | None = None
    head_size: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        """Number of ground-truth keypoints ``K`` (0 when there is no ground truth)."""
        return 0 if self.keypoints is None else int(self.keypoints.shape[0])


def resolve_meta(dataset: str | DatasetMeta) -> DatasetMeta:
    """A :class:`DatasetMeta` from a registry name or a meta object.

    Raises:
        InputError: unknown dataset name (the message lists the known names).
    """
    if isinstance(dataset, DatasetMeta):
        return dataset
    try:
        return get_dataset_meta(dataset)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def crop_center_scale(
    box_xywh: Sequence[float],
    input_size_hw: Sequence[int],
    padding: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop centre and scale of one box for a model input of size ``(H, W)``.

    Thin adapter over :func:`vitpose.transforms.box_xywh_to_center_scale` (the one home of this
    geometry, official ``_xywh2cs`` without jitter), which takes the size as ``(W, H)``.

    Args:
        box_xywh: ``(x, y, w, h)`` in pixels.
        input_size_hw: model input ``(H, W)``, e.g. ``(256, 192)``.
        padding: context factor (1.25; 1.5 for InterHand2.6M).

    Returns:
        ``center`` float32 ``[2]`` in pixels and ``scale`` float32 ``[2]`` in units of 200 px.
    """
    size_wh = (int(input_size_hw[1]), int(input_size_hw[0]))
    return box_xywh_to_center_scale(np.asarray(box_xywh, dtype=np.float64), size_wh, padding)


# --------------------------------------------------------------------------------------------
# Shared parsing helpers (public: the readers of datasets/ and metrics/ use them)
# --------------------------------------------------------------------------------------------


def entry_name(section: str, index: int, entry: Any, id_key: str = "id") -> str:
    """How messages name one entry of a JSON list: ``images[3] (id=7)``."""
    if isinstance(entry, Mapping) and id_key in entry:
        return f"{section}[{index}] ({id_key}={entry[id_key]!r})"
    return f"{section}[{index}]"


def require_key(entry: Any, key: str, path: PathLike, where: str) -> Any:
    """``entry[key]``; an entry that is not an object or lacks the key raises `InputError`."""
    if not isinstance(entry, Mapping):
        raise InputError(f"{path}: {where} is not a JSON object")
    if key not in entry:
        raise InputError(f"{path}: {where} is missing the key {key!r}")
    return entry[key]


def finite_numbers(value: Any, count: int | None, path: PathLike, where: str,
                   key: str) -> np.ndarray:
    """A flat float64 array of finite numbers with an optional exact length."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where} key {key!r} must hold numbers") from None
    if count is not None and arr.shape[0] != count:
        raise InputError(f"{path}: {where} key {key!r} has {arr.shape[0]} values, expected {count}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: {where} key {key!r} holds NaN or infinite values")
    return arr


def finite_number(value: Any, path: PathLike, where: str, key: str) -> float:
    """One finite JSON number (booleans refused) as a float, else `InputError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise InputError(f"{path}: {where} key {key!r} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise InputError(f"{path}: {where} key {key!r} is NaN or infinite")
    return float(value)


def int_id(value: Any, path: PathLike, where: str, key: str) -> int:
    """An integer id (a float with no fraction accepted), else `InputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InputError(f"{path}: {where} key {key!r} must be an integer id, got {value!r}")
    return int(value)

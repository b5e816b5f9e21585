"""Reader for the MPII Human Pose json (mmpose layout) and for MPII head boxes.

The json is a list of entries ``{"image", "center": [x, y], "scale": s, "joints": 16 x [x, y],
"joints_vis": 16 x 0/1}`` with MATLAB (1-based) pixel coordinates and ``s`` = person height / 200.
Boxes follow the official reader (ref §4.3): ``c_y += 15 s`` and ``s *= 1.25`` (only when
``c_x != -1``), then ``c -= 1`` and ``scale = (s, s)``. The crop is **square**, so it is not
aspect-fixed to the model input; joints are shifted by -1 to 0-based pixels.

Head boxes. PCKh normalises distances by ``0.6 * ||head-box diagonal||``, but the json has no head
boxes: the official evaluation reads them from ``mpii_gt_val.mat`` (``headboxes_src``, together
with ``pos_gt_src`` and ``jnt_missing``). :func:`load_mpii_head_boxes` reads that information from

* a ``.npz`` or ``.json`` converted from the .mat, with keys ``headboxes_src`` (shape
  ``(2, 2, N)`` as in the .mat: ``[corner, xy, entry]``) or ``headboxes`` (``(N, 2, 2)`` or
  ``(N, 4)`` as ``x1, y1, x2, y2``), and optionally ``pos_gt_src`` (``(16, 2, N)``) /
  ``joints`` (``(N, 16, 2)``) and ``jnt_missing`` (``(16, N)``) / ``missing`` (``(N, 16)``);
* a ``.json`` list with one ``[x1, y1, x2, y2]`` per entry;
* the ``.mat`` itself when SciPy is installed (not a dependency of vitpose). To convert once
  (with SciPy, anywhere)::

      import numpy as np, scipy.io
      m = scipy.io.loadmat("mpii_gt_val.mat")
      keys = ("headboxes_src", "pos_gt_src", "jnt_missing")
      np.savez("mpii_gt_val.npz", **{k: m[k] for k in keys})

Entries are in the order of the annotation json (``mpii_val.json`` and ``mpii_gt_val.mat`` share
their order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.records import (
    PathLike,
    PoseRecord,
    entry_name,
    finite_number,
    finite_numbers,
    require_key,
)
from vitpose.errors import InputError
from vitpose.fileio import read_json

__all__ = ["MPII_NUM_JOINTS", "MpiiHeadBoxes", "load_mpii_head_boxes", "read_mpii"]

MPII_NUM_JOINTS = 16
#: Official PCKh head-size factor ("SC_BIAS").
HEAD_SIZE_FACTOR = 0.6


@dataclass
class MpiiHeadBoxes:
    """Head boxes (and optionally the official ground truth) of the MPII entries.

    Attributes:
        boxes: float64 ``[N, 2, 2]`` head boxes ``[[x1, y1], [x2, y2]]`` in pixels.
        joints: float64 ``[N, 16, 2]`` ground-truth joints from the .mat (1-based MATLAB pixels),
            or ``None``.
        missing: bool ``[N, 16]`` missing-joint flags from the .mat, or ``None``.
    """

    boxes: np.ndarray
    joints: np.ndarray | None = None
    missing: np.ndarray | None = None

    @property
    def head_sizes(self) -> np.ndarray:
        """float64 ``[N]`` head sizes ``0.6 * ||(x2, y2) - (x1, y1)||`` in pixels."""
        return HEAD_SIZE_FACTOR * np.linalg.norm(self.boxes[:, 1, :] - self.boxes[:, 0, :], axis=-1)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def _finite(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: key {key!r} holds NaN or infinite values")
    return arr


def _head_boxes_from_mapping(data: Mapping[str, Any], path: Path) -> MpiiHeadBoxes:
    def arr(key: str) -> np.ndarray:
        try:
            return np.asarray(data[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{path}: key {key!r} must hold numbers") from None

    if "headboxes_src" in data:
        src = arr("headboxes_src")
        if src.ndim != 3 or src.shape[:2] != (2, 2):
            raise InputError(f"{path}: key 'headboxes_src' must have shape (2, 2, N) as in "
                             f"mpii_gt_val.mat, got {src.shape}")
        boxes = np.transpose(src, (2, 0, 1))
    elif "headboxes" in data:
        src = arr("headboxes")
        if src.ndim == 2 and src.shape[1] == 4:
            src = src.reshape(-1, 2, 2)
        if src.ndim != 3 or src.shape[1:] != (2, 2):
            raise InputError(f"{path}: key 'headboxes' must have shape (N, 2, 2) or (N, 4), "
                             f"got {src.shape}")
        boxes = src
    else:
        raise InputError(f"{path}: no head boxes found: expected key 'headboxes_src' "
                         f"(as in mpii_gt_val.mat) or 'headboxes'")
    n = boxes.shape[0]
    joints = missing = None
    if "pos_gt_src" in data:
        pos = arr("pos_gt_src")
        if pos.shape != (MPII_NUM_JOINTS, 2, n):
            raise InputError(f"{path}: key 'pos_gt_src' must have shape (16, 2, {n}), "
                             f"got {pos.shape}")
        joints = np.transpose(pos, (2, 0, 1))
    elif "joints" in data:
        joints = arr("joints")
        if joints.shape != (n, MPII_NUM_JOINTS, 2):
            raise InputError(f"{path}: key 'joints' must have shape ({n}, 16, 2), "
                             f"got {joints.shape}")
    if "jnt_missing" in data:
        miss = arr("jnt_missing")
        if miss.shape != (MPII_NUM_JOINTS, n):
            raise InputError(f"{path}: key 'jnt_missing' must have shape (16, {n}), "
                             f"got {miss.shape}")
        missing = miss.T > 0
    elif "missing" in data:
        miss = arr("missing")
        if miss.shape != (n, MPII_NUM_JOINTS):
            raise InputError(f"{path}: key 'missing' must have shape ({n}, 16), got {miss.shape}")
        missing = miss > 0
    _finite(boxes, path, "headboxes")
    if joints is not None:
        _finite(joints, path, "pos_gt_src")
    return MpiiHeadBoxes(boxes=boxes, joints=joints, missing=missing)


def load_mpii_head_boxes(path: PathLike) -> MpiiHeadBoxes:
    """Read MPII head boxes (and optionally the official ground truth) from a file.

    Args:
        path: ``.npz``, ``.json`` or ``.mat`` (SciPy needed) file, see the module docstring.

    Returns:
        The head boxes, one per annotation entry.

    Raises:
        InputError: unreadable file, missing keys or wrong shapes (the message names the file
            and the key).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = read_json(path, "MPII head-box")
        if isinstance(data, list):
            data = {"headboxes": data}
        if not isinstance(data, Mapping):
            raise InputError(f"{path}: expected a JSON object or a list of head boxes")
        return _head_boxes_from_mapping(data, path)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise InputError(f"MPII head-box file not found: {path}") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read MPII head-box file {path}: {exc}") from None
        return _head_boxes_from_mapping(data, path)
    if suffix == ".mat":
        try:
            from scipy.io import loadmat  # optional
        except ImportError:
            raise InputError(
                f"{path}: reading .mat files needs SciPy (pip install scipy), or convert it once "
                f"to .npz with the keys 'headboxes_src', 'pos_gt_src', 'jnt_missing'") from None
        if not path.is_file():
            raise InputError(f"MPII head-box file not found: {path}")
        try:
            data = loadmat(str(path))
        except NotImplementedError:  # MATLAB v7.3 (HDF5) files
            raise InputError(f"{path}: MATLAB v7.3 files are not supported; save it with "
                             f"-v7 or convert it to .npz (see vitpose.datasets.mpii)") from None
        except Exception as exc:  # SciPy raises many kinds on a damaged file
            raise InputError(f"cannot read MPII head-box file {path} "
                             f"({type(exc).__name__}: {exc})") from None
        return _head_boxes_from_mapping(data, path)
    raise InputError(f"{path}: unsupported head-box file type {suffix!r}; use .npz, .json or .mat")


def read_mpii(
    ann_path: PathLike,
    *,
    image_root: PathLike | None = None,
    head_boxes: PathLike | MpiiHeadBoxes | None = None,
    require_joints: bool = True,
) -> list[PoseRecord]:
    """Read an MPII json (mmpose layout) into records with square crops.

    Args:
        ann_path: the json list of entries.
        image_root: folder of the images (default: the json's folder).
        head_boxes: optional head boxes (file or loaded), one per entry; fills
            :attr:`PoseRecord.head_size`.
        require_joints: raise when an entry has no ``joints`` (set ``False`` for the unlabelled
            test split).

    Returns:
        One record per entry, in file order: ``ann_id`` is the entry index and ``image_id`` the
        index of the image name in order of first appearance.

    Raises:
        InputError: unreadable json, a missing key, wrong joint count, NaN values, or a head-box
            count that differs from the entry count.
    """
    path = Path(ann_path)
    data = read_json(path, "MPII annotation")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of MPII entries, got {type(data).__name__}")
    boxes = head_boxes
    if boxes is not None and not isinstance(boxes, MpiiHeadBoxes):
        boxes = load_mpii_head_boxes(boxes)
    if boxes is not None and len(boxes) != len(data):
        raise InputError(f"{path}: {len(data)} entries but {len(boxes)} head boxes were given")
    head_sizes = None if boxes is None else boxes.head_sizes
    root = Path(image_root) if image_root is not None else path.parent
    image_ids: dict[str, int] = {}
    records = []
    for i, entry in enumerate(data):
        where = entry_name("entries", i, entry, "image")
        image = require_key(entry, "image", path, where)
        if not isinstance(image, str) or not image:
            raise InputError(f"{path}: {where} key 'image' must be a non-empty file name")
        center = finite_numbers(require_key(entry, "center", path, where), 2, path, where, "center")
        s = finite_number(require_key(entry, "scale", path, where), path, where, "scale")
        if s <= 0:
            raise InputError(f"{path}: {where} key 'scale' must be positive, got {s}")
        keypoints = visible = None
        if require_joints or "joints" in entry:
            joints = finite_numbers(require_key(entry, "joints", path, where), 2 * MPII_NUM_JOINTS, path,
                              where, "joints").reshape(MPII_NUM_JOINTS, 2)
            vis = finite_numbers(require_key(entry, "joints_vis", path, where), MPII_NUM_JOINTS, path,
                           where, "joints_vis")
            keypoints = (joints - 1.0).astype(np.float32)
            visible = vis.astype(np.float32)
        # Official adjustment (ref §4.3); the scale is square.
        cx, cy = float(center[0]), float(center[1])
        scale = s
        if cx != -1:
            cy = cy + 15.0 * s
            scale = s * 1.25
        center0 = np.array([cx - 1.0, cy - 1.0], dtype=np.float32)
        side = s * 200.0
        box = np.array([center0[0] - side / 2, center0[1] - side / 2, side, side], dtype=np.float32)
        image_id = image_ids.setdefault(image, len(image_ids))
        records.append(PoseRecord(
            image_path=root / image,
            image_id=image_id,
            ann_id=i,
            dataset="mpii",
            box_xywh=box,
            box_score=1.0,
            center=center0,
            scale=np.array([scale, scale], dtype=np.float32),
            keypoints=keypoints,
            visible=visible,
            head_size=None if head_sizes is None else float(head_sizes[i]),
            extras={"image_name": image},
        ))
    return records

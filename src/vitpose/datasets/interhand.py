"""Reader for InterHand2.6M in 2D: one record per hand with enough valid joints (ref §4.8).

InterHand2.6M ships three files per split: ``*_data.json`` (COCO-style ``images`` with
``capture``, ``camera``, ``frame_idx``, and ``annotations`` with ``joint_valid`` for 42 joints:
right hand 0-20, left hand 21-41, wrist last in each), ``*_camera.json`` (per capture and camera:
``campos``, ``camrot``, ``focal``, ``princpt``) and ``*_joint_3d.json`` (per capture and frame:
``world_coord`` 42 x 3 in mm).

Following the official 2D reader:

* joints are projected world -> camera ``X_c = R (X_w - campos)`` -> pixels
  ``x = X_c / (Z_c + 1e-8) * f_x + c_x`` (float32 arithmetic as in the original);
* a hand's joints are all invalid when its wrist is invalid; a hand becomes a sample when more
  than 11 of its 21 joints are valid (the first annotation of each image is used);
* the box is the tight box of the valid joints, computed the official way: it starts from
  ``(W_img, H_img, 0, 0)`` as ``(x1, y1, x2, y2)`` and is widened by each valid joint; the crop
  uses this box aspect-fixed and padded **x1.5**. PCK normalises by ``max(w, h)`` of this box.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.records import (
    PathLike,
    PoseRecord,
    crop_center_scale,
    entry_name,
    finite_numbers,
    int_id,
    require_key,
)
from vitpose.errors import InputError
from vitpose.fileio import read_json

__all__ = ["HANDS", "read_interhand2d"]

#: Hand order in the 42-joint InterHand2.6M layout.
HANDS = ("right", "left")
_JOINTS_PER_HAND = 21
_MIN_VALID = 11  # strictly more than this many valid joints


def _sibling(data_path: Path, suffix: str) -> Path:
    name = data_path.name
    if name.endswith("_data.json"):
        return data_path.with_name(name[: -len("_data.json")] + suffix)
    raise InputError(f"{data_path}: cannot derive the {suffix!r} file name (the data file name "
                     f"does not end in '_data.json'); pass it explicitly")


def _lookup(table: Any, keys: tuple[str, ...], path: Path, what: str) -> Any:
    node = table
    trail = []
    for key in keys:
        trail.append(key)
        if not isinstance(node, Mapping) or key not in node:
            raise InputError(f"{path}: no entry {'/'.join(trail)} (needed for {what})")
        node = node[key]
    return node


def read_interhand2d(
    data_path: PathLike,
    *,
    camera_path: PathLike | None = None,
    joint_3d_path: PathLike | None = None,
    image_root: PathLike | None = None,
    input_size_hw: tuple[int, int] = (256, 192),
    padding: float = 1.5,
) -> list[PoseRecord]:
    """Read InterHand2.6M into single-hand 2D records (21 keypoints each).

    Args:
        data_path: ``InterHand2.6M_<split>_data.json``.
        camera_path: camera file (default: ``..._camera.json`` next to ``data_path``).
        joint_3d_path: 3D joint file (default: ``..._joint_3d.json`` next to ``data_path``).
        image_root: folder the ``file_name`` entries are relative to (default: the data json's
            folder).
        input_size_hw: model input ``(H, W)`` for the aspect fix (ViTPose's 256 x 192 by
            default; mmpose's own hand configs use 256 x 256).
        padding: box context factor (official 1.5).

    Returns:
        Records in image order, right hand before left. ``ann_id = 2 * annotation id + h``
        (``h`` = 0 right, 1 left); ``extras`` holds ``hand``, ``source_ann_id`` and
        ``hand_type``. Keypoints are in the InterHand order (finger tips first, wrist last).

    Raises:
        InputError: unreadable files, missing keys, wrong joint counts, NaN values, or a
            capture / camera / frame absent from the camera or joint files.
    """
    data_path = Path(data_path)
    camera_path = (Path(camera_path) if camera_path is not None
                   else _sibling(data_path, "_camera.json"))
    joint_3d_path = (Path(joint_3d_path) if joint_3d_path is not None
                     else _sibling(data_path, "_joint_3d.json"))
    data = read_json(data_path, "InterHand2.6M data")
    cameras = read_json(camera_path, "InterHand2.6M camera")
    joints3d = read_json(joint_3d_path, "InterHand2.6M joint_3d")
    if not isinstance(data, Mapping):
        raise InputError(f"{data_path}: expected a COCO-style JSON object")
    images = require_key(data, "images", data_path, "the top-level object")
    anns = require_key(data, "annotations", data_path, "the top-level object")
    if not isinstance(images, list) or not isinstance(anns, list):
        raise InputError(f"{data_path}: keys 'images' and 'annotations' must be lists")
    num_all = 2 * _JOINTS_PER_HAND

    # First annotation of each image (the official reader uses anns[0] of each image).
    first_ann: dict[int, tuple[int, Mapping[str, Any]]] = {}
    image_ids = set()
    for i, img in enumerate(images):
        where = entry_name("images", i, img)
        image_ids.add(int_id(require_key(img, "id", data_path, where), data_path, where, "id"))
    for i, ann in enumerate(anns):
        where = entry_name("annotations", i, ann)
        int_id(require_key(ann, "id", data_path, where), data_path, where, "id")
        image_id = int_id(require_key(ann, "image_id", data_path, where), data_path, where,
                           "image_id")
        if image_id not in image_ids:
            raise InputError(f"{data_path}: {where} key 'image_id' = {image_id} is not in "
                             f"'images'")
        first_ann.setdefault(image_id, (i, ann))

    root = Path(image_root) if image_root is not None else data_path.parent
    records = []
    for i, img in enumerate(images):
        where = entry_name("images", i, img)
        image_id = int(img["id"])
        if image_id not in first_ann:
            continue
        ann_index, ann = first_ann[image_id]
        ann_where = entry_name("annotations", ann_index, ann)
        file_name = require_key(img, "file_name", data_path, where)
        width = float(finite_numbers(require_key(img, "width", data_path, where), 1, data_path, where,
                               "width")[0])
        height = float(finite_numbers(require_key(img, "height", data_path, where), 1, data_path, where,
                                "height")[0])
        capture = str(require_key(img, "capture", data_path, where))
        camera = str(require_key(img, "camera", data_path, where))
        frame = str(require_key(img, "frame_idx", data_path, where))
        what = f"{where} in {data_path.name}"

        params = {}
        for key, count in (("campos", 3), ("camrot", 9), ("focal", 2), ("princpt", 2)):
            value = _lookup(cameras, (capture, key, camera), camera_path, what)
            params[key] = finite_numbers(value, count, camera_path, f"capture {capture} camera {camera}",
                                   key).astype(np.float32)
        world = _lookup(joints3d, (capture, frame, "world_coord"), joint_3d_path, what)
        world = finite_numbers(world, 3 * num_all, joint_3d_path, f"capture {capture} frame {frame}",
                         "world_coord").astype(np.float32).reshape(num_all, 3)
        valid = finite_numbers(require_key(ann, "joint_valid", data_path, ann_where), num_all, data_path,
                         ann_where, "joint_valid").astype(np.float32)

        rot = params["camrot"].reshape(3, 3)
        cam_xyz = (rot @ (world.T - params["campos"].reshape(3, 1))).T
        focal, princpt = params["focal"], params["princpt"]
        px = cam_xyz[:, 0] / (cam_xyz[:, 2] + 1e-8) * focal[0] + princpt[0]
        py = cam_xyz[:, 1] / (cam_xyz[:, 2] + 1e-8) * focal[1] + princpt[1]
        pixels = np.stack([px, py], axis=1).astype(np.float32).reshape(2, _JOINTS_PER_HAND, 2)
        valid = valid.reshape(2, _JOINTS_PER_HAND)

        for hand in range(2):
            hand_valid = valid[hand] * valid[hand, -1]  # invalid wrist -> whole hand invalid
            if np.sum(hand_valid) <= _MIN_VALID:
                continue
            kpts = pixels[hand]
            visible = np.minimum(1.0, hand_valid).astype(np.float32)
            # Official tight box, including its (W, H, 0, 0) starting corners.
            x1, y1, x2, y2 = width, height, 0.0, 0.0
            for k in np.nonzero(visible > 0)[0]:
                x1 = min(x1, float(kpts[k, 0]))
                y1 = min(y1, float(kpts[k, 1]))
                x2 = max(x2, float(kpts[k, 0]))
                y2 = max(y2, float(kpts[k, 1]))
            box = (x1, y1, x2 - x1, y2 - y1)
            center, scale = crop_center_scale(box, input_size_hw, padding)
            records.append(PoseRecord(
                image_path=root / str(file_name),
                image_id=image_id,
                ann_id=2 * int(ann["id"]) + hand,
                dataset="interhand2d",
                box_xywh=np.array(box, dtype=np.float32),
                box_score=1.0,
                center=center,
                scale=scale,
                keypoints=kpts.copy(),
                visible=visible,
                image_size_hw=(int(height), int(width)),
                extras={"hand": HANDS[hand], "source_ann_id": int(ann["id"]),
                        "hand_type": ann.get("hand_type")},
            ))
    return records

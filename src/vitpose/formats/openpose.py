"""OpenPose JSON files and OpenPose-style drawings.

The JSON is the one OpenPose writes per image (``version`` 1.3, ``people[]`` with
``person_id``, ``pose_keypoints_2d``, ``face_keypoints_2d``, ``hand_left_keypoints_2d``,
``hand_right_keypoints_2d`` and the empty ``*_3d`` lists), plus ``canvas_width`` /
``canvas_height`` as ControlNet pose editors read them. Every keypoint is an ``x, y, c`` triplet;
an undetected keypoint is ``0, 0, 0``.

Mapping (by keypoint name, so COCO-17 models (``coco``, ``ochuman``) and COCO-WholeBody-133
models (``wholebody``) both work):

* body, ``coco18`` (18 points: what ControlNet reads): nose, **neck**, right shoulder, elbow,
  wrist, left shoulder, elbow, wrist, right hip, knee, ankle, left hip, knee, ankle, right eye,
  left eye, right ear, left ear;
* body, ``body25`` (25 points: what Pose2Sim and OpenPose's default model use): the same with
  **mid-hip** at 8 and the feet at 19-24 (left big toe, small toe, heel, right big toe, small
  toe, heel: from COCO-WholeBody's feet; ``0, 0, 0`` for a COCO-17 model);
* the **neck** is the middle of the shoulders and the **mid-hip** the middle of the hips, with
  the lower of the two scores, and only when both are at least ``min_score`` (else ``0, 0, 0``);
* hands: 21 + 21 points (wrist, then thumb, index, middle, ring, little finger from base to
  tip), COCO-WholeBody's hands in the same order;
* face: 70 points: COCO-WholeBody's 68 (the same 68-point layout), then the two pupils, which
  the model does not predict and are left ``0, 0, 0``;
* keypoints scoring under ``min_score`` are written ``0, 0, 0`` (OpenPose's "not found"), so
  that readers that draw every non-zero point show only found ones.

A COCO-17 model has no hands and no face: those lists are written empty (``[]``), as OpenPose
writes them with its hand and face detectors off, and the writer's notes say so. Keypoint sets
without the COCO body (animals, MPII, AIC, CrowdPose, hands alone) are refused.

The drawing follows OpenPose's look: a black canvas (or the image), limbs and joints coloured
around the hue wheel (18 hues, 20 degrees apart, starting at red),
hands with one hue per bone and blue joints, the face as white dots.
"""

from __future__ import annotations

import colorsys
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vitpose.dataset_meta import DatasetMeta
from vitpose.errors import InputError
from vitpose.fileio import atomic_write_json
from vitpose.formats.common import as_frames, keypoint_set, prepare_target, progress
from vitpose.imageio import read_image, write_image

__all__ = ["BODY_LAYOUTS", "OPENPOSE_VERSION", "OpenPoseLayout", "draw_openpose",
           "openpose_layout", "to_openpose", "write_openpose"]

OPENPOSE_VERSION = 1.3
_NECK, _MIDHIP = "<neck>", "<mid_hip>"
_COCO18 = ("nose", _NECK, "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
           "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
           "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear")
_BODY25 = ("nose", _NECK, "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
           "left_elbow", "left_wrist", _MIDHIP, "right_hip", "right_knee", "right_ankle",
           "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear",
           "left_ear", "left_big_toe", "left_small_toe", "left_heel", "right_big_toe",
           "right_small_toe", "right_heel")
#: Body layouts: name -> OpenPose keypoint order (our keypoint names; neck / mid-hip averaged).
BODY_LAYOUTS: dict[str, tuple[str, ...]] = {"coco18": _COCO18, "body25": _BODY25}
_AVERAGES = {_NECK: ("left_shoulder", "right_shoulder"), _MIDHIP: ("left_hip", "right_hip")}
_HAND = 21
_FACE = 70
_REQUIRED = ("nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass(frozen=True)
class OpenPoseLayout:
    """How one keypoint set maps onto OpenPose's arrays (indices into our keypoints, -1 = none)."""

    body: str
    body_index: tuple[int, ...]
    hand_left: tuple[int, ...] = ()
    hand_right: tuple[int, ...] = ()
    face: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())


def openpose_layout(meta: DatasetMeta | str, body: str = "coco18") -> OpenPoseLayout:
    """The OpenPose mapping of a keypoint set (see the module text); `InputError` for a set
    without the COCO body keypoints or an unknown body layout."""
    meta = keypoint_set([], meta)
    if body not in BODY_LAYOUTS:
        raise InputError(f"unknown OpenPose body layout {body!r}; choose one of "
                         f"{', '.join(BODY_LAYOUTS)}")
    names = {n: i for i, n in enumerate(meta.keypoint_names)}
    if not all(n in names for n in _REQUIRED):
        raise InputError(f"OpenPose files need a model of the COCO body (coco, wholebody); the "
                         f"keypoint set {meta.name!r} has no {', '.join(_REQUIRED)}")
    index = tuple(names.get(n, -1) for n in BODY_LAYOUTS[body])
    notes: list[str] = []
    if body == "body25" and index[19] < 0:
        notes.append(f"{meta.name!r} has no feet: BODY_25 points 19-24 are 0, 0, 0")
    parts = dict(meta.parts)
    left = tuple(parts["lefthand"]) if len(parts.get("lefthand", ())) == _HAND else ()
    right = tuple(parts["righthand"]) if len(parts.get("righthand", ())) == _HAND else ()
    face = tuple(parts["face"]) + (-1, -1) if len(parts.get("face", ())) == 68 else ()
    if not left:
        notes.append(f"{meta.name!r} has no hand keypoints: hand arrays are empty")
    if not face:
        notes.append(f"{meta.name!r} has no face keypoints: face arrays are empty")
    return OpenPoseLayout(body, index, left, right, face, tuple(notes))


def _gather(kp: np.ndarray, index: Sequence[int], names: Sequence[str], min_score: float,
            meta_index: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(index), 3), np.float64)
    for j, (i, name) in enumerate(zip(index, names)):
        if name in _AVERAGES:
            a, b = (kp[meta_index[n]] for n in _AVERAGES[name])
            if a[2] >= min_score and b[2] >= min_score:
                out[j] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, min(a[2], b[2])]
        elif i >= 0 and kp[i, 2] >= min_score:
            out[j] = kp[i]
    return out


def _flat(a: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in a.reshape(-1)]


def to_openpose(result: Any, *, meta: DatasetMeta | str | None = None, body: str = "coco18",
                min_score: float = 0.3) -> dict[str, Any]:
    """One result as an OpenPose JSON object (see the module text for the mapping)."""
    meta = keypoint_set(result, meta)
    layout = openpose_layout(meta, body)
    names = BODY_LAYOUTS[body]
    meta_index = {n: i for i, n in enumerate(meta.keypoint_names)}
    people = []
    for inst in result.instances:
        kp = np.asarray(inst.keypoints, np.float64)
        if kp.shape != (meta.num_keypoints, 3):
            raise InputError(f"{result.source}: an instance does not have the "
                             f"{meta.num_keypoints} keypoints of {meta.name!r}")
        kp = np.where(np.isfinite(kp), kp, 0.0)

        def part(idx: Sequence[int], kp: np.ndarray = kp) -> list[float]:
            if not idx:
                return []
            return _flat(_gather(kp, idx, [""] * len(idx), min_score, meta_index))

        people.append({
            "person_id": [-1 if inst.track_id is None else int(inst.track_id)],
            "pose_keypoints_2d": _flat(_gather(kp, layout.body_index, names, min_score,
                                               meta_index)),
            "face_keypoints_2d": part(layout.face),
            "hand_left_keypoints_2d": part(layout.hand_left),
            "hand_right_keypoints_2d": part(layout.hand_right),
            "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
            "hand_right_keypoints_3d": []})
    h, w = (int(v) for v in result.image_hw)
    return {"version": OPENPOSE_VERSION, "people": people, "canvas_width": w, "canvas_height": h}


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------

# Limbs of the 18-point body in OpenPose's drawing order (indices into the coco18 layout).
_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
          (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
_HAND_BONES = tuple((0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j)
                    for f in range(5) for j in range(4))


def _hue_rgb(fraction: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(fraction % 1.0, 1.0, 1.0)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


#: 18 body colours: the hue wheel in 20-degree steps from red (RGB).
BODY_COLORS = tuple(_hue_rgb(i / 18) for i in range(18))


def draw_openpose(pose: dict[str, Any], background: np.ndarray | None = None, *,
                  stick_width: int = 4, radius: int = 4) -> np.ndarray:
    """An OpenPose-style drawing of an OpenPose JSON object (`to_openpose`; the coco18 body).

    Args:
        pose: the JSON object (``canvas_width`` / ``canvas_height`` size the canvas).
        background: an RGB ``uint8 [H, W, 3]`` image to draw on (default: black).

    Returns:
        RGB ``uint8 [H, W, 3]``.
    """
    h, w = int(pose["canvas_height"]), int(pose["canvas_width"])
    if background is None:
        canvas = np.zeros((h, w, 3), np.uint8)
    else:
        canvas = np.ascontiguousarray(background[..., :3], dtype=np.uint8).copy()
        if canvas.shape[:2] != (h, w):
            raise InputError(f"the background is {canvas.shape[1]}x{canvas.shape[0]}, the "
                             f"poses were found on a {w}x{h} image")
    for person in pose["people"]:
        body = np.asarray(person["pose_keypoints_2d"], np.float64).reshape(-1, 3)
        if len(body) == 25:  # BODY_25 -> the 18 drawn points
            body = body[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]]
        limbs = canvas.copy()
        for li, (a, b) in enumerate(_LIMBS):
            if body[a, 2] <= 0 or body[b, 2] <= 0:
                continue
            (xa, ya), (xb, yb) = body[a, :2], body[b, :2]
            length = float(np.hypot(xb - xa, yb - ya))
            angle = float(np.degrees(np.arctan2(yb - ya, xb - xa)))
            poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)),
                                    (max(1, int(length / 2)), stick_width), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(limbs, poly, BODY_COLORS[li])
        canvas = cv2.addWeighted(canvas, 0.4, limbs, 0.6, 0)
        for j, (x, y, c) in enumerate(body):
            if c > 0:
                cv2.circle(canvas, (int(x), int(y)), radius, BODY_COLORS[j], -1)
        for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            hand = np.asarray(person.get(key) or [], np.float64).reshape(-1, 3)
            if len(hand) != _HAND:
                continue
            for bi, (a, b) in enumerate(_HAND_BONES):
                if hand[a, 2] > 0 and hand[b, 2] > 0:
                    cv2.line(canvas, (int(hand[a, 0]), int(hand[a, 1])),
                             (int(hand[b, 0]), int(hand[b, 1])),
                             _hue_rgb(bi / len(_HAND_BONES)), 2)
            for x, y, c in hand:
                if c > 0:
                    cv2.circle(canvas, (int(x), int(y)), 3, (0, 0, 255), -1)
        face = np.asarray(person.get("face_keypoints_2d") or [], np.float64).reshape(-1, 3)
        for x, y, c in face:
            if c > 0:
                cv2.circle(canvas, (int(x), int(y)), 2, (255, 255, 255), -1)
    return canvas


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _stem(source: Any, fallback: str) -> str:
    stem = Path(str(source)).stem
    return stem if stem and re.fullmatch(r"[\w.-]+", stem) else fallback


def _names(frames: list[tuple[int, Any]], video: bool, stem: str | None) -> list[str]:
    if video:
        stem = stem or (_stem(frames[0][1].source, "frame") if frames else "frame")
        return [f"{stem}_{f:012d}" for f, _ in frames]
    stems = [_stem(r.source, f"image_{r.image_id}") for _, r in frames]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [s if seen[s] == 1 else f"{s}_{r.image_id}" for s, (_, r) in zip(stems, frames)]


def write_openpose(results: Any, out_dir: str | os.PathLike[str], *,
                   meta: DatasetMeta | str | None = None, body: str = "coco18",
                   min_score: float = 0.3, video: bool = False, render: bool = False,
                   background: str = "black", overwrite: bool = False,
                   stem: str | None = None,
                   show_progress: bool | None = None) -> tuple[list[Path], list[str]]:
    """One ``<name>_keypoints.json`` per image (or ``<video>_<frame:012d>_keypoints.json`` per
    frame), and with ``render`` an OpenPose-style ``<name>_rendered.png`` beside it.

    Args:
        background: ``black`` or ``image`` (draw on the image itself, read from the result's
            ``source``; images only).
        stem: the name of a video's files (default: the results' ``source`` file name, else
            ``frame``); images are named after their files.

    Returns:
        ``(paths written, notes)``; notes say what the keypoint set cannot fill (hands, face).
    """
    if background not in ("black", "image"):
        raise InputError(f"background must be 'black' or 'image', got {background!r}")
    if background == "image" and video:
        raise InputError("--background image draws on image files; for videos use black")
    frames = as_frames(results)
    meta = keypoint_set([r for _, r in frames], meta)
    layout = openpose_layout(meta, body)
    out = prepare_target(out_dir, overwrite=overwrite, folder=True)
    paths: list[Path] = []
    items = list(zip(_names(frames, video, stem), frames))
    for name, (_, result) in progress(items, len(items), "OpenPose files", show_progress):
        pose = to_openpose(result, meta=meta, body=body, min_score=min_score)
        paths.append(atomic_write_json(out / f"{name}_keypoints.json", pose))
        if render:
            image = None
            if background == "image":
                try:
                    image = read_image(result.source)
                except InputError as e:
                    raise InputError(f"cannot read the image {result.source} to draw on "
                                     f"({e})") from None
            drawn = draw_openpose(pose, image)
            paths.append(write_image(out / f"{name}_rendered.png", drawn))
    return paths, list(layout.notes)

"""Data frames and supervision objects.

* `to_pandas` : one row per instance x keypoint, for images and for video frames.
* `to_supervision` : an ``sv.KeyPoints`` of one result; `supervision_edges` gives the skeleton of
  a keypoint set in the 1-based form that ``sv.EdgeAnnotator(edges=...)`` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vitpose.dataset_meta import DatasetMeta
from vitpose.errors import InputError
from vitpose.formats.common import as_frames, keypoint_set, require

__all__ = ["TABLE_COLUMNS", "supervision_edges", "to_pandas", "to_supervision"]

#: Columns of `to_pandas` (``frame`` and ``time_s`` are empty for images).
TABLE_COLUMNS = ("source", "image_id", "frame", "time_s", "instance", "track_id", "category",
                 "keypoint", "name", "x", "y", "score", "instance_score", "box_x", "box_y",
                 "box_w", "box_h")


def to_pandas(results: Any, *, meta: DatasetMeta | str | None = None, fps: float | None = None,
              video: bool | None = None, frame_indices: Sequence[int] | None = None) -> Any:
    """One row per instance x keypoint of one or many results, as a ``pandas.DataFrame``.

    Args:
        results: a `PoseResult`, a list of them (images, or the frames of a video), or the
            ``(index, result)`` / ``(index, frame, result)`` items of a video.
        meta: the keypoint set (default: the results' own).
        fps: frame rate of a video: fills ``time_s`` (``frame / fps``).
        video: the results are frames (default: when ``fps`` or ``frame_indices`` is given, or
            the items carry their frame index).
        frame_indices: frame number of each result (default: its position).

    Columns are `TABLE_COLUMNS`; ``track_id`` and ``frame`` are nullable integers.
    """
    pd = require("pandas", "tables")
    indexed = not hasattr(results, "instances") and any(isinstance(r, tuple) for r in results)
    frames = as_frames(results, frame_indices)
    meta = keypoint_set([r for _, r in frames], meta)
    if video is None:
        video = bool(fps or frame_indices is not None or indexed)
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    names = np.array(meta.keypoint_names, dtype=object)
    k = meta.num_keypoints
    parts: list[dict[str, Any]] = []
    for frame, result in frames:
        for n, inst in enumerate(result.instances):
            kp = np.asarray(inst.keypoints, np.float64)
            if kp.shape != (k, 3):
                raise InputError(f"{result.source}: an instance has {kp.shape[0]} keypoints, the "
                                 f"keypoint set {meta.name!r} has {k}")
            box = np.asarray(inst.box_xywh, np.float64)
            parts.append({
                "source": [str(result.source)] * k, "image_id": [result.image_id] * k,
                "frame": [frame if video else None] * k,
                "time_s": [frame / fps if (video and fps) else np.nan] * k,
                "instance": [n] * k, "track_id": [inst.track_id] * k,
                "category": [inst.category or inst.dataset or meta.name] * k,
                "keypoint": np.arange(k), "name": names, "x": kp[:, 0], "y": kp[:, 1],
                "score": kp[:, 2], "instance_score": [float(inst.score)] * k,
                "box_x": [box[0]] * k, "box_y": [box[1]] * k, "box_w": [box[2]] * k,
                "box_h": [box[3]] * k})
    if not parts:
        table = pd.DataFrame({c: [] for c in TABLE_COLUMNS})
    else:
        table = pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
    table["frame"] = table["frame"].astype("Int64")
    table["track_id"] = table["track_id"].astype("Int64")
    table["instance"] = table["instance"].astype("int64")
    table["keypoint"] = table["keypoint"].astype("int64")
    for c in ("x", "y", "score", "instance_score", "box_x", "box_y", "box_w", "box_h", "time_s"):
        table[c] = table[c].astype("float64")
    for c in ("source", "category", "name"):
        table[c] = table[c].astype("string")
    return table[list(TABLE_COLUMNS)]


def supervision_edges(meta: DatasetMeta | str) -> list[tuple[int, int]]:
    """The skeleton of a keypoint set as supervision's 1-based ``(a, b)`` edges."""
    meta = keypoint_set([], meta)
    return [(a + 1, b + 1) for a, b in meta.skeleton]


def to_supervision(result: Any, *, meta: DatasetMeta | str | None = None,
                   class_names: Sequence[str] | None = None) -> Any:
    """One result as ``supervision.KeyPoints``.

    ``xy`` ``(N, K, 2)``, ``keypoint_confidence`` ``(N, K)``, ``detection_confidence`` the
    instance scores, ``class_id`` the index of each instance's category in ``class_names``
    (default: the categories in order of appearance; ``person`` when unknown) and ``data``
    with ``class_name``, ``tracker_id`` (-1 when untracked) and ``xyxy`` boxes. Draw it with
    ``sv.EdgeAnnotator(edges=supervision_edges(meta))`` and ``sv.VertexAnnotator()``.
    """
    sv = require("supervision", "supervision")
    meta = keypoint_set(result, meta)
    k = meta.num_keypoints
    insts = list(result.instances)
    for inst in insts:
        if np.asarray(inst.keypoints).shape != (k, 3):
            raise InputError(f"{result.source}: an instance does not have the {k} keypoints of "
                             f"{meta.name!r}")
    cats = [inst.category or "person" for inst in insts]
    names = list(class_names) if class_names is not None else list(dict.fromkeys(cats))
    missing = sorted(set(cats) - set(names))
    if missing:
        raise InputError(f"class_names lacks the categories {', '.join(missing)}")
    kp = (np.stack([np.asarray(i.keypoints, np.float32) for i in insts]) if insts
          else np.zeros((0, k, 3), np.float32))
    boxes = (np.stack([np.asarray(i.box_xywh, np.float32) for i in insts]) if insts
             else np.zeros((0, 4), np.float32))
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    return sv.KeyPoints(
        xy=kp[..., :2].copy(), keypoint_confidence=kp[..., 2].copy(),
        class_id=np.array([names.index(c) for c in cats], dtype=int),
        detection_confidence=np.array([i.score for i in insts], np.float32),
        data={"class_name": np.array(cats, dtype=str),
              "tracker_id": np.array([-1 if i.track_id is None else int(i.track_id)
                                      for i in insts], dtype=int),
              "xyxy": xyxy})

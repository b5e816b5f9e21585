"""Tracks over time: track-major tables and per-track arrays of a finished video, and an offline
smoother for them.

The smoother is for whole videos (it looks ahead); the live One-Euro filter of the video
predictor is a different, causal thing. Per track and keypoint it

1. fills gaps of at most ``max_gap`` frames by linear interpolation between the confident
   samples on both sides (a missing frame of a track becomes an instance again; a longer gap
   is left as it is, so nothing is invented beyond the limit);
2. runs a zero-lag local quadratic fit (a Savitzky-Golay filter whose samples are weighted by
   their keypoint scores, so unsure samples pull less; with equal scores it is exactly
   Savitzky-Golay) over confident and filled samples, one run of them at a time.

Keypoints under ``min_score`` keep their values and give no weight. `SmoothReport` says what
was done: frames and keypoints filled, gaps left, and each track's jitter (mean size of the
frame-to-frame acceleration, pixels / frame^2) before and after.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.dataset_meta import DatasetMeta
from vitpose.errors import InputError, OutputError
from vitpose.fileio import atomic_open
from vitpose.formats.common import as_frames, keypoint_set, prepare_target, require
from vitpose.formats.tables import to_pandas

__all__ = ["SmoothReport", "Track", "TrackSmoothing", "jitter", "smooth_tracks", "track_arrays",
           "track_table", "write_track_table", "write_track_arrays"]

TRACK_COLUMNS = ("track_id", "frame", "time_s", "keypoint", "name", "x", "y", "score",
                 "instance_score", "box_x", "box_y", "box_w", "box_h")


@dataclass
class Track:
    """One track: ``keypoints`` ``(T, K, 3)`` (x, y, score) at the frames ``frames`` ``(T,)``."""

    track_id: int
    frames: np.ndarray
    keypoints: np.ndarray
    boxes_xywh: np.ndarray

    def times(self, fps: float) -> np.ndarray:
        return self.frames / float(fps)


def _check_fps(fps: float | None) -> float | None:
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return None if fps is None else float(fps)


def track_arrays(results: Any, *, meta: DatasetMeta | str | None = None,
                 frame_indices: Sequence[int] | None = None) -> dict[int, Track]:
    """Per track id, its frames and ``(T, K, 3)`` keypoints, in frame order.

    Raises:
        InputError: no instance has a track id (images, or a video run without tracking), or
            the video has no instances at all.
    """
    frames = as_frames(results, frame_indices)
    meta = keypoint_set([r for _, r in frames], meta)
    per: dict[int, tuple[list[int], list[np.ndarray], list[np.ndarray]]] = {}
    untracked = 0
    for f, result in frames:
        for inst in result.instances:
            if inst.track_id is None:
                untracked += 1
                continue
            kp = np.asarray(inst.keypoints, np.float64)
            if kp.shape != (meta.num_keypoints, 3):
                raise InputError(f"an instance of frame {f} has {kp.shape[0]} keypoints, the "
                                 f"keypoint set {meta.name!r} has {meta.num_keypoints}")
            fr, kps, boxes = per.setdefault(int(inst.track_id), ([], [], []))
            if fr and fr[-1] == f:
                raise InputError(f"track {inst.track_id} appears twice in frame {f}")
            fr.append(f)
            kps.append(kp)
            boxes.append(np.asarray(inst.box_xywh, np.float64))
    if not per:
        if untracked:
            raise InputError("these results have no track ids: track people over the video "
                             "(tracking on) to write tracks")
        raise InputError(f"the video has no tracks: nobody was found in its {len(frames)} "
                         "frame(s)")
    return {tid: Track(tid, np.array(fr, np.int64), np.stack(kps), np.stack(boxes))
            for tid, (fr, kps, boxes) in sorted(per.items())}


def track_table(results: Any, *, fps: float | None = None, meta: DatasetMeta | str | None = None,
                frame_indices: Sequence[int] | None = None) -> Any:
    """The track-major table: one row per track x frame x keypoint (columns `TRACK_COLUMNS`),
    sorted by track, frame, keypoint; ``time_s`` is ``frame / fps`` (empty without fps)."""
    track_arrays(results, meta=meta, frame_indices=frame_indices)  # the clear errors first
    table = to_pandas(results, meta=meta, fps=_check_fps(fps), video=True,
                      frame_indices=frame_indices)
    table = table[table["track_id"].notna()]
    table = table.sort_values(["track_id", "frame", "keypoint"], kind="stable")
    return table[list(TRACK_COLUMNS)].reset_index(drop=True)


def write_track_table(results: Any, path: str | os.PathLike[str], *, fps: float | None = None,
                      meta: DatasetMeta | str | None = None, overwrite: bool = False,
                      frame_indices: Sequence[int] | None = None) -> Path:
    """`track_table` as ``.csv`` or ``.parquet`` (by the suffix); fps is kept in the Parquet
    metadata (``vitpose.fps``) and in the ``time_s`` column."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".csv", ".parquet"):
        raise OutputError(f"{path}: a track table is written as .csv or .parquet")
    prepare_target(path, overwrite=overwrite)
    table = track_table(results, fps=fps, meta=meta, frame_indices=frame_indices)
    if kind == ".csv":
        with atomic_open(path, "w") as f:
            table.to_csv(f, index=False)
        return path
    pa = require("pyarrow", "tables")
    pq = require("pyarrow.parquet", "tables")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    info = {b"vitpose.fps": str(fps if fps else "").encode(),
            b"vitpose.keypoint_set": keypoint_set([r for _, r in as_frames(results,
                                                                             frame_indices)],
                                                  meta).name.encode()}
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **info})
    with atomic_open(path, "wb") as f:
        pq.write_table(arrow, f)
    return path


def write_track_arrays(results: Any, path: str | os.PathLike[str], *, fps: float | None = None,
                       meta: DatasetMeta | str | None = None, overwrite: bool = False,
                       frame_indices: Sequence[int] | None = None) -> Path:
    """Per-track arrays in one ``.npz``: ``track_ids`` ``(M,)``, and per id ``track_<id>``
    ``(T, K, 3)``, ``track_<id>_frames`` ``(T,)``, ``track_<id>_time_s`` ``(T,)`` (NaN without
    fps), ``track_<id>_boxes_xywh`` ``(T, 4)``; plus ``fps`` (NaN when unknown) and
    ``keypoint_names``."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise OutputError(f"{path}: per-track arrays are written as .npz")
    prepare_target(path, overwrite=overwrite)
    fps = _check_fps(fps)
    meta = keypoint_set([r for _, r in as_frames(results, frame_indices)], meta)
    tracks = track_arrays(results, meta=meta, frame_indices=frame_indices)
    arrays: dict[str, np.ndarray] = {
        "track_ids": np.array(list(tracks), np.int64),
        "fps": np.array(np.nan if fps is None else fps),
        "keypoint_names": np.array(meta.keypoint_names)}
    for tid, t in tracks.items():
        arrays[f"track_{tid}"] = t.keypoints.astype(np.float32)
        arrays[f"track_{tid}_frames"] = t.frames
        arrays[f"track_{tid}_time_s"] = (t.times(fps) if fps else
                                         np.full(len(t.frames), np.nan))
        arrays[f"track_{tid}_boxes_xywh"] = t.boxes_xywh.astype(np.float32)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


# --------------------------------------------------------------------------------------------
# Offline smoothing
# --------------------------------------------------------------------------------------------


@dataclass
class TrackSmoothing:
    """What the smoother did to one track."""

    track_id: int
    frames_filled: int = 0
    keypoints_filled: int = 0
    gaps_left: int = 0
    jitter_before: float = float("nan")
    jitter_after: float = float("nan")


@dataclass
class SmoothReport:
    """What `smooth_tracks` did, per track and in total."""

    tracks: dict[int, TrackSmoothing] = field(default_factory=dict)

    @property
    def frames_filled(self) -> int:
        return sum(t.frames_filled for t in self.tracks.values())

    @property
    def keypoints_filled(self) -> int:
        return sum(t.keypoints_filled for t in self.tracks.values())

    def summary(self) -> str:
        lines = [f"smoothed {len(self.tracks)} track(s): {self.frames_filled} missing frame(s) "
                 f"and {self.keypoints_filled} keypoint(s) filled"]
        for t in self.tracks.values():
            lines.append(f"  track {t.track_id}: jitter {t.jitter_before:.2f} -> "
                         f"{t.jitter_after:.2f} px/frame^2, {t.frames_filled} frame(s) filled, "
                         f"{t.gaps_left} gap(s) over the limit left open")
        return "\n".join(lines)


def jitter(xy: np.ndarray, valid: np.ndarray) -> float:
    """Mean length of the second difference (acceleration, px/frame^2) of ``xy`` ``(T, K, 2)``
    over the triples of consecutive frames where the keypoint is ``valid`` ``(T, K)``."""
    if len(xy) < 3:
        return float("nan")
    acc = xy[2:] - 2 * xy[1:-1] + xy[:-2]
    ok = valid[2:] & valid[1:-1] & valid[:-2]
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(acc, axis=-1)[ok].mean())


def _fill(values: np.ndarray, good: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear fill of runs of at most ``max_gap`` bad samples between good ones, per column.
    values ``(T, K, C)``, good ``(T, K)``; returns the values and which samples were filled."""
    out = values.copy()
    filled = np.zeros(good.shape, bool)
    t_all = np.arange(len(values))
    for k in range(good.shape[1]):
        idx = np.flatnonzero(good[:, k])
        for a, b in zip(idx[:-1], idx[1:]):
            if 1 < b - a <= max_gap + 1:
                ts = t_all[a + 1:b]
                w = ((ts - a) / (b - a))[:, None]
                out[a + 1:b, k] = (1 - w) * values[a, k] + w * values[b, k]
                filled[a + 1:b, k] = True
    return out, filled


def _weighted_savgol(xy: np.ndarray, w: np.ndarray, half: int) -> np.ndarray:
    """Local quadratic least-squares fit at every sample, over ``2 half + 1`` neighbours
    weighted by ``w`` ``(T, K)`` (0 = ignored); samples with too little support keep their
    values. xy ``(T, K, 2)``."""
    t = len(xy)
    m = np.zeros((5, *w.shape))           # sums of w d^p, p = 0..4
    r = np.zeros((3, *xy.shape))          # sums of w d^p x, p = 0..2
    for d in range(-half, half + 1):
        lo, hi = max(0, -d), min(t, t - d)
        if lo >= hi:
            continue
        ww = np.zeros_like(w)
        ww[lo:hi] = w[lo + d:hi + d]
        xs = np.zeros_like(xy)
        xs[lo:hi] = xy[lo + d:hi + d]
        for p in range(5):
            m[p] += ww * float(d) ** p
        for p in range(3):
            r[p] += (ww * float(d) ** p)[..., None] * xs
    a = np.stack([np.stack([m[0], m[1], m[2]], -1), np.stack([m[1], m[2], m[3]], -1),
                  np.stack([m[2], m[3], m[4]], -1)], -2)       # (T, K, 3, 3)
    det = np.linalg.det(a)
    scale = np.maximum(m[0], 1e-12) ** 3 * max(half, 1) ** 6
    solvable = np.abs(det) > 1e-6 * scale
    out = xy.copy()
    if solvable.any():
        rhs = np.moveaxis(r, 0, -1)[solvable]                   # (n, 2, 3)
        coef = np.linalg.solve(a[solvable][:, None], rhs[..., None])[..., 0]  # (n, 2, 3)
        out[solvable] = coef[..., 0]
    return out


def smooth_tracks(results: Any, *, max_gap: int = 5, window: int = 9, min_score: float = 0.3,
                  meta: DatasetMeta | str | None = None,
                  frame_indices: Sequence[int] | None = None) -> tuple[list[Any], SmoothReport]:
    """Smoothed copies of the frames of a finished, tracked video, and what was done.

    Args:
        results: the per-frame results in frame order (see `as_frames` for the accepted forms).
        max_gap: longest run of missing or unsure frames that is filled (0: fill nothing).
        window: frames in the zero-lag filter window (odd, >= 3; 1 turns filtering off).
        min_score: keypoints under this score are neither trusted nor changed.
        meta: the keypoint set (default: the results' own).

    Returns:
        ``(frames, report)``: new `PoseResult` objects, one per input frame (the inputs are left
        untouched), with filled frames of a track as new instances, and the `SmoothReport`.
        Filled keypoints get the lower score of the two ends.
    """
    if int(max_gap) < 0:
        raise InputError(f"max_gap must be >= 0, got {max_gap}")
    if int(window) < 1 or (int(window) > 1 and (int(window) < 3 or int(window) % 2 == 0)):
        raise InputError(f"window must be 1 or an odd number >= 3, got {window}")
    frames = as_frames(results, frame_indices)
    meta = keypoint_set([r for _, r in frames], meta)
    tracks = track_arrays(frames, meta=meta)
    out = [(f, copy.deepcopy(r)) for f, r in frames]
    position = {f: i for i, (f, _) in enumerate(out)}
    report = SmoothReport()
    for tid, tr in tracks.items():
        first, last = int(tr.frames[0]), int(tr.frames[-1])
        span = [f for f, _ in out if first <= f <= last]
        slot = {f: i for i, f in enumerate(span)}
        k = meta.num_keypoints
        kp = np.zeros((len(span), k, 3))
        box = np.zeros((len(span), 4))
        present = np.zeros(len(span), bool)
        for f, kpf, b in zip(tr.frames, tr.keypoints, tr.boxes_xywh):
            kp[slot[int(f)]], box[slot[int(f)]], present[slot[int(f)]] = kpf, b, True
        good = present[:, None] & (kp[..., 2] >= min_score) & np.isfinite(kp[..., :2]).all(-1)
        info = TrackSmoothing(tid, jitter_before=jitter(kp[..., :2], good))
        # 1. fill: coordinates and scores of unsure or missing samples in short gaps
        filled_xy, filled = _fill(kp[..., :2], good, max_gap)
        scores = kp[..., 2].copy()
        for kk in range(k):
            idx = np.flatnonzero(good[:, kk])
            for a, b in zip(idx[:-1], idx[1:]):
                if b - a > 1 and filled[a + 1, kk]:
                    scores[a + 1:b, kk] = min(kp[a, kk, 2], kp[b, kk, 2])
        box_filled, box_done = _fill(box[:, None, :], present[:, None], max_gap)
        new_frames = box_done[:, 0] & ~present
        info.frames_filled = int(new_frames.sum())
        info.keypoints_filled = int(filled.sum())
        gaps = np.flatnonzero(present)
        info.gaps_left = int(np.sum(np.diff(gaps) > max_gap + 1))
        trusted = good | filled
        # 2. zero-lag filter over trusted samples, weighted by score
        xy = filled_xy
        if window > 1:
            weights = np.where(trusted, np.clip(scores, 1e-3, 1.0), 0.0)
            xy = np.where(trusted[..., None], _weighted_savgol(filled_xy, weights, window // 2),
                          filled_xy)
        info.jitter_after = jitter(xy, good)
        report.tracks[tid] = info
        # 3. write back
        for i, f in enumerate(span):
            result = out[position[f]][1]
            if present[i]:
                inst = next(x for x in result.instances if x.track_id == tid)
                inst.keypoints = np.asarray(inst.keypoints).copy()
                upd = trusted[i]
                inst.keypoints[upd, :2] = xy[i, upd]
                inst.keypoints[upd, 2] = scores[i, upd]
            elif new_frames[i]:
                template = next(x for x in out[position[int(tr.frames[0])]][1].instances
                                if x.track_id == tid)
                inst = copy.deepcopy(template)
                b = box_filled[i, 0]
                kpn = np.zeros((k, 3), np.float32)
                kpn[:, :2] = xy[i]
                kpn[:, 2] = np.where(trusted[i], scores[i], 0.0)
                inst.keypoints, inst.box_xywh = kpn, b.astype(np.float32)
                inst.center = (b[:2] + b[2:] / 2).astype(np.float32)
                inst.score = float(kpn[trusted[i], 2].mean()) if trusted[i].any() else 0.0
                inst.box_score = 0.0
                result.instances.append(inst)
                result.warnings.append(f"track {tid} filled in by interpolation")
    return [r for _, r in out], report

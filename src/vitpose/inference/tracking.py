"""Following people across video frames: track ids, temporal smoothing and the detection
interval.

* `PoseTracker` gives pose instances persistent integer ids across frames by greedy matching on
  OKS (object keypoint similarity) or box IoU; `tracker_for` picks the metric an estimator
  needs (OKS for one keypoint set, box IoU for a routed estimator's several).
* `OneEuroFilter` / `PoseSmoother` reduce keypoint jitter with the One-Euro filter (Casiez et al.,
  CHI 2012), vectorised over keypoints, one filter state per track.
* `IntervalBoxes` runs the detector every N frames and, in between, takes each tracked
  instance's box from its previous keypoints (`pose_box_xywh`); `check_det_interval` is the one
  check of N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InputError

__all__ = [
    "IntervalBoxes",
    "OneEuroFilter",
    "PoseSmoother",
    "PoseTracker",
    "Track",
    "assign_tracks",
    "check_det_interval",
    "iou_matrix",
    "keypoint_boxes_xyxy",
    "oks_matrix",
    "pose_box_xywh",
    "tracker_for",
]


def check_det_interval(interval: Any) -> int:
    """The detection interval as a whole number of frames, at least 1 (`InputError` if not):
    the one check behind ``--det-interval``, the demo and the Python API."""
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) \
            and not (isinstance(interval, float) and interval.is_integer()):
        raise InputError(f"the detection interval (--det-interval) is a whole number of frames, "
                         f"got {interval!r}")
    if int(interval) < 1:
        raise InputError(f"the detection interval (--det-interval) must be at least 1 frame, "
                         f"got {int(interval)}")
    return int(interval)


def tracker_for(estimator: Any) -> PoseTracker:
    """A tracker for an estimator's instances: OKS with its keypoint sigmas, or box IoU when a
    routed estimator gives instances of several keypoint sets."""
    if estimator.routed:
        return PoseTracker(metric="iou")
    return PoseTracker(metric="oks", sigmas=estimator.meta.sigmas)



def keypoint_boxes_xyxy(
    keypoints: np.ndarray, scores: np.ndarray, kpt_thr: float = 0.3
) -> np.ndarray:
    """Tight boxes around each instance's confident keypoints.

    Args:
        keypoints: ``(N, K, 2)`` ``x, y`` in image pixels.
        scores: ``(N, K)`` confidences.
        kpt_thr: keypoints below this score are ignored (all are used if none passes).

    Returns:
        ``(N, 4)`` float64 ``x1, y1, x2, y2`` in image pixels.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    conf = np.asarray(scores, dtype=np.float64)
    out = np.zeros((kpts.shape[0], 4), dtype=np.float64)
    for i in range(kpts.shape[0]):
        ok = (conf[i] >= kpt_thr) & np.isfinite(kpts[i]).all(axis=1)
        if not ok.any():
            ok = np.isfinite(kpts[i]).all(axis=1)
        if ok.any():
            pts = kpts[i][ok]
            out[i] = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
    return out


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU.

    Args:
        boxes_a: ``(N, 4)`` ``x1, y1, x2, y2``.
        boxes_b: ``(M, 4)`` ``x1, y1, x2, y2``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    iw, ih = np.clip(hi - lo, 0, None).transpose(2, 0, 1)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def oks_matrix(
    kpts_a: np.ndarray,
    vis_a: np.ndarray,
    kpts_b: np.ndarray,
    vis_b: np.ndarray,
    areas_b: np.ndarray,
    sigmas: np.ndarray,
) -> np.ndarray:
    """Pairwise object keypoint similarity (COCO formula), using keypoints visible in both.

    Args:
        kpts_a: ``(N, K, 2)`` keypoints in image pixels.
        vis_a: ``(N, K)`` bool, keypoint usable.
        kpts_b: ``(M, K, 2)`` reference keypoints in image pixels.
        vis_b: ``(M, K)`` bool.
        areas_b: ``(M,)`` object areas in pixels² (the scale of each reference instance).
        sigmas: ``(K,)`` per-keypoint falloff constants (COCO sigmas).

    Returns:
        ``(N, M)`` OKS in ``[0, 1]`` (0 where no keypoint is visible in both).
    """
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((a[:, None] - b[None]) ** 2).sum(axis=-1)  # (N, M, K)
    area = np.maximum(np.asarray(areas_b, dtype=np.float64), 1.0)[None, :, None]
    e = d2 / (2.0 * var[None, None] * area)
    both = np.asarray(vis_a, bool)[:, None] & np.asarray(vis_b, bool)[None]
    with np.errstate(invalid="ignore"):
        sim = np.where(both, np.exp(-np.nan_to_num(e, nan=np.inf)), 0.0)
    count = both.sum(axis=-1)
    return np.where(count > 0, sim.sum(axis=-1) / np.maximum(count, 1), 0.0)


@dataclass(eq=False)
class Track:
    """State of one tracked instance.

    Attributes:
        track_id: persistent integer id (never reused).
        keypoints: ``(K, 2)`` last matched keypoints, image pixels.
        scores: ``(K,)`` their confidences.
        box_xyxy: ``(4,)`` last box, image pixels.
        missed: consecutive frames without a match.
        hits: frames with a match so far.
    """

    track_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    box_xyxy: np.ndarray
    missed: int = 0
    hits: int = 1


@dataclass(eq=False)
class PoseTracker:
    """Greedy frame-to-frame association of pose instances.

    Every frame, the similarity between each new instance and each live track is computed
    (OKS over keypoints confident in both, with the track's box area as scale; or box IoU); pairs
    are taken greedily from the most similar down while above ``threshold``. Unmatched instances
    start new tracks with fresh ids; tracks unmatched for more than ``max_missed`` consecutive
    frames are dropped.

    Args:
        metric: ``"oks"`` (needs ``sigmas``) or ``"iou"``.
        threshold: minimum similarity for a match.
        sigmas: ``(K,)`` OKS sigmas of the keypoint layout (e.g. the COCO ones).
        max_missed: frames a track survives without a match.
        kpt_thr: keypoints below this score are ignored by OKS and keypoint boxes.
    """

    metric: Literal["oks", "iou"] = "oks"
    threshold: float = 0.3
    sigmas: np.ndarray | Sequence[float] | None = None
    max_missed: int = 10
    kpt_thr: float = 0.3
    tracks: list[Track] = field(default_factory=list, init=False)
    _next_id: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metric not in ("oks", "iou"):
            raise ValueError(f"metric must be 'oks' or 'iou', got {self.metric!r}")
        if self.metric == "oks" and self.sigmas is None:
            raise ValueError("OKS tracking needs the per-keypoint sigmas of the dataset")
        if self.sigmas is not None:
            self.sigmas = np.asarray(self.sigmas, dtype=np.float64).reshape(-1)

    def reset(self) -> None:
        """Forgets all tracks (ids keep increasing)."""
        self.tracks = []

    def update(
        self,
        keypoints: np.ndarray,
        scores: np.ndarray,
        boxes_xyxy: np.ndarray | None = None,
    ) -> np.ndarray:
        """Assigns track ids to this frame's instances.

        Args:
            keypoints: ``(N, K, 2)`` ``x, y`` in image pixels.
            scores: ``(N, K)`` keypoint confidences.
            boxes_xyxy: optional ``(N, 4+)`` boxes ``x1, y1, x2, y2`` in image pixels; by default
                the boxes around the confident keypoints.

        Returns:
            ``(N,)`` int64 track ids, in the order of the instances.
        """
        kpts = np.asarray(keypoints, dtype=np.float64)
        if kpts.size == 0:
            kpts = kpts.reshape(0, 0 if self.sigmas is None else len(self.sigmas), 2)
        conf = np.asarray(scores, dtype=np.float64).reshape(kpts.shape[:2])
        n, k = kpts.shape[:2]
        if self.metric == "oks" and self.sigmas is not None and n and k != len(self.sigmas):
            raise ValueError(f"{k} keypoints but {len(self.sigmas)} OKS sigmas")
        if boxes_xyxy is None:
            boxes = keypoint_boxes_xyxy(kpts, conf, self.kpt_thr)
        else:
            boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(n, -1)[:, :4]
        vis = (conf >= self.kpt_thr) & np.isfinite(kpts).all(axis=2)

        ids = np.full((n,), -1, dtype=np.int64)
        if n and self.tracks:
            if self.metric == "oks":
                t_kpts = np.stack([t.keypoints for t in self.tracks])
                t_vis = np.stack([(t.scores >= self.kpt_thr) for t in self.tracks])
                t_vis &= np.isfinite(t_kpts).all(axis=2)
                t_box = np.stack([t.box_xyxy for t in self.tracks])
                areas = (t_box[:, 2] - t_box[:, 0]) * (t_box[:, 3] - t_box[:, 1])
                sim = oks_matrix(kpts, vis, t_kpts, t_vis, areas, np.asarray(self.sigmas))
            else:
                sim = iou_matrix(boxes, np.stack([t.box_xyxy for t in self.tracks]))
            order = np.argsort(-sim, axis=None, kind="stable")
            used_tracks: set[int] = set()
            for flat in order:
                i, j = divmod(int(flat), sim.shape[1])
                if sim[i, j] < self.threshold:
                    break
                if ids[i] >= 0 or j in used_tracks:
                    continue
                track = self.tracks[j]
                ids[i] = track.track_id
                used_tracks.add(j)
                track.keypoints, track.scores, track.box_xyxy = kpts[i], conf[i], boxes[i]
                track.missed = 0
                track.hits += 1
            for j, track in enumerate(self.tracks):
                if j not in used_tracks:
                    track.missed += 1
        else:
            for track in self.tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for i in np.nonzero(ids < 0)[0]:
            ids[i] = self._next_id
            self.tracks.append(Track(self._next_id, kpts[i], conf[i], boxes[i]))
            self._next_id += 1
        return ids


# --------------------------------------------------------------------------------------------
# Smoothing
# --------------------------------------------------------------------------------------------


def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro low-pass filter for an array signal, every element filtered independently.

    The cutoff frequency grows with the (filtered) speed of each element:
    ``cutoff = min_cutoff + beta * |dx/dt|``, so slow movements are smoothed strongly (less
    jitter) and fast ones lightly (less lag). Units follow the signal: for pixel coordinates and
    time in seconds, ``beta`` is in 1/pixel.

    Non-finite input elements are passed through and do not change the filter state.

    Args:
        min_cutoff: cutoff frequency at rest (Hz); lower = smoother.
        beta: speed coefficient; higher = less lag on fast motion.
        d_cutoff: cutoff frequency (Hz) used to smooth the speed estimate.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forgets the signal history."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filters one sample.

        Args:
            x: the sample, any shape (e.g. ``(K, 2)`` keypoints); a shape change restarts.
            t: its time in seconds (e.g. ``frame_index / fps``), increasing between calls.

        Returns:
            The filtered sample, float64, same shape as ``x``.

        Raises:
            ValueError: ``t`` is not after the previous sample's time.
        """
        x = np.asarray(x, dtype=np.float64)
        finite = np.isfinite(x)
        if self._x is None or self._x.shape != x.shape or self._t is None:
            self._x = np.where(finite, x, np.nan)
            self._dx = np.zeros_like(x)
            self._t = float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            raise ValueError(f"time must increase between samples (got {t} after {self._t})")
        prev = self._x
        fresh = finite & ~np.isfinite(prev)  # first valid value of an element: take it as is
        dx = np.where(finite & ~fresh, (x - np.nan_to_num(prev)) / dt, 0.0)
        a_d = _alpha(dt, self.d_cutoff)
        assert self._dx is not None
        dx_hat = np.where(finite & ~fresh, a_d * dx + (1.0 - a_d) * self._dx, self._dx)
        a = _alpha(dt, self.min_cutoff + self.beta * np.abs(dx_hat))
        x_hat = np.where(fresh, x, a * x + (1.0 - a) * np.nan_to_num(prev))
        out = np.where(finite, x_hat, x)
        self._x = np.where(finite, x_hat, prev)
        self._dx = np.where(fresh, 0.0, dx_hat)
        self._t = float(t)
        return out


class PoseSmoother:
    """One `OneEuroFilter` per track id for ``(K, 2)`` keypoints.

    Args:
        fps: frame rate used to turn frame indices into seconds.
        min_cutoff: see `OneEuroFilter`.
        beta: see `OneEuroFilter`.
        d_cutoff: see `OneEuroFilter`.
        max_missed: a track's filter is dropped after this many frames without it.
    """

    def __init__(
        self,
        fps: float,
        min_cutoff: float = 1.0,
        beta: float = 0.01,
        d_cutoff: float = 1.0,
        max_missed: int = 10,
    ) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.params = (float(min_cutoff), float(beta), float(d_cutoff))
        self.max_missed = int(max_missed)
        self._filters: dict[int, OneEuroFilter] = {}
        self._last_seen: dict[int, int] = {}

    def __call__(
        self, track_ids: Sequence[int] | np.ndarray, keypoints: np.ndarray, frame_index: int
    ) -> np.ndarray:
        """Smooths this frame's keypoints.

        Args:
            track_ids: ``(N,)`` ids from `PoseTracker.update`.
            keypoints: ``(N, K, 2)`` ``x, y`` in image pixels.
            frame_index: index of the frame in the video (time = ``frame_index / fps``).

        Returns:
            ``(N, K, 2)`` float64 smoothed keypoints.
        """
        kpts = np.asarray(keypoints, dtype=np.float64)
        out = kpts.copy()
        t = frame_index / self.fps
        for i, tid in enumerate(np.asarray(track_ids).reshape(-1).tolist()):
            filt = self._filters.get(tid)
            if filt is None:
                filt = self._filters[tid] = OneEuroFilter(*self.params)
            out[i] = filt(kpts[i], t)
            self._last_seen[tid] = frame_index
        stale = [tid for tid, f in self._last_seen.items() if frame_index - f > self.max_missed]
        for tid in stale:
            self._filters.pop(tid, None)
            self._last_seen.pop(tid, None)
        return out


# --------------------------------------------------------------------------------------------
# Detection interval: boxes from the previous keypoints between detector passes
# --------------------------------------------------------------------------------------------


def pose_box_xywh(keypoints: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int],
                  kpt_thr: float = 0.3, padding: float = 1.25) -> np.ndarray | None:
    """The box of the next frame from one instance's keypoints: the tight box around its
    confident keypoints, enlarged ``padding`` times about its centre (as pose-based tracking in
    rtmlib / the mmpose video demos does), clipped to the image.

    Returns:
        ``(4,)`` float32 ``x, y, w, h``, or None when fewer than two keypoints are confident.
    """
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    ok = (np.asarray(scores).reshape(-1) >= kpt_thr) & np.isfinite(kpts).all(axis=1)
    if ok.sum() < 2:
        return None
    lo, hi = kpts[ok].min(axis=0), kpts[ok].max(axis=0)
    center, half = (lo + hi) / 2.0, (hi - lo) / 2.0 * padding
    h, w = image_hw
    x1, y1 = max(0.0, center[0] - half[0]), max(0.0, center[1] - half[1])
    x2, y2 = min(float(w), center[0] + half[0]), min(float(h), center[1] + half[1])
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    box = np.array([x1, y1, x2 - x1, y2 - y1], np.float32)
    # float32 rounding must not put the far edge past the image (a "clipped" warning a frame)
    for i, limit in ((2, float(w)), (3, float(h))):
        while float(box[i - 2]) + float(box[i]) > limit:
            box[i] = np.nextafter(box[i], np.float32(0))
    return box


class IntervalBoxes:
    """Boxes for each frame of a video: a detector pass every ``interval`` frames, and in
    between each instance's box from its keypoints in the previous frame (`pose_box_xywh`).

    A track is lost when its instance has fewer than ``min_keypoints`` keypoints above
    ``kpt_thr`` (the person left, or the box drifted off them); it is dropped and the next
    frame runs the detector again, as does a frame after one with nobody tracked.

    Args:
        detect: ``frame -> (boxes (N, 5), class names or None)``.
        interval: detector every this many frames (1: every frame).
        kpt_thr: keypoint score that counts as found.
        min_keypoints: fewer found keypoints lose the track.
        padding: enlargement of the keypoint box (see `pose_box_xywh`).

    Attributes:
        detections: number of detector passes so far.
    """

    def __init__(self, detect: Callable[[np.ndarray], tuple[np.ndarray, Sequence[str] | None]],
                 interval: int = 1, kpt_thr: float = 0.3, min_keypoints: int = 4,
                 padding: float = 1.25) -> None:
        self.detect = detect
        self.interval = check_det_interval(interval)
        self.kpt_thr = float(kpt_thr)
        self.min_keypoints = int(min_keypoints)
        self.padding = float(padding)
        self.detections = 0
        self._since = 0
        self._redetect = True
        self._boxes: list[np.ndarray] = []
        self._labels: list[str | None] = []

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, list[str] | None, bool]:
        """This frame's boxes, their classes (None: unknown) and whether the detector ran."""
        if self._redetect or self._since >= self.interval or not self._boxes:
            boxes, labels = self.detect(frame)
            self.detections += 1
            self._since = 1
            self._redetect = False
            return boxes, (None if labels is None else list(labels)), True
        self._since += 1
        boxes = np.stack(self._boxes).astype(np.float32)
        labels = None if all(c is None for c in self._labels) else \
            [c or "person" for c in self._labels]
        return boxes, labels, False

    def replay(self, result: Any, detected: bool) -> None:
        """Takes a frame done by an interrupted run (resume): whether the detector ran on it,
        and its poses (exact model keypoints, box scores and classes), as if it ran now."""
        if detected:
            self.detections += 1
            self._since = 1
            self._redetect = False
        else:
            self._since += 1
        self.update(result)

    def update(self, result: Any) -> None:
        """Takes this frame's poses: the boxes of the next frame, or a new detection."""
        hw = result.image_hw
        self._boxes, self._labels = [], []
        for inst in result.instances:
            kp = inst.keypoints
            found = int((kp[:, 2] >= self.kpt_thr).sum())
            box = pose_box_xywh(kp[:, :2], kp[:, 2], hw, self.kpt_thr, self.padding) \
                if found >= self.min_keypoints else None
            if box is None:
                self._redetect = True  # a lost track: detect again on the next frame
                continue
            self._boxes.append(np.append(box, np.float32(inst.box_score)))
            self._labels.append(inst.category)
        if not self._boxes:
            self._redetect = True


def assign_tracks(tracker: PoseTracker | None, smoother: PoseSmoother | None, result: Any,
                  index: int) -> None:
    """Track ids (and One-Euro smoothing) for one frame's instances, in place.

    Called on empty frames too, so that tracks and filters age and expire. Instances of
    several keypoint sets (a routed ViTPose+ estimator) are matched by box IoU."""
    if tracker is None:
        return
    instances = result.instances
    if not instances:
        tracker.update(np.zeros((0, len(tracker.sigmas) if tracker.sigmas is not None else 0,
                                 2)), np.zeros((0, 0)))
        return
    ks = {i.keypoints.shape[0] for i in instances}
    if len(ks) == 1 and tracker.metric == "oks":
        kp = np.stack([i.keypoints for i in instances])
        # the person boxes give the OKS scale (as the COCO area does)
        ids = tracker.update(kp[..., :2], kp[..., 2], result.boxes_xyxy)
    else:
        ids = tracker.update(np.zeros((len(instances), 1, 2)), np.ones((len(instances), 1)),
                             result.boxes_xyxy)
    for inst, tid in zip(instances, ids):
        inst.track_id = int(tid)
    if smoother is not None:
        for inst, tid in zip(instances, ids):
            inst.keypoints[:, :2] = smoother([tid], inst.keypoints[None, :, :2], index)[0]

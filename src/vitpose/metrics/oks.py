"""The OKS keypoint evaluator of the official benchmarks, written from its specification.

Every OKS number of the ViTPose papers comes from xtcocotools' ``COCOeval`` (the "Extended COCO
API" that mmpose 0.x calls; ref §4). xtcocotools is pycocotools plus keypoint extensions, and it
differs from pycocotools in places that change results. This module implements the xtcocotools
rules (version 1.14.3) with numpy; ``tests/data/xtcocotools_references.json`` holds numbers
computed by xtcocotools itself (``tests/tools/xtcocotools_references.py``) and the tests require
equality to 1e-6.

The rules, in the order the official evaluator applies them:

1. **Which ground truths count.** Images are the ground truth's ``images`` (sorted ids),
   categories its ``categories`` (sorted ids); annotations of other categories are not scored. A
   ground truth is *ignored* (it may absorb a detection, which then neither helps nor hurts) when
   ``iscrowd`` is set or when it has no labelled keypoint (``v > 0``) in the evaluated part. In
   CrowdPose mode (``keypoints_crowd``) the labelled count is the file's own ``num_keypoints``
   instead, which in CrowdPose leaves out head_top and neck.
2. **Which predictions count.** A prediction without any keypoint score ``> 0`` in the evaluated
   part is dropped. Per image, predictions are ranked by score (stable) and the top 20 are kept.
   A prediction's *area* (used only to put unmatched predictions outside an area range) is the
   ``bbox`` area when the results carry a ``bbox`` (decided by the first result, as in
   ``loadRes``), else the extent of its ``keypoints`` field.
3. **OKS.** ``e = d^2 / (2 sigma)^2 / (area + eps) / 2`` per keypoint, averaged ``exp(-e)`` over
   the labelled keypoints of the ground truth; ``area`` is the annotation ``area``, or
   ``0.53 w h`` of its box when ``use_area`` is False (AIC, CrowdPose). For a ground truth
   without labelled keypoints the distance is measured to its box enlarged by one box size on
   every side, over all keypoints.
4. **Matching** (per image, category, area range, OKS threshold): predictions in rank order take
   the unmatched non-ignored ground truth of best OKS (at least the threshold), else an ignored
   one; crowd ground truths can be matched many times. Unmatched bookkeeping is ``-1``, so an
   annotation whose id is 0 is matched like any other (pycocotools uses 0 and loses it).
5. **Accumulation**: precision at 101 recall points (the interpolated envelope), recall, per
   threshold, category and area range (all, medium 32^2..96^2, large > 96^2); AP/AR average the
   entries that are not -1.
6. **CrowdPose AP (E)/(M)/(H)**: the evaluation re-run on the images with ``crowdIndex`` below
   0.2, below 0.8, and the rest; the value is the plain mean of the precision array of the area
   range "all" (-1 entries included), rounded to 4 decimals.

Names follow the reported statistics; -1 means "no ground truth for that setting".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CROWD_AREA_FACTOR",
    "CROWD_LEVELS",
    "CROWD_STAT_NAMES",
    "KEYPOINT_STAT_NAMES",
    "OksEvaluation",
    "OksGroundTruth",
    "OksPrediction",
]

#: The 10 statistics of a keypoint evaluation, in order.
KEYPOINT_STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)", "AR (L)")
#: The 9 statistics of a CrowdPose evaluation, in order.
CROWD_STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP (E)", "AP (M)", "AP (H)")
#: Area of a ground truth when the annotation area is not used: this factor times box w * h.
CROWD_AREA_FACTOR = 0.53
#: crowdIndex split points: easy < 0.2 <= medium < 0.8 <= hard.
CROWD_LEVELS = (0.2, 0.8)

_EPS = np.spacing(1)
_OKS_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
_AREA_RANGES = ((0.0, 1e5 ** 2), (32.0 ** 2, 96.0 ** 2), (96.0 ** 2, 1e5 ** 2))
_AREA_NAMES = ("all", "medium", "large")
_MAX_DETS = 20


@dataclass
class OksGroundTruth:
    """One ground-truth annotation, restricted to the evaluated keypoints.

    Attributes:
        id: annotation id. image_id, category_id: as in the file.
        bbox: ``(x, y, w, h)``.
        area: the annotation ``area`` (None when absent).
        iscrowd: crowd flag.
        keypoints: ``3 K`` values ``x, y, v`` of the evaluated part.
        num_keypoints: the file's ``num_keypoints`` (read in CrowdPose mode only).
    """

    id: int
    image_id: int
    category_id: int
    bbox: np.ndarray
    area: float | None
    iscrowd: bool
    keypoints: np.ndarray
    num_keypoints: int | None = None


@dataclass
class OksPrediction:
    """One prediction, restricted to the evaluated keypoints.

    Attributes:
        image_id, category_id: as in the results.
        keypoints: ``3 K`` values ``x, y, score`` of the evaluated part.
        score: the ranking score of this evaluation.
        area: ``loadRes`` area (box area, or the extent of the ``keypoints`` field).
    """

    image_id: int
    category_id: int
    keypoints: np.ndarray
    score: float
    area: float


@dataclass
class _ImageResult:
    dt_scores: np.ndarray            # [D]
    dt_match: np.ndarray             # [T, D] matched gt id or -1
    dt_ignore: np.ndarray            # [T, D] bool
    gt_ignore: np.ndarray            # [G] bool


@dataclass
class OksEvaluation:
    """An OKS evaluation of predictions against ground truth (xtcocotools rules).

    Args:
        image_ids: the ground truth's image ids.
        category_ids: the ground truth's category ids.
        gts: ground truths, in file order (the order breaks ties).
        dts: predictions, in results order.
        sigmas: ``K`` per-keypoint OKS sigmas.
        use_area: OKS and area ranges from the annotation ``area`` (else ``0.53 w h``).
        crowd: CrowdPose mode: the file's ``num_keypoints`` decides which ground truths count.
    """

    image_ids: Sequence[int]
    category_ids: Sequence[int]
    gts: Sequence[OksGroundTruth]
    dts: Sequence[OksPrediction]
    sigmas: np.ndarray
    use_area: bool = True
    crowd: bool = False
    precision: np.ndarray = field(init=False, repr=False)
    recall: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sigmas = np.asarray(self.sigmas, dtype=np.float64).reshape(-1)
        self.image_ids = sorted({int(i) for i in self.image_ids})
        self.category_ids = sorted({int(c) for c in self.category_ids})
        cats = set(self.category_ids)
        images = set(self.image_ids)
        self._gts: dict[tuple[int, int], list[OksGroundTruth]] = defaultdict(list)
        self._gt_ignore: dict[int, bool] = {}
        for gt in self._ordered(self.gts, images, cats):
            if self.crowd:
                labelled = int(gt.num_keypoints or 0)
            else:
                labelled = int(np.count_nonzero(gt.keypoints[2::3] > 0))
            self._gt_ignore[id(gt)] = bool(gt.iscrowd) or labelled == 0
            self._gts[gt.image_id, gt.category_id].append(gt)
        self._dts: dict[tuple[int, int], list[OksPrediction]] = defaultdict(list)
        for dt in self._ordered(self.dts, images, cats):
            if np.count_nonzero(dt.keypoints[2::3] > 0) == 0:
                continue
            self._dts[dt.image_id, dt.category_id].append(dt)
        self._oks: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _ordered(items, images: set[int], cats: set[int]) -> list:
        """Items of evaluated images and categories: by image id, then in their given order."""
        by_image: dict[int, list] = defaultdict(list)
        for item in items:
            by_image[item.image_id].append(item)
        return [item for image_id in sorted(by_image) if image_id in images
                for item in by_image[image_id] if item.category_id in cats]

    # -- per image -----------------------------------------------------------------------------
    def _gt_area(self, gt: OksGroundTruth) -> float:
        if gt.area is None or not self.use_area:
            return float(gt.bbox[3] * gt.bbox[2] * CROWD_AREA_FACTOR)
        return float(gt.area)

    def _ranked(self, dts: list[OksPrediction]) -> list[OksPrediction]:
        order = np.argsort([-d.score for d in dts], kind="mergesort")
        return [dts[i] for i in order[:_MAX_DETS]]

    def _compute_oks(self, key: tuple[int, int]) -> np.ndarray:
        """OKS ``[D, G]`` of the ranked (top-20) predictions and the ground truths of an image."""
        gts = self._gts.get(key, [])
        dts = self._ranked(self._dts.get(key, []))
        if not gts or not dts:
            return np.zeros((0, 0))
        variances = (self.sigmas * 2) ** 2
        k = len(self.sigmas)
        pred = np.stack([d.keypoints for d in dts])          # [D, 3K]
        xd, yd = pred[:, 0::3], pred[:, 1::3]                 # [D, K]
        oks = np.zeros((len(dts), len(gts)))
        for j, gt in enumerate(gts):
            g = gt.keypoints
            xg, yg, vg = g[0::3], g[1::3], g[2::3]
            labelled = vg > 0
            if np.count_nonzero(labelled) > 0:
                dx = xd - xg
                dy = yd - yg
            else:  # distance to the box enlarged by its size on every side
                bx, by, bw, bh = (float(v) for v in gt.bbox)
                x0, x1 = bx - bw, bx + bw * 2
                y0, y1 = by - bh, by + bh * 2
                zero = np.zeros((len(dts), k))
                dx = np.maximum(zero, x0 - xd) + np.maximum(zero, xd - x1)
                dy = np.maximum(zero, y0 - yd) + np.maximum(zero, yd - y1)
            if self.use_area:
                if gt.area is None:
                    raise KeyError(f"annotation {gt.id} has no 'area'")
                area = gt.area
            else:
                area = gt.bbox[3] * gt.bbox[2] * CROWD_AREA_FACTOR
            e = (dx ** 2 + dy ** 2) / variances / (area + _EPS) / 2
            if np.count_nonzero(labelled) > 0:
                e = e[:, labelled]
            oks[:, j] = np.sum(np.exp(-e), axis=1) / e.shape[1]
        return oks

    def _evaluate_image(self, key: tuple[int, int], area_range: tuple[float, float]
                        ) -> _ImageResult | None:
        gts = self._gts.get(key, [])
        dts = self._dts.get(key, [])
        if not gts and not dts:
            return None
        lo, hi = area_range
        gt_skip = np.array([self._gt_ignore[id(g)] or self._gt_area(g) < lo
                            or self._gt_area(g) > hi for g in gts], dtype=bool)
        gt_order = np.argsort(gt_skip.astype(np.int64), kind="mergesort")
        gts = [gts[i] for i in gt_order]
        gt_skip = gt_skip[gt_order]
        dts = self._ranked(dts)
        oks = self._oks[key]
        if oks.size:
            oks = oks[:, gt_order]
        crowd = [bool(g.iscrowd) for g in gts]
        num_t, num_g, num_d = len(_OKS_THRESHOLDS), len(gts), len(dts)
        gt_match = -np.ones((num_t, num_g), dtype=np.int64)
        dt_match = -np.ones((num_t, num_d), dtype=np.int64)
        dt_ignore = np.zeros((num_t, num_d), dtype=bool)
        if oks.size:
            for t, thr in enumerate(_OKS_THRESHOLDS):
                for d_i in range(num_d):
                    best = min(thr, 1 - 1e-10)
                    m = -1
                    for g_i in range(num_g):
                        if gt_match[t, g_i] >= 0 and not crowd[g_i]:
                            continue  # taken, and not a crowd region
                        if m > -1 and not gt_skip[m] and gt_skip[g_i]:
                            break     # a real match beats every ignored one (sorted last)
                        if oks[d_i, g_i] < best:
                            continue
                        best = oks[d_i, g_i]
                        m = g_i
                    if m == -1:
                        continue
                    dt_ignore[t, d_i] = gt_skip[m]
                    dt_match[t, d_i] = gts[m].id
                    gt_match[t, m] = d_i + 1  # any id >= 0 marks the ground truth as taken
        outside = np.array([d.area < lo or d.area > hi for d in dts], dtype=bool)[None, :]
        dt_ignore = dt_ignore | ((dt_match < 0) & np.repeat(outside, num_t, axis=0))
        return _ImageResult(np.array([d.score for d in dts], dtype=np.float64), dt_match,
                            dt_ignore, gt_skip)

    # -- the whole run -------------------------------------------------------------------------
    def run(self, image_ids: Sequence[int] | None = None) -> OksEvaluation:
        """Evaluate and accumulate (over ``image_ids``, default all); fills ``precision``
        ``[T, R, C, A]`` and ``recall`` ``[T, C, A]``."""
        ids = self.image_ids if image_ids is None else sorted({int(i) for i in image_ids})
        for image_id in ids:
            for cat in self.category_ids:
                if (image_id, cat) not in self._oks:
                    self._oks[image_id, cat] = self._compute_oks((image_id, cat))
        num_t, num_r = len(_OKS_THRESHOLDS), len(_RECALL_POINTS)
        num_c, num_a = len(self.category_ids), len(_AREA_RANGES)
        precision = -np.ones((num_t, num_r, num_c, num_a))
        recall = -np.ones((num_t, num_c, num_a))
        for c, cat in enumerate(self.category_ids):
            for a, rng in enumerate(_AREA_RANGES):
                results = [r for r in (self._evaluate_image((i, cat), rng) for i in ids)
                           if r is not None]
                if not results:
                    continue
                scores = np.concatenate([r.dt_scores for r in results])
                order = np.argsort(-scores, kind="mergesort")
                matches = np.concatenate([r.dt_match for r in results], axis=1)[:, order]
                ignore = np.concatenate([r.dt_ignore for r in results], axis=1)[:, order]
                gt_ignore = np.concatenate([r.gt_ignore for r in results])
                num_gt = np.count_nonzero(~gt_ignore)
                if num_gt == 0:
                    continue
                tps = (matches >= 0) & ~ignore
                fps = (matches < 0) & ~ignore
                tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
                for t in range(num_t):
                    tp, fp = tp_sum[t], fp_sum[t]
                    n = len(tp)
                    rc = tp / num_gt
                    pr = tp / (fp + tp + _EPS)
                    recall[t, c, a] = rc[-1] if n else 0
                    # the precision envelope: best precision at this recall or beyond
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if n else pr
                    at = np.searchsorted(rc, _RECALL_POINTS, side="left")
                    q = np.zeros(num_r)
                    valid = at < n
                    q[valid] = pr[at[valid]]
                    precision[t, :, c, a] = q
        self.precision, self.recall = precision, recall
        return self

    # -- statistics ----------------------------------------------------------------------------
    def _mean(self, values: np.ndarray) -> float:
        kept = values[values > -1]
        return float(np.mean(kept)) if kept.size else -1.0

    def _stat(self, ap: bool, thr: float | None = None, area: str = "all") -> float:
        a = _AREA_NAMES.index(area)
        values = self.precision[..., a] if ap else self.recall[..., a]
        if thr is not None:
            values = values[np.where(thr == _OKS_THRESHOLDS)[0]]
        return self._mean(values)

    def keypoint_stats(self) -> dict[str, float]:
        """The 10 statistics of a keypoint evaluation (run first)."""
        values = (self._stat(True), self._stat(True, 0.5), self._stat(True, 0.75),
                  self._stat(True, area="medium"), self._stat(True, area="large"),
                  self._stat(False), self._stat(False, 0.5), self._stat(False, 0.75),
                  self._stat(False, area="medium"), self._stat(False, area="large"))
        return dict(zip(KEYPOINT_STAT_NAMES, values))

    def crowd_stats(self, crowd_index: dict[int, float]) -> dict[str, float]:
        """The 9 CrowdPose statistics (runs the evaluation itself).

        Args:
            crowd_index: image id -> ``crowdIndex`` for every ground-truth image.
        """
        self.run()
        out = {"AP": self._stat(True), "AP50": self._stat(True, 0.5),
               "AP75": self._stat(True, 0.75), "AR": self._stat(False),
               "AR50": self._stat(False, 0.5), "AR75": self._stat(False, 0.75)}
        levels: list[list[int]] = [[], [], []]
        for image_id in self.image_ids:
            value = crowd_index[image_id]
            levels[0 if value < CROWD_LEVELS[0] else 1 if value < CROWD_LEVELS[1] else 2].append(
                image_id)
        for name, ids in zip(("AP (E)", "AP (M)", "AP (H)"), levels):
            self.run(ids)
            # the official value averages the raw array, -1 entries included
            out[name] = float(round(np.float64(np.mean(self.precision[:, :, :, 0])), 4))
        self.run()
        return out

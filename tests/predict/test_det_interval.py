"""--det-interval: the detector every N frames, boxes from the previous keypoints in between; a
synthetic moving person keeps one track id; background reading and writing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vitpose.dataset_meta import get_dataset_meta
from vitpose.errors import InputError
from vitpose.inference.pipeline import PoseInstance, PoseResult
from vitpose.inference.video import (
    BackgroundWriter,
    IntervalBoxes,
    PoseSmoother,
    PoseTracker,
    estimate_video,
    pose_box_xywh,
    prefetch,
)

H, W = 240, 480
PERSON_WH = (40, 120)


def person_xy(index: int) -> tuple[int, int]:
    """Top-left corner of the synthetic person in frame `index`: walks right 9 px a frame."""
    return 20 + 9 * index, 60 + (index % 3)


def frame(index: int, present: bool = True) -> np.ndarray:
    f = np.zeros((H, W, 3), np.uint8)
    if present:
        x, y = person_xy(index)
        f[y:y + PERSON_WH[1], x:x + PERSON_WH[0]] = 255
    return f


class BlobEstimator:
    """A stand-in pose model: 17 keypoints on a grid over the white pixels inside each box
    enlarged 1.25 times (the crop a top-down model sees) (score 0.9), or low scores when it
    holds no white pixel."""

    def __init__(self):
        self.calls = []

    def predict_many(self, items):
        for image, boxes, image_id, *_ in items:
            self.calls.append(len(boxes))
            result = PoseResult("<array>", image_id, image.shape[:2], "coco")
            for b in np.asarray(boxes, np.float32).reshape(-1, 5):
                cx, cy, hw, hh = b[0] + b[2] / 2, b[1] + b[3] / 2, b[2] * 0.625, b[3] * 0.625
                x1, y1 = int(max(cx - hw, 0)), int(max(cy - hh, 0))
                x2, y2 = int(min(cx + hw, W)), int(min(cy + hh, H))
                ys, xs = np.nonzero(image[y1:y2, x1:x2, 0])
                if len(xs):
                    gx = np.linspace(xs.min(), xs.max(), 17) + x1
                    gy = np.linspace(ys.min(), ys.max(), 17) + y1
                    kp = np.stack([gx, gy, np.full(17, 0.9)], 1)
                else:
                    kp = np.stack([np.full(17, b[0]), np.full(17, b[1]), np.full(17, 0.01)], 1)
                result.instances.append(PoseInstance(b[:4].copy(), float(b[4]),
                                                     kp.astype(np.float32), 0.9,
                                                     np.zeros(2), np.ones(2)))
            yield result


def detector(calls):
    def detect(f):
        calls.append(1)
        ys, xs = np.nonzero(f[..., 0])
        if not len(xs):
            return np.zeros((0, 5), np.float32), []
        return np.array([[xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1, 0.95]],
                        np.float32), ["person"]
    return detect


def test_pose_box_is_padded_keypoint_box_clipped():
    kp = np.array([[10, 20], [30, 60], [20, 40]], np.float32)
    box = pose_box_xywh(kp, np.array([0.9, 0.9, 0.1]), (100, 100), padding=1.5)
    np.testing.assert_allclose(box, [5, 10, 30, 60])  # (10..30, 20..60) x 1.5 about (20, 40)
    assert pose_box_xywh(kp, np.array([0.9, 0.1, 0.1]), (100, 100)) is None
    edge = pose_box_xywh(np.array([[0, 0], [50, 90]]), np.ones(2), (80, 40))
    assert edge[0] == 0 and edge[1] == 0 and edge[2] == 40 and edge[3] == 80
    # never past the image after float32 rounding (else a "clipped" warning every frame)
    from vitpose.inference.detectors import sanitize_boxes
    rng = np.random.default_rng(0)
    for _ in range(500):
        b = pose_box_xywh(rng.uniform(-50, 1000, (17, 2)), np.ones(17), (540, 960))
        assert b is None or sanitize_boxes(np.append(b, 1.0)[None], (540, 960))[1] == []


def test_moving_person_keeps_one_track_with_detector_every_fifth_frame():
    calls = []
    boxes = IntervalBoxes(detector(calls), interval=5)
    tracker = PoseTracker(metric="oks", sigmas=get_dataset_meta("coco").sigmas)
    est = BlobEstimator()
    out = list(estimate_video((frame(i) for i in range(20)), est, boxes, tracker,
                              PoseSmoother(30.0)))
    assert [i for i, _, _ in out] == list(range(20))
    assert len(calls) == 4 == boxes.detections  # frames 0, 5, 10, 15
    ids = {inst.track_id for _, _, r in out for inst in r.instances}
    assert ids == {0}
    for index, _, result in out:  # the tracked box follows the person
        assert len(result.instances) == 1
        x, _, w, _ = result.instances[0].box_xywh
        px, _ = person_xy(index)
        assert x <= px + 1 and x + w >= px + PERSON_WH[0] - 10, (index, x, w, px)


def test_a_lost_track_triggers_a_new_detection():
    calls = []
    boxes = IntervalBoxes(detector(calls), interval=10)
    est = BlobEstimator()
    present = [True] * 4 + [False] * 3 + [True] * 5  # leaves at frame 4, back at 7
    frames = [frame(i, p) for i, p in enumerate(present)]
    out = list(estimate_video(frames, est, boxes,
                              PoseTracker(metric="oks", sigmas=get_dataset_meta("coco").sigmas)))
    # frame 0 detects; frame 4's pose is lost -> frames 5, 6, 7 detect (nobody, nobody, back)
    assert len(calls) == 4
    assert len(out[7][2].instances) == 1 and len(out[11][2].instances) == 1
    assert len(calls) < len(frames)


def test_every_frame_detected_batches_crops_across_frames():
    calls = []

    class Batching(BlobEstimator):
        batch_size = 8

        def predict_many(self, items):
            items = list(items)  # all frames' crops reach the model together
            self.batches = len(items)
            yield from super().predict_many(items)

    est = Batching()
    out = list(estimate_video((frame(i) for i in range(6)), est,
                              IntervalBoxes(detector(calls), interval=1)))
    assert len(calls) == 6 and est.batches == 6 and len(out) == 6


def test_interval_must_be_positive():
    with pytest.raises(InputError, match="at least 1"):
        IntervalBoxes(lambda f: (np.zeros((0, 5)), None), interval=0)


def test_prefetch_reads_ahead_in_a_thread_and_raises_errors():
    threads = set()

    def gen():
        for i in range(5):
            threads.add(threading.current_thread().name)
            yield i
        raise InputError("frame 5 cannot be decoded")

    got = []
    with pytest.raises(InputError, match="frame 5"):
        for x in prefetch(gen(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4] and threads == {"vitpose-read"}


def test_background_writer_keeps_order_and_reports_errors():
    seen = []
    w = BackgroundWriter(depth=2)
    for i in range(10):
        w.submit(seen.append, i)
    w.close()
    assert seen == list(range(10))
    w = BackgroundWriter()

    def fail(_):
        raise OSError("disk full")

    w.submit(fail, 0)
    with pytest.raises(OSError, match="disk full"):
        w.close()


def test_resume_replays_the_journal_to_the_same_result():
    """`vitpose predict VIDEO --det-interval N` resumed: the journalled frames are not estimated
    again, their exact poses replay the detection interval, the tracker and the smoother, and
    the rest of the video comes out as in one uninterrupted run."""
    import json

    from vitpose.predict.video import exact_row as _exact_row
    from vitpose.predict.video import stored_result as _stored_result

    def run(stored=None):
        calls, rows, exact = [], {}, {}
        boxes = IntervalBoxes(detector(calls), interval=3)
        tracker = PoseTracker(metric="oks", sigmas=get_dataset_meta("coco").sigmas)
        est = BlobEstimator()

        def prepare(index, result, detected):
            exact[index] = _exact_row(result, detected)

        for index, _, result in estimate_video((frame(i) for i in range(14)), est, boxes,
                                               tracker, PoseSmoother(30.0), stored=stored,
                                               prepare=prepare):
            row = {"frame": index, "instances": result.to_coco()}
            row.update(exact.pop(index, {}))
            rows[index] = json.loads(json.dumps(row))  # as the journal holds it
        return rows, calls, est.calls

    reference, ref_calls, _ = run()
    assert any(r.get("detected") is False for r in reference.values())
    journal = {i: reference[i] for i in range(7)}  # interrupted after frame 6

    def stored(index, f):
        row = journal.get(index)
        return None if row is None else _stored_result(row, index, f.shape[:2], "coco")

    resumed, calls, estimated = run(stored)
    assert [resumed[i]["instances"] for i in range(14)] == \
        [reference[i]["instances"] for i in range(14)]
    assert all(resumed[i] == reference[i] for i in range(7, 14))
    assert len(estimated) == 14 - 7  # the journalled frames were not estimated again
    assert len(calls) == len(ref_calls) - sum(reference[i].get("detected", True)
                                              for i in range(7))

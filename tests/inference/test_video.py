"""Tests for vitpose.inference.video: reading, writing, tracking and One-Euro smoothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vitpose.errors import InputError
from vitpose.inference.video import (
    OneEuroFilter,
    PoseSmoother,
    PoseTracker,
    VideoReader,
    VideoWriter,
    iou_matrix,
    oks_matrix,
)

COCO_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
     0.087, 0.087, 0.089, 0.089]
)  # fmt: skip


# ------------------------------------------------------------------ reading


def test_reader_on_demo_video(data_dir: Path) -> None:
    path = data_dir / "video" / "demo.mp4"
    with VideoReader(path) as reader:
        assert reader.frame_count == 5
        assert reader.size_hw == (540, 960)
        assert reader.fps_known and reader.fps > 0
        frames = list(reader)
        assert len(frames) == 5
        assert all(f.shape == (540, 960, 3) and f.dtype == np.uint8 for f in frames)
        again = list(reader)  # a second pass restarts the file
        assert len(again) == 5
        np.testing.assert_array_equal(again[0], frames[0])
    cap = cv2.VideoCapture(str(path))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    np.testing.assert_array_equal(frames[0], bgr[:, :, ::-1])


def test_reader_errors(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"\x00\x01 not a video " * 100)
    with pytest.raises(InputError, match=r"garbage\.mp4"):
        VideoReader(bad)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((data_dir / "video" / "demo.mp4").read_bytes()[:3000])
    with pytest.raises(InputError, match=r"truncated\.mp4"):
        VideoReader(truncated)


# ------------------------------------------------------------------ writing


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[..., 0] = 40 * i  # red ramps over time
        f[: h // 2, :, 2] = 200  # blue top half
        out.append(f)
    return out


def test_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.mp4"
    frames = _frames(6, 48, 64)
    with VideoWriter(path, fps=12.0) as writer:
        for f in frames:
            writer.write(f)
    assert writer.codec in ("avc1", "mp4v") and writer.frames_written == 6
    with VideoReader(path) as reader:
        back = list(reader)
        assert reader.frame_count == 6 and abs(reader.fps - 12.0) < 0.01
    assert len(back) == 6 and back[0].shape == (48, 64, 3)
    for a, b in zip(frames, back, strict=True):  # lossy, but colours must survive (and stay RGB)
        assert abs(float(a[..., 0].mean()) - float(b[..., 0].mean())) < 12
        assert b[:20, :, 2].mean() > 150 and b[30:, :, 2].mean() < 50


def test_writer_pads_odd_sizes(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=10.0) as writer:
        for f in _frames(3, 49, 65):
            writer.write(f)
    assert writer.size_hw == (50, 66)
    with VideoReader(path) as reader:
        assert reader.size_hw == (50, 66) and len(list(reader)) == 3


def test_writer_rejects_other_sizes_and_bad_codecs(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "a.mp4", fps=10.0)
    writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="differs"):
        writer.write(np.zeros((16, 32, 3), np.uint8))
    writer.close()
    with pytest.raises(InputError, match="codecs"):
        VideoWriter(tmp_path / "b.mp4", fps=10.0, size_hw=(32, 32), codecs=("ZZZZ",))
    with pytest.raises(InputError, match="frame rate"):
        VideoWriter(tmp_path / "c.mp4", fps=0.0)


# ------------------------------------------------------------------ tracking


def _person(cx: float, cy: float, scale: float = 1.0) -> np.ndarray:
    """A rough standing COCO skeleton (17 x 2) centred at (cx, cy)."""
    base = np.array(
        [[0, -80], [-5, -85], [5, -85], [-10, -82], [10, -82], [-25, -55], [25, -55], [-35, -20],
         [35, -20], [-40, 10], [40, 10], [-15, 15], [15, 15], [-15, 55], [15, 55], [-15, 95],
         [15, 95]], dtype=np.float64,
    )  # fmt: skip
    return base * scale + [cx, cy]


def test_oks_and_iou_matrices() -> None:
    a = np.stack([_person(100, 100), _person(300, 100)])
    vis = np.ones((2, 17), bool)
    oks = oks_matrix(a, vis, a, vis, np.array([8000.0, 8000.0]), COCO_SIGMAS)
    np.testing.assert_allclose(np.diag(oks), 1.0)
    assert oks[0, 1] < 0.01
    assert oks_matrix(a, ~vis, a, vis, np.array([8000.0, 8000.0]), COCO_SIGMAS).max() == 0
    iou = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0]])


@pytest.mark.parametrize("metric", ["oks", "iou"])
def test_tracker_ids_persist_and_new_people_get_new_ids(metric: str) -> None:
    tracker = PoseTracker(metric=metric, sigmas=COCO_SIGMAS, max_missed=2)
    scores = np.full((2, 17), 0.9)
    ids0 = tracker.update(np.stack([_person(100, 150), _person(400, 150)]), scores)
    assert ids0.tolist() == [0, 1]
    # both move a few pixels; the input order is swapped: ids must follow the people
    ids1 = tracker.update(np.stack([_person(403, 152), _person(97, 149)]), scores)
    assert ids1.tolist() == [1, 0]
    # a third person appears
    three = np.stack([_person(99, 150), _person(405, 151), _person(700, 150)])
    ids2 = tracker.update(three, np.full((3, 17), 0.9))
    assert ids2.tolist() == [0, 1, 2]


def test_tracker_expiry() -> None:
    tracker = PoseTracker(metric="oks", sigmas=COCO_SIGMAS, max_missed=2)
    one = _person(100, 150)[None]
    s = np.full((1, 17), 0.9)
    assert tracker.update(one, s).tolist() == [0]
    tracker.update(np.zeros((0, 17, 2)), np.zeros((0, 17)))  # missed 1
    tracker.update(np.zeros((0, 17, 2)), np.zeros((0, 17)))  # missed 2
    assert tracker.update(one + 2, s).tolist() == [0]  # still alive
    for _ in range(3):
        tracker.update(np.zeros((0, 17, 2)), np.zeros((0, 17)))
    assert tracker.tracks == []
    assert tracker.update(one, s).tolist() == [1]  # expired: a new id, never reused


def test_tracker_needs_sigmas_for_oks() -> None:
    with pytest.raises(ValueError, match="sigmas"):
        PoseTracker(metric="oks")
    tracker = PoseTracker(metric="oks", sigmas=COCO_SIGMAS)
    with pytest.raises(ValueError, match="sigmas"):
        tracker.update(np.zeros((1, 5, 2)), np.ones((1, 5)))


# ------------------------------------------------------------------ smoothing


def test_one_euro_reduces_jitter_on_constant_signal() -> None:
    rng = np.random.default_rng(0)
    fps = 30.0
    truth = np.array([[100.0, 200.0], [50.0, 60.0]])
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    raw, smooth = [], []
    for i in range(300):
        x = truth + rng.normal(0, 2.0, truth.shape)
        raw.append(x)
        smooth.append(filt(x, i / fps))
    raw_a, smooth_a = np.asarray(raw)[30:], np.asarray(smooth)[30:]
    assert smooth_a.var(axis=0).max() < 0.3 * raw_a.var(axis=0).min()
    np.testing.assert_allclose(smooth_a.mean(axis=0), truth, atol=0.5)


def test_one_euro_beta_reduces_lag_on_motion() -> None:
    fps = 30.0

    def lag(beta: float) -> float:
        filt = OneEuroFilter(min_cutoff=0.5, beta=beta)
        out = 0.0
        for i in range(60):
            x = np.array([10.0 * i])  # 300 px/s
            out = float(filt(x, i / fps)[0]) - float(x[0])
        return abs(out)

    assert lag(0.05) < 0.5 * lag(0.0)


def test_one_euro_time_and_nan_handling() -> None:
    filt = OneEuroFilter()
    first = filt(np.array([1.0, 2.0]), 0.0)
    np.testing.assert_array_equal(first, [1.0, 2.0])
    with pytest.raises(ValueError, match="time"):
        filt(np.array([1.0, 2.0]), 0.0)
    out = filt(np.array([np.nan, 4.0]), 0.1)
    assert np.isnan(out[0]) and 2.0 < out[1] < 4.0
    out = filt(np.array([1.5, 4.0]), 0.2)  # element 0 resumes from its last valid state
    assert 1.0 < out[0] < 1.5


def test_pose_smoother_keeps_tracks_apart() -> None:
    smoother = PoseSmoother(fps=25.0, max_missed=1)
    a, b = _person(100, 100), _person(500, 100)
    out = smoother([0, 1], np.stack([a, b]), frame_index=0)
    np.testing.assert_allclose(out, np.stack([a, b]))
    out = smoother([1, 0], np.stack([b + 1.0, a + 1.0]), frame_index=1)
    assert np.abs(out[0] - b).max() < 1.0 and np.abs(out[1] - a).max() < 1.0  # no mixing
    smoother([1], b[None], frame_index=2)
    smoother([1], b[None], frame_index=3)  # track 0 unseen for 2 frames: dropped
    fresh = smoother([0], (a + 50.0)[None], frame_index=4)
    np.testing.assert_allclose(fresh[0], a + 50.0)  # restarted, no pull towards the old place


def test_videos_whose_names_are_not_utf8_are_written_and_read(tmp_path):
    """OpenCV's VideoCapture/VideoWriter crash (exit 139) on such names: they reach OpenCV
    through `opencv_path`, and the file lands under its own name."""
    import os

    from vitpose.inference.video import VideoReader, VideoWriter
    path = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9.avi"))
    writer = VideoWriter(path, fps=10)
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.close()
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    assert sum(1 for _ in VideoReader(path)) == 5

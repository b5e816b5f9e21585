"""Track tables and arrays of a video, read back by pandas / pyarrow / numpy, and the offline
smoother on a synthetic jittered track."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import vitpose.formats as formats
from vitpose.errors import InputError, OutputError
from vitpose.formats import smooth_tracks, track_arrays


def test_track_table_files_read_back_with_pandas_and_pyarrow(tmp_path, make_track) -> None:
    _, frames = make_track(frames=20, missing=(5,))
    csv = formats.write("tracks", frames, tmp_path / "tracks.csv", fps=25.0).paths[0]
    parquet = formats.write("tracks", frames, tmp_path / "tracks.parquet", fps=25.0).paths[0]
    table = pd.read_csv(csv)
    assert len(table) == 19 * 17  # frame 5 has nobody
    assert list(table.columns[:5]) == ["track_id", "frame", "time_s", "keypoint", "name"]
    row = table[(table.frame == 10) & (table.name == "left_wrist")].iloc[0]
    assert row.time_s == pytest.approx(10 / 25.0)
    assert row.x == pytest.approx(frames[10].instances[0].keypoints[9, 0], abs=1e-3)
    arrow = pq.read_table(parquet)
    assert arrow.schema.metadata[b"vitpose.fps"] == b"25.0"
    assert arrow.num_rows == len(table)
    assert pd.read_parquet(parquet)["track_id"].unique().tolist() == [7]


def test_track_arrays_npz(tmp_path, make_track) -> None:
    _, frames = make_track(frames=12, missing=(3, 4))
    path = formats.write("tracks", frames, tmp_path / "tracks.npz", fps=10.0).paths[0]
    data = np.load(path)
    assert data["track_ids"].tolist() == [7]
    assert data["track_7"].shape == (10, 17, 3)
    assert data["track_7_frames"].tolist() == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]
    np.testing.assert_allclose(data["track_7_time_s"], data["track_7_frames"] / 10.0)
    assert float(data["fps"]) == 10.0 and data["keypoint_names"][0] == "nose"


def test_tracks_refuse_images_untracked_videos_empty_videos_and_existing_files(
        tmp_path, make_track, coco_results) -> None:
    _, frames = make_track(frames=5)
    with pytest.raises(InputError, match="for videos"):
        formats.write("tracks", coco_results, tmp_path / "t.csv")
    for r in frames:
        for i in r.instances:
            i.track_id = None
    with pytest.raises(InputError, match="no track ids"):
        formats.write("tracks", frames, tmp_path / "t.csv", fps=25)
    for r in frames:
        r.instances = []
    with pytest.raises(InputError, match="no tracks"):
        formats.write("tracks", frames, tmp_path / "t.csv", fps=25)
    (tmp_path / "exists.csv").write_text("mine")
    _, frames = make_track(frames=5)
    with pytest.raises(OutputError, match="exists"):
        formats.write("tracks", frames, tmp_path / "exists.csv", fps=25)
    assert (tmp_path / "exists.csv").read_text() == "mine"
    formats.write("tracks", frames, tmp_path / "exists.csv", fps=25, overwrite=True)
    assert "track_id" in (tmp_path / "exists.csv").read_text()


def _acceleration(xy: np.ndarray) -> float:
    return float(np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1).mean())


def test_smoother_lowers_acceleration_and_stays_close_to_the_clean_track(make_track) -> None:
    clean, frames = make_track(frames=90, noise=2.0, missing=(30, 31, 32))
    before = [r.instances[0].keypoints.copy() if r.instances else None for r in frames]
    smoothed, report = smooth_tracks(frames, max_gap=5, window=9)
    assert [r.instances[0].keypoints.tolist() if r.instances else None for r in frames] == \
        [b.tolist() if b is not None else None for b in before]  # inputs untouched
    xy = np.stack([r.instances[0].keypoints[:, :2] for r in smoothed]).astype(np.float64)
    noisy = np.stack([b[:, :2] if b is not None else clean[i]
                      for i, b in enumerate(before)]).astype(np.float64)
    acc_clean, acc_noisy, acc_smooth = _acceleration(clean), _acceleration(noisy), \
        _acceleration(xy)
    err_noisy = float(np.linalg.norm(noisy - clean, axis=-1).mean())
    err_smooth = float(np.linalg.norm(xy - clean, axis=-1).mean())
    # Measured: clean 0.44, jittered 5.9, smoothed 1.04 px/frame^2; error 2.42 -> 1.32 px.
    assert acc_noisy > 5.0 and acc_clean < 0.5
    assert acc_smooth < 0.3 * acc_noisy
    assert err_smooth < 0.7 * err_noisy and err_smooth < 1.6
    info = report.tracks[7]
    assert info.frames_filled == 3 and report.frames_filled == 3
    assert info.jitter_after < 0.3 * info.jitter_before
    assert "3 missing frame(s)" in report.summary()
    filled = smoothed[31].instances[0]
    assert filled.track_id == 7 and np.linalg.norm(filled.keypoints[:, :2] - clean[31],
                                                   axis=-1).mean() < 3.0


def test_smoother_never_fills_beyond_the_gap_limit_and_ignores_unsure_keypoints(make_track):
    _, frames = make_track(frames=40, missing=tuple(range(10, 20)))
    frames[25].instances[0].keypoints[3, 2] = 0.05       # one unsure keypoint
    frames[25].instances[0].keypoints[3, :2] = [999, 999]
    smoothed, report = smooth_tracks(frames, max_gap=5, window=7)
    assert all(not smoothed[i].instances for i in range(10, 20))
    assert report.tracks[7].frames_filled == 0 and report.tracks[7].gaps_left == 1
    # the unsure keypoint, one frame long, is filled from its neighbours with their scores
    kp = smoothed[25].instances[0].keypoints[3]
    assert abs(kp[0] - frames[24].instances[0].keypoints[3, 0]) < 20 and kp[2] == pytest.approx(0.9)
    with pytest.raises(InputError, match="window"):
        smooth_tracks(frames, window=4)


def test_tracks_writer_smooths_and_reports(tmp_path, make_track) -> None:
    _, frames = make_track(frames=30, missing=(12,))
    report = formats.write("tracks", frames, tmp_path / "t.npz", fps=30, smooth=True)
    assert "1 missing frame(s)" in report.notes[0] and "jitter" in report.notes[0]
    assert 12 in np.load(report.paths[0])["track_7_frames"].tolist()
    assert len(track_arrays(frames)[7].frames) == 29

"""The output formats on what the model really returns: a tiny random model over the sample
video (tracked, as the video predictor runs it) and over a sample image."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
from tiny_models import tiny_simple_model

import vitpose.formats as formats
from vitpose.dataset_meta import get_dataset_meta
from vitpose.inference.pipeline import PoseEstimator
from vitpose.inference.video import IntervalBoxes, PoseTracker, VideoReader, estimate_video


def test_tracked_video_results_become_tracks_openpose_and_a_smoothed_npz(tmp_path, data_dir) -> None:
    estimator = PoseEstimator(tiny_simple_model(), dataset="coco", batch_size=4)
    reader = VideoReader(data_dir / "video" / "demo.mp4")
    h, w = reader.size_hw

    def detect(frame):
        return np.array([[w * 0.3, h * 0.2, w * 0.3, h * 0.6, 0.9]], np.float32), None

    tracker = PoseTracker(metric="iou", max_missed=2)
    frames = list(itertools.islice(reader, 8))
    items = [(i, r) for i, _, r in estimate_video(frames, estimator, IntervalBoxes(detect),
                                                  tracker)]
    assert all(r.instances[0].track_id == items[0][1].instances[0].track_id for _, r in items)
    table = pd.read_parquet(formats.write("tracks", items, tmp_path / "t.parquet",
                                          fps=reader.fps).paths[0])
    assert len(items) >= 4 and len(table) == len(items) * 17
    np.testing.assert_allclose(table[table.frame == 3][["x", "y", "score"]].to_numpy(),
                               items[3][1].instances[0].keypoints, rtol=1e-5)
    report = formats.write("tracks", items, tmp_path / "t.npz", fps=reader.fps, smooth=True)
    assert "smoothed 1 track(s)" in report.notes[0]
    formats.write("openpose", items, tmp_path / "op", fps=reader.fps, stem="demo")
    assert len(list((tmp_path / "op").glob("demo_*_keypoints.json"))) == len(items)


def test_image_results_become_supervision_coco_and_label_studio(tmp_path, data_dir) -> None:
    estimator = PoseEstimator(tiny_simple_model(), dataset="coco")
    image = data_dir / "coco" / "000000000785.jpg"
    result = estimator(str(image), boxes=[[280, 44, 218, 346]])
    kp = formats.to_supervision(result)
    assert kp.xy.shape == (1, 17, 2)
    coco = json.loads(formats.write("coco-keypoints", [result], tmp_path / "c.json",
                                    min_score=0.0).paths[0].read_text())
    assert coco["categories"][0]["keypoints"] == list(get_dataset_meta("coco").keypoint_names)
    np.testing.assert_allclose(np.array(coco["annotations"][0]["keypoints"]).reshape(17, 3)[:, :2],
                               result.instances[0].keypoints[:, :2], atol=0.01)
    tasks = json.loads(formats.write("label-studio", [result], tmp_path / "ls.json",
                                     min_score=0.0).paths[0].read_text())
    assert len(tasks[0]["predictions"][0]["result"]) == 1 + 17

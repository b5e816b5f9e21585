"""`vitpose predict VIDEO`: an annotated mp4 with every frame and per-frame JSON with track ids.

Boxes come from ``--detector whole-image`` or ``--box`` so that the test does not depend on the
HOG detector finding people; the model is a tiny random ViTPose saved with `save_checkpoint`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    model = tiny_simple_model()
    return vitpose.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture(scope="module")
def demo(data_dir) -> Path:
    path = data_dir / "video" / "demo.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def predict(*args: object) -> int:
    return main(["predict", *map(str, args), "--device", "cpu"])


def test_video_gives_annotated_mp4_and_frame_json(demo, ckpt, tmp_path, capsys):
    src = _frames(demo)
    assert len(src) == 5
    out = tmp_path / "out"
    assert predict(demo, "--model", ckpt, "--detector", "whole-image", "--out-dir", out) == 0
    assert "5 frame(s)" in capsys.readouterr().out

    drawn = _frames(out / "demo_pose.mp4")
    assert len(drawn) == len(src)  # every frame, read back with OpenCV
    assert drawn[0].shape == src[0].shape
    cap = cv2.VideoCapture(str(out / "demo_pose.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(cv2.VideoCapture(str(demo)).get(
        cv2.CAP_PROP_FPS))
    cap.release()

    frames = json.loads((out / "demo_frames.json").read_text())
    assert [f["frame"] for f in frames] == [0, 1, 2, 3, 4]
    h, w = src[0].shape[:2]
    for f in frames:
        (inst,) = f["instances"]  # one whole-image box per frame
        assert inst["image_id"] == f["frame"] and inst["bbox"] == [0, 0, w, h]
        assert isinstance(inst["track_id"], int) and len(inst["keypoints"]) == 51
    assert not list(out.glob("*.partial.jsonl"))


def test_track_ids_persist_on_a_static_scene(demo, ckpt, tmp_path):
    """Two people (fixed boxes) in a scene that does not move keep their ids in every frame."""
    first = _frames(demo)[0]
    static = tmp_path / "static.avi"
    writer = cv2.VideoWriter(str(static), cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                             (first.shape[1], first.shape[0]))
    assert writer.isOpened()
    for _ in range(4):
        writer.write(first)
    writer.release()
    out = tmp_path / "out"
    assert predict(static, "--model", ckpt, "--box", "100,50,300,450", "--box", "500,60,300,450",
                   "--smooth", "--out-dir", out) == 0
    frames = json.loads((out / "static_frames.json").read_text())
    assert len(frames) == 4 == len(_frames(out / "static_pose.mp4"))
    ids = [[i["track_id"] for i in f["instances"]] for f in frames]
    assert ids == [[0, 1]] * 4


def test_video_options_and_existing_outputs(demo, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    args = [demo, "--model", ckpt, "--box", "100,50,300,450", "--box", "500,60,300,450",
            "--out-dir", out]
    assert predict(*args, "--max-frames", "2", "--no-track") == 0
    frames = json.loads((out / "demo_frames.json").read_text())
    assert len(frames) == 2 == len(_frames(out / "demo_pose.mp4"))
    assert all(len(f["instances"]) == 2 and "track_id" not in f["instances"][0] for f in frames)

    # outputs are not replaced without --overwrite
    before = (out / "demo_frames.json").read_bytes()
    assert predict(*args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "demo_frames.json").read_bytes() == before
    assert predict(*args, "--overwrite", "--no-draw", "--out", out / "f.json") == 0
    frames = json.loads((out / "f.json").read_text())
    assert len(frames) == 5
    assert all(len({i["track_id"] for i in f["instances"]}) == 2 for f in frames)


def test_det_interval_option(demo, ckpt, tmp_path, capsys, monkeypatch):
    """--det-interval reaches the video loop: the detector runs on fewer frames than there are
    when the tracked poses hold (a stand-in pose keeps every keypoint confident)."""
    from vitpose.inference import pipeline

    real = pipeline.PoseEstimator._fill

    def confident(self, result, boxes, coords, scores, centers, scales):
        real(self, result, boxes, coords, np.full_like(scores, 0.9), centers, scales)

    monkeypatch.setattr(pipeline.PoseEstimator, "_fill", confident)
    out = tmp_path / "o"
    assert predict(demo, "--model", ckpt, "--detector", "whole-image", "--det-interval", "3",
                   "--out-dir", out, "--no-flip") == 0
    printed = capsys.readouterr().out
    assert "5 frame(s) (2 detector pass(es))" in printed  # frames 0 and 3
    frames = json.loads((out / "demo_frames.json").read_text())
    assert [len(f["instances"]) for f in frames] == [1] * 5
    assert all("track_id" in f["instances"][0] for f in frames)
    assert predict(demo, "--model", ckpt, "--det-interval", "0", "--out-dir", tmp_path / "z") == 2

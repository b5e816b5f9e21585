"""The three front doors run the one predict job: `vitpose.Predictor` (Python), `vitpose predict`
(command line) and the demo's handlers give identical results on the same image and the same
video with the same options; the demo's video tab honours the detection interval; the Python
front door has exactly the command line's defaults.

The model is a tiny random ViTPose written to a checkpoint (float32, torch engine: exact)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import build_parser, main
from vitpose.demo import PoseDemo
from vitpose.errors import InputError
from vitpose.inference import pipeline
from vitpose.inference.builder import BoxSource
from vitpose.inference.io import read_image
from vitpose.predict import PredictOptions, Predictor

EXACT = ("--dtype", "float32", "--backend", "torch", "--device", "cpu")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(vitpose.save_checkpoint(tiny_simple_model(),
                                       tmp_path_factory.mktemp("ckpt") / "tiny.pth"))


@pytest.fixture
def image(data_dir):
    return data_dir / "coco" / "000000000785.jpg"


@pytest.fixture
def video(data_dir):
    return data_dir / "video" / "demo.mp4"


@pytest.fixture
def confident(monkeypatch):
    """Every keypoint confident, so that tracks hold between detector passes."""
    real = pipeline.PoseEstimator._fill

    def fill(self, result, boxes, coords, scores, centers, scales):
        real(self, result, boxes, coords, np.full_like(scores, 0.9), centers, scales)

    monkeypatch.setattr(pipeline.PoseEstimator, "_fill", fill)


@pytest.fixture
def detector_calls(monkeypatch):
    """Counts the detector passes (through any front door)."""
    calls = {"n": 0}
    real = BoxSource.labeled

    def labeled(self, path, image):
        calls["n"] += 1
        return real(self, path, image)

    monkeypatch.setattr(BoxSource, "labeled", labeled)
    return calls


def _demo(ckpt, tmp_path, **kw):
    return PoseDemo(ckpt, work_dir=tmp_path / "demo", dtype="float32", backend="torch",
                    device="cpu", **kw)


def test_the_python_default_options_are_the_command_lines():
    """`PredictOptions()` (what `Predictor()` starts from) equals `vitpose predict X`'s parse."""
    parsed = build_parser().parse_args(["predict", "x.jpg"])
    ours = PredictOptions(input="x.jpg")
    for f in dataclasses.fields(PredictOptions):
        assert getattr(parsed, f.name) == getattr(ours, f.name), f.name
    assert Predictor().options == dataclasses.replace(ours, input=None)
    assert Predictor().options.detector == "auto"  # the learned detector, offline HOG


def test_same_image_same_results_through_every_front_door(ckpt, image, tmp_path):
    out = tmp_path / "cli"
    assert main(["predict", str(image), "--model", ckpt, *EXACT, "--detector", "whole-image",
                 "--out-dir", str(out), "--no-draw"]) == 0
    cli = json.loads((out / "results.json").read_text())
    predictor = Predictor(ckpt, dtype="float32", backend="torch", device="cpu",
                          detector="whole-image")
    (result,) = predictor(image)
    assert result.to_coco() == cli
    # an RGB array gives the same poses
    (array_result,) = predictor(read_image(image))
    np.testing.assert_array_equal(array_result.xy, result.xy)
    # the per-image arrays
    k = len(cli[0]["keypoints"]) // 3
    assert result.xy.shape == (1, k, 2) and result.scores.shape == (1, k)
    assert result.boxes.shape == (1, 5) and result.track_ids.tolist() == [-1]
    assert result.datasets == ["coco"] and result.categories == [None]
    np.testing.assert_allclose(result.xy.reshape(-1), np.asarray(
        cli[0]["keypoints"]).reshape(-1, 3)[:, :2].reshape(-1), atol=1e-3)
    demo = _demo(ckpt, tmp_path).predict_image(str(image), None, "Whole image (one box)")
    assert not demo.error, demo.message
    assert demo.results == cli


def test_same_video_same_results_through_every_front_door(ckpt, video, tmp_path, confident,
                                                          detector_calls):
    out = tmp_path / "cli"
    assert main(["predict", str(video), "--model", ckpt, *EXACT, "--detector", "whole-image",
                 "--det-interval", "2", "--out-dir", str(out), "--no-draw"]) == 0
    cli = json.loads((out / "demo_frames.json").read_text())
    assert len(cli) == 5 and detector_calls["n"] == 3  # frames 0, 2 and 4
    detector_calls["n"] = 0
    predictor = Predictor(ckpt, dtype="float32", backend="torch", device="cpu",
                          detector="whole-image", det_interval=2)
    frames = predictor(video)
    assert [{"frame": r.image_id, "instances": r.to_coco()} for r in frames] == cli
    assert [r.track_ids.tolist() for r in frames] == \
        [[i["track_id"] for i in f["instances"]] for f in cli]
    assert detector_calls["n"] == 3
    detector_calls["n"] = 0
    demo = _demo(ckpt, tmp_path, det_interval=2).predict_video(
        str(video), None, "Whole image (one box)")
    assert not demo.error, demo.message
    assert json.loads(open(demo.json_path).read()) == cli
    assert detector_calls["n"] == 3  # the demo's video tab honours the detection interval
    assert "the detector ran on 3 frame(s) (every 2 frames)" in demo.message


def test_demo_video_tab_detection_interval(ckpt, video, tmp_path, confident, detector_calls):
    demo = _demo(ckpt, tmp_path)
    every = demo.predict_video(str(video), None, "Whole image (one box)")
    assert not every.error and detector_calls["n"] == 5  # default: every frame, as the CLI
    detector_calls["n"] = 0
    sparse = demo.predict_video(str(video), None, "Whole image (one box)", det_interval=4)
    assert not sparse.error and detector_calls["n"] == 2  # frames 0 and 4
    bad = demo.predict_video(str(video), None, "Whole image (one box)", det_interval=0)
    assert bad.error and "detection interval" in bad.message
    with pytest.raises(InputError, match="detection interval"):
        _demo(ckpt, tmp_path, det_interval=0)


def test_predictor_refuses_unknown_options_and_sources(ckpt):
    with pytest.raises(TypeError, match="det_intervall"):
        Predictor(ckpt, det_intervall=2)
    with pytest.raises(InputError, match="detection interval"):
        Predictor(ckpt, det_interval=0)
    predictor = Predictor(ckpt, detector="whole-image", backend="torch", device="cpu")
    with pytest.raises(InputError, match="RGB uint8"):
        predictor(np.zeros((4, 4), np.float32))
    with pytest.raises(InputError):
        predictor(3.5)
    with pytest.raises(InputError, match="stream"):  # a webcam never ends
        predictor(0)


def test_a_result_sink_gets_every_result_in_order_then_the_end(ckpt, tmp_path):
    """`ResultSink`: where another output format plugs into the job."""
    from vitpose.inference.io import iter_inputs
    from vitpose.predict import ResultSink, run_images
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("b.png", "a.png", "c.png"):
        import cv2
        cv2.imwrite(str(folder / name), np.full((40, 30, 3), 120, np.uint8))

    class Sink(ResultSink):
        def __init__(self):
            self.seen, self.closed = [], None

        def add(self, key, result, image):
            self.seen.append((key, len(result.instances), image.shape))

        def close(self, complete):
            self.closed = (complete, (tmp_path / "o" / "results.json").exists())

    sink = Sink()
    opts = PredictOptions(input=str(folder), model=ckpt, detector="whole-image",
                          backend="torch", dtype="float32", device="cpu",
                          out_dir=str(tmp_path / "o"), no_draw=True)
    summary = run_images(opts, iter_inputs(str(folder)), opts.validate(), sinks=[sink])
    assert summary.exit_code == 0 and summary.counts["images"] == 3
    assert sink.seen == [(n, 1, (40, 30, 3)) for n in ("a.png", "b.png", "c.png")]
    assert sink.closed == (True, True)  # after the results file was written


def test_predictor_tells_the_engine_choice_the_jobs_length_as_the_cli_does(ckpt, data_dir,
                                                                          monkeypatch):
    """`Predictor` builds its estimator on first use for the job it was given: a folder's
    images (x 2 with the flip test) reach ``backend auto``'s rule, as in `vitpose predict`."""
    from vitpose.predict import predictor as P
    asked = []
    real = P.build_estimator

    def spy(opts, **kw):
        asked.append(kw.get("crops"))
        return real(opts, **kw)

    monkeypatch.setattr(P, "build_estimator", spy)
    folder = data_dir / "coco"
    images = len(list(folder.glob("*.jpg")))
    predictor = Predictor(str(ckpt), box=["10,10,100,100"])
    results = predictor(str(folder))
    assert len(results) == images and asked == [2 * images]
    predictor(str(folder))  # built once
    assert asked == [2 * images]
    Predictor(str(ckpt), box="10,10,100,100").predict_array(np.zeros((64, 48, 3), np.uint8))
    assert asked == [2 * images, None]  # one array: a job of unknown length

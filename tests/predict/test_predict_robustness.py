"""`vitpose predict` (and the demo) on hostile or unlucky inputs: video frames beyond the pixel
budget, weights changed between a run and its resume, two runs on one output, outputs that
would write over an input, file names at the file-system limit, a detections file keyed by ids
that match no input, SIGTERM, option values out of range."""

from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import build_parser, main
from vitpose.demo import PoseDemo
from vitpose.inference.pipeline import PoseEstimator

TORCH = ("--device", "cpu", "--backend", "torch", "--dtype", "float32")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    return str(vitpose.save_checkpoint(tiny_simple_model(),
                                       tmp_path_factory.mktemp("ckpt") / "tiny.pth"))


def predict(*args: object) -> int:
    return main(["predict", *map(str, args), *TORCH])


def _images(folder: Path, n: int, names=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / (names[i] if names else f"img{i}.png")
        cv2.imwrite(str(p), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
        paths.append(p)
    return paths


def _interrupt_at(monkeypatch, n: int, action=None):
    real = PoseEstimator.crops
    calls = {"n": 0}

    def crops(self, image, boxes):
        calls["n"] += 1
        if calls["n"] == n:
            if action is None:
                raise KeyboardInterrupt
            action()
        return real(self, image, boxes)

    monkeypatch.setattr(PoseEstimator, "crops", crops)
    return calls


def test_video_frames_beyond_the_pixel_budget_are_refused_before_decoding(ckpt, tmp_path,
                                                                          capsys):
    video = tmp_path / "big.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (400, 300))
    for _ in range(3):
        writer.write(np.zeros((300, 400, 3), np.uint8))
    writer.release()
    rc = predict(video, "--model", ckpt, "--detector", "whole-image", "--max-pixels", "100000",
                 "--out-dir", tmp_path / "o")
    assert rc == 2
    err = capsys.readouterr().err
    assert "400x300 = 120,000 pixels, more than the budget of 100,000" in err
    assert not (tmp_path / "o").exists()  # refused before anything was written
    assert predict(video, "--model", ckpt, "--detector", "whole-image", "--max-pixels",
                   "120000", "--out-dir", tmp_path / "o", "--no-draw") == 0


def test_demo_webcam_refuses_frames_beyond_the_pixel_budget(ckpt, tmp_path):
    demo = PoseDemo(ckpt, work_dir=tmp_path, dtype="float32", backend="torch",
                    max_pixels=10_000)
    drawn, text = demo.predict_frame(np.zeros((200, 100, 3), np.uint8), None,
                                     "Whole image (one box)")
    assert drawn is None and "20,000 pixels" in text and text.startswith("**Error:**")
    drawn, text = demo.predict_frame(np.zeros((100, 100, 3), np.uint8), None,
                                     "Whole image (one box)")
    assert drawn is not None, text


def test_resume_refuses_weights_changed_at_the_same_path(ckpt, tmp_path, monkeypatch, capsys):
    _images(tmp_path / "in", 4)
    weights = tmp_path / "w.pth"
    weights.write_bytes(Path(ckpt).read_bytes())
    args = (tmp_path / "in", "--model", weights, "--detector", "whole-image", "--batch-size",
            "1", "--out-dir", tmp_path / "o", "--no-draw")
    _interrupt_at(monkeypatch, 3)
    assert predict(*args) == 130
    monkeypatch.undo()
    vitpose.save_checkpoint(tiny_simple_model(seed=1), weights)
    capsys.readouterr()
    assert predict(*args) == 2  # another model at the same path: not mixed into the results
    err = capsys.readouterr().err
    assert "other settings" in err and "weights_content" in err and "--overwrite" in err
    assert predict(*args, "--overwrite") == 0


def test_a_second_run_on_a_live_output_is_refused(ckpt, tmp_path, monkeypatch, capsys):
    _images(tmp_path / "in", 3)
    args = (tmp_path / "in", "--model", ckpt, "--detector", "whole-image", "--batch-size", "1",
            "--out-dir", tmp_path / "o", "--no-draw")
    _interrupt_at(monkeypatch, 2)
    assert predict(*args) == 130
    monkeypatch.undo()
    journal = tmp_path / "o" / "results.json.partial.jsonl"
    with journal.open("rb") as live:  # another process still writing it
        fcntl.flock(live.fileno(), fcntl.LOCK_EX)
        before = journal.read_bytes()
        capsys.readouterr()
        assert predict(*args) == 2
        assert "being written by another run" in capsys.readouterr().err
        assert predict(*args, "--overwrite") == 2  # not even emptied
        assert journal.read_bytes() == before
    assert predict(*args) == 0  # the other run gone: resumed


def test_outputs_never_write_over_an_input(ckpt, tmp_path, capsys):
    folder = tmp_path / "in"
    inputs = _images(folder, 2, ["a.png", "a_pose.png"])
    before = [p.read_bytes() for p in inputs]
    rc = predict(folder, "--model", ckpt, "--detector", "whole-image", "--out-dir", folder,
                 "--overwrite")
    assert rc == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert [p.read_bytes() for p in inputs] == before
    rc = predict(inputs[0], "--model", ckpt, "--detector", "whole-image", "--out", inputs[0],
                 "--overwrite", "--no-draw")
    assert rc == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert [p.read_bytes() for p in inputs] == before


def test_a_name_at_the_file_system_limit_gets_a_drawing_that_fits(ckpt, tmp_path):
    name = "x" * 247 + ".png"  # 251 bytes: legal; "<stem>_pose.png" would be 256
    _images(tmp_path / "in", 2, [name, "b.png"])
    out = tmp_path / "o"
    assert predict(tmp_path / "in", "--model", ckpt, "--detector", "whole-image",
                   "--out-dir", out) == 0
    drawn = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert len(drawn) == 2 and all(len(n.encode()) <= 255 for n in drawn)
    results = json.loads((out / "results.json").read_text())
    assert sorted(r["image_id"] for r in results) == sorted([name, "b.png"])


def test_detections_keyed_by_ids_that_match_no_input(ckpt, tmp_path, capsys):
    _images(tmp_path / "in", 2, ["left.png", "right.png"])
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 30],
                                 "score": 0.9}, {"image_id": 2, "category_id": 1,
                                                 "bbox": [1, 1, 20, 30], "score": 0.9}]))
    rc = predict(tmp_path / "in", "--model", ckpt, "--det-file", dets, "--out-dir",
                 tmp_path / "o")
    assert rc == 2
    err = capsys.readouterr().err
    assert "matches none of the 2 input image(s)" in err and "--images-file" in err
    images = tmp_path / "images.json"
    images.write_text(json.dumps({"images": [{"id": 1, "file_name": "left.png"},
                                             {"id": 2, "file_name": "right.png"}]}))
    assert predict(tmp_path / "in", "--model", ckpt, "--det-file", dets, "--images-file",
                   images, "--out-dir", tmp_path / "o") == 0


def test_sigterm_stops_like_ctrl_c_and_says_what_was_kept(ckpt, tmp_path, monkeypatch, capsys):
    _images(tmp_path / "in", 4)
    args = (tmp_path / "in", "--model", ckpt, "--detector", "whole-image", "--batch-size", "1",
            "--out-dir", tmp_path / "o", "--no-draw")
    _interrupt_at(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert predict(*args) == 143
    err = capsys.readouterr().err
    assert "interrupted after 2 of 4 image(s)" in err and "rerun the same command" in err
    monkeypatch.undo()
    assert predict(*args) == 0
    assert "resuming: 2 of 4" in capsys.readouterr().err


def test_option_values_out_of_range(ckpt, tmp_path, capsys):
    image = _images(tmp_path / "in", 1)[0]
    assert predict(image, "--model", ckpt, "--kpt-thr", "2", "--out-dir", tmp_path / "o") == 2
    assert "--kpt-thr is a keypoint score between 0 and 1, got 2.0" in capsys.readouterr().err


def test_demo_takes_every_detector_of_predict_and_documents_its_options(ckpt, tmp_path):
    demo = PoseDemo(ckpt, work_dir=tmp_path, detector="dfine-s")  # built on first use only
    assert demo.box_sources[demo.default_box_source] == "dfine-s"
    sub = build_parser()._subparsers._group_actions[0].choices["demo"]
    undocumented = [a.dest for a in sub._actions if a.option_strings and not a.help]
    assert undocumented == []
    assert sub.parse_args(["--detector", "dfine-s"]).detector == "dfine-s"


def test_an_exported_graph_given_as_the_model_runs_with_its_runtime(ckpt, tmp_path, capsys):
    """``--model x.onnx`` / ``--weights x.onnx`` (was: "not a readable PyTorch checkpoint ...
    truncated?"): the exported file runs through ONNX Runtime with the same crops, flip test
    and decoding as the checkpoint."""
    pytest.importorskip("onnxruntime")
    from vitpose.export import export_onnx
    onnx = tmp_path / "tiny.onnx"
    export_onnx(vitpose.load_model(ckpt), onnx)
    image = _images(tmp_path / "in", 1)[0]
    assert predict(image, "--model", ckpt, "--detector", "whole-image", "--no-draw",
                   "--out", tmp_path / "ref.json") == 0
    reference = json.loads((tmp_path / "ref.json").read_text())
    for flag in ("--model", "--weights"):
        out = tmp_path / f"{flag[2:]}.json"
        rc = main(["predict", str(image), flag, str(onnx), "--detector", "whole-image",
                   "--no-draw", "--out", str(out), "--device", "cpu"])
        assert rc == 0, capsys.readouterr().err
        got = json.loads(out.read_text())
        assert len(got) == len(reference) == 1
        np.testing.assert_allclose(got[0]["keypoints"], reference[0]["keypoints"], atol=0.05)
    assert predict(image, "--model", onnx, "--detector", "whole-image", "--out",
                   tmp_path / "t.json") == 2  # --backend torch cannot run it: said so
    assert "exported graph" in capsys.readouterr().err


def test_a_video_browsers_cannot_play_is_said(ckpt, data_dir, tmp_path, capsys):
    """The annotated mp4 is MPEG-4 Part 2 when this OpenCV cannot encode H.264: the summary
    says browsers do not play it and how to re-encode it (nothing is said for H.264)."""
    out = tmp_path / "o"
    assert predict(data_dir / "video" / "demo.mp4", "--model", ckpt, "--detector",
                   "whole-image", "--max-frames", "2", "--out-dir", out) == 0
    err = capsys.readouterr().err
    cap = cv2.VideoCapture(str(out / "demo_pose.mp4"))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace")
    cap.release()
    mp4v = fourcc.lower() in ("mp4v", "fmp4")
    assert ("MPEG-4 Part 2" in err) == mp4v, (fourcc, err)
    if mp4v:
        assert "web browsers do not play" in err and "ffmpeg" in err


def test_log_lines_do_not_break_the_progress_bar(ckpt, tmp_path):
    """A log line during a folder run (a skipped file) is written through the progress bar: on
    a line of its own, not glued to a half-drawn bar."""
    import subprocess
    import sys
    folder = tmp_path / "in"
    _images(folder, 5)
    (folder / "broken.png").write_bytes(b"not a png at all" * 10)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "vitpose", "predict", str(folder), "--model",
                           ckpt, "--detector", "whole-image", "--out-dir", str(tmp_path / "o"),
                           "--no-draw", *TORCH], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = [part for line in proc.stderr.split("\n") for part in [line.split("\r")[-1]]
             if "skipping" in line]
    assert lines and all(part.startswith("ERROR") for part in lines), proc.stderr
    assert "%|" in proc.stderr  # the bar was drawn

"""Issue 12 (robustness, the predict/IO side) and issue 16 (first hour) cases, each where the user
meets it: the command line, the demo handlers. docs/RELIABILITY.md lists them with these tests.

The model is a tiny random ViTPose saved with `vitpose.save_checkpoint` (no download)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main
from vitpose.inference.pipeline import PoseEstimator

# subprocesses run the vitpose this test imports
ENV = {**os.environ, "PYTHONPATH": str(Path(vitpose.__file__).resolve().parents[1])}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return vitpose.save_checkpoint(tiny_simple_model(), tmp_path_factory.mktemp("ckpt") / "t.pth")


def predict(*args: object) -> int:
    return main(["predict", *map(str, args), "--device", "cpu"])


def _images(folder: Path, names: list[str], size=(96, 80)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name in names:
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(Path(name).suffix.lower(),
                               rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        assert ok
        p.write_bytes(buf.tobytes())
        paths.append(p)
    return paths


def _strict_json(path: Path):
    """Parses like a strict JSON reader: NaN / Infinity are errors."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 1. Decompression bomb: refused from the header, skipped in a folder, shown by the demo
# ---------------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, h: int, w: int) -> Path:
    """A valid grayscale PNG of zeros: tiny on disk, ``h * w`` bytes once decoded."""
    comp = zlib.compressobj(9)
    row = bytes(w + 1)  # filter byte + pixels
    idat = b"".join([comp.compress(row) for _ in range(h)] + [comp.flush()])
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


@pytest.mark.slow
def test_bomb_in_a_folder_is_skipped_and_the_rest_kept(ckpt, tmp_path):
    """The issue's file (30000x30000 zeros, 875 KB) between two good images: before, the
    process segfaulted in warpAffine (exit 139) and the earlier results were lost."""
    folder = tmp_path / "imgs"
    _images(folder, ["a.png", "c.png"])
    bomb = bomb_png(folder / "b_bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 1_000_000
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "vitpose.cli", "predict", str(folder),
                           "--model", str(ckpt), "--detector", "whole-image", "--out-dir",
                           str(out), "--device", "cpu"], check=False, capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "b_bomb.png is 30000x30000 = 900.0 MP, above the pixel budget of 100 MP" in proc.stderr
    assert "1 of 3 file(s) could not be read and were skipped" in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == ["a.png", "c.png"]


def test_single_bomb_is_one_error_and_nothing_written(ckpt, tmp_path, capsys):
    bomb = bomb_png(tmp_path / "big.png", 9000, 12000)  # 108 MP
    out = tmp_path / "out"
    assert predict(bomb, "--model", ckpt, "--out-dir", out) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "above the pixel budget of 100 MP" in line and "--max-pixels" in line
    assert not out.exists()


def test_pixel_budget_is_configurable(ckpt, tmp_path, capsys, monkeypatch):
    (image,) = _images(tmp_path, ["small.png"])  # 80 x 96 = 7680 px
    args = [image, "--model", ckpt, "--detector", "whole-image", "--no-draw"]
    assert predict(*args, "--max-pixels", "7000", "--out", tmp_path / "a.json") == 2
    assert "above the pixel budget of 0.007 MP" in capsys.readouterr().err
    assert predict(*args, "--max-pixels", "8000", "--out", tmp_path / "b.json") == 0
    monkeypatch.setenv("VITPOSE_MAX_PIXELS", "7000")
    assert predict(*args, "--out", tmp_path / "c.json") == 2
    assert "pixel budget" in capsys.readouterr().err
    assert predict(*args, "--max-pixels", "8000", "--out", tmp_path / "d.json") == 0  # wins
    for bad in ("0", str(2**31)):
        assert predict(*args, "--max-pixels", bad, "--out", tmp_path / "e.json") == 2
        assert "--max-pixels must be between 1 and" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "e.json").exists()


def test_demo_shows_the_refusal_and_stays_up(tmp_path, data_dir):
    from vitpose.demo import PoseDemo
    path = tmp_path / "tiny.pt"
    vitpose.save_checkpoint(tiny_simple_model(), path)
    demo = PoseDemo(str(path), work_dir=tmp_path / "work", dtype="float32")
    out = demo.predict_image(str(bomb_png(tmp_path / "upload.png", 9000, 12000)))
    assert out.error and out.image is None
    assert "above the pixel budget" in out.message and str(tmp_path) not in out.message
    ok = demo.predict_image(str(data_dir / "coco" / "000000000785.jpg"))
    assert not ok.error, ok.message


def test_python_api_refuses_arrays_opencv_cannot_warp():
    """The issue's 30000x30000 image as an array (zero strides: no memory): an `InputError`,
    not a segfault in warpAffine."""
    huge = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (30000, 30000, 3), (0, 0, 1))
    estimator = PoseEstimator(tiny_simple_model())
    with pytest.raises(vitpose.InputError, match="30000x30000 pixels is above"):
        estimator(huge)


# ---------------------------------------------------------------------------------------------
# 2. Interrupted runs resume (the Ctrl-C case is in test_predict_cli.py)
# ---------------------------------------------------------------------------------------------

def _count_crops(monkeypatch, interrupt_at: int | None = None) -> dict[str, int]:
    """Counts the images (frames) whose boxes are cropped (an image's boxes may be cropped in
    several chunks); raises KeyboardInterrupt at the first crop of image `interrupt_at`."""
    calls = {"n": 0}
    last: list[object] = [None]
    real = PoseEstimator.crops

    def crops(self, image, boxes):
        if image is not last[0]:
            last[0] = image
            calls["n"] += 1
            if calls["n"] == interrupt_at:
                raise KeyboardInterrupt
        return real(self, image, boxes)

    monkeypatch.setattr(PoseEstimator, "crops", crops)
    return calls


def test_killed_run_resumes_from_its_journal(ckpt, tmp_path, monkeypatch, capsys):
    """kill -9: no final JSON, a journal whose last line is torn. Before, the rerun truncated
    the journal and started over; now it keeps the complete lines and does the rest."""
    _images(tmp_path / "imgs", [f"img{i}.png" for i in range(5)])
    args = [tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image", "--no-draw",
            "--batch-size", "1"]
    assert predict(*args, "--out", tmp_path / "ref.json") == 0
    reference = json.loads((tmp_path / "ref.json").read_text())

    out = tmp_path / "out" / "results.json"
    _count_crops(monkeypatch, interrupt_at=3)
    assert predict(*args, "--out", out) == 130
    journal = out.with_name("results.json.partial.jsonl")
    out.unlink()  # as after kill -9: only the journal, its last write cut in the middle
    with journal.open("a") as f:
        f.write('{"key": "img2.png", "value": [{"image_id": "img2.png", "bb')
    lines_before = journal.read_text().count("\n")
    calls = _count_crops(monkeypatch)
    capsys.readouterr()
    assert predict(*args, "--out", out) == 0
    assert "resuming: 2 of 5 image(s) already done" in capsys.readouterr().err
    assert lines_before == 3 and calls["n"] == 3
    assert _strict_json(out) == reference
    assert not journal.exists()


def test_resume_with_other_settings_is_refused(ckpt, tmp_path, monkeypatch, capsys):
    _images(tmp_path / "imgs", ["a.png", "b.png", "c.png"])
    args = [tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image", "--no-draw",
            "--batch-size", "1", "--out", tmp_path / "r.json"]
    _count_crops(monkeypatch, interrupt_at=2)
    assert predict(*args) == 130
    journal = tmp_path / "r.json.partial.jsonl"
    saved = journal.read_bytes()
    capsys.readouterr()
    assert predict(*args, "--no-flip") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "other settings" in line and "no_flip" in line and "--overwrite" in line
    assert journal.read_bytes() == saved


def test_disk_full_is_one_error_and_the_rerun_finishes(ckpt, tmp_path, monkeypatch, capsys):
    from vitpose.inference.results import ResumableResults
    _images(tmp_path / "imgs", [f"img{i}.png" for i in range(4)])
    args = [tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image", "--batch-size", "1",
            "--out-dir", tmp_path / "out"]
    real_start = ResumableResults.start

    class FullAfter:
        def __init__(self, fh, n):
            self.fh, self.n = fh, n

        def write(self, data):
            self.n -= 1
            if self.n < 0:
                raise OSError(28, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def start(self):
        real_start(self)
        self._fh = FullAfter(self._fh, 2)  # (after the header) two images fit

    monkeypatch.setattr(ResumableResults, "start", start)
    assert predict(*args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "rerun the same command" in line
    journal = tmp_path / "out" / "results.json.partial.jsonl"
    assert journal.read_text().count("\n") == 3
    monkeypatch.setattr(ResumableResults, "start", real_start)
    assert predict(*args) == 0
    assert "resuming: 2 of 4 image(s) already done" in capsys.readouterr().err
    assert len(_strict_json(tmp_path / "out" / "results.json")) == 4


@pytest.mark.parametrize("smooth,interval", [(False, 1), (True, 1), (True, 2)])
def test_interrupted_video_resumes_to_the_same_result(ckpt, tmp_path, data_dir, monkeypatch,
                                                      capsys, smooth, interval):
    video = data_dir / "video" / "demo.mp4"
    if not video.is_file():
        pytest.skip("no sample video")
    # --batch-size 1: each frame's crops go through the model before the next frame's are
    # cut (larger batches gather several frames' crops, so the interrupt would come first)
    args = [video, "--model", ckpt, "--box", "300,50,300,450", "--box", "0,0,200,300",
            "--batch-size", "1", "--det-interval", str(interval)]
    args += ["--smooth"] if smooth else []
    assert predict(*args, "--out-dir", tmp_path / "ref") == 0
    reference = _strict_json(tmp_path / "ref" / "demo_frames.json")
    calls = _count_crops(monkeypatch, interrupt_at=3)
    out = tmp_path / "out"
    assert predict(*args, "--out-dir", out) == 130
    assert len(_strict_json(out / "demo_frames.json")) == 2
    calls["n"] = -100
    capsys.readouterr()
    assert predict(*args, "--out-dir", out) == 0
    assert "resuming: 2 frame(s) already done" in capsys.readouterr().err
    assert calls["n"] == -100 + 3  # frames 0 and 1 were not estimated again
    assert _strict_json(out / "demo_frames.json") == reference
    cap = cv2.VideoCapture(str(out / "demo_pose.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


# ---------------------------------------------------------------------------------------------
# 3. Output names: mirrored folders, unique names and ids
# ---------------------------------------------------------------------------------------------

def test_same_names_in_other_folders_or_cases_stay_apart(ckpt, tmp_path):
    _images(tmp_path / "in", ["dir1/x.png", "dir2/x.png"], size=(96, 80))
    _images(tmp_path / "in", ["dir2/y.png"], size=(64, 48))
    out = tmp_path / "out"
    assert predict(str(tmp_path / "in" / "*" / "*.png"), "--model", ckpt, "--detector",
                   "whole-image", "--out-dir", out) == 0
    ids = [r["image_id"] for r in _strict_json(out / "results.json")]
    assert ids == ["dir1/x.png", "dir2/x.png", "dir2/y.png"]
    assert cv2.imread(str(out / "dir1" / "x_pose.png")).shape == (96, 80, 3)
    assert cv2.imread(str(out / "dir2" / "x_pose.png")).shape == (96, 80, 3)
    assert cv2.imread(str(out / "dir2" / "y_pose.png")).shape == (64, 48, 3)

    folder = tmp_path / "cases"
    _images(folder, ["a.png"], size=(96, 80))
    _images(folder, ["a.PNG"], size=(64, 48))
    out2 = tmp_path / "out2"
    assert predict(folder, "--model", ckpt, "--detector", "whole-image", "--out-dir", out2) == 0
    ids = [r["image_id"] for r in _strict_json(out2 / "results.json")]
    assert sorted(ids) == ["a.PNG", "a.png"]
    drawn = sorted(p.name for p in out2.glob("*_pose*"))
    assert len(drawn) == 2 and len({n.casefold() for n in drawn}) == 2


# ---------------------------------------------------------------------------------------------
# 4. Non-finite predictions: valid JSON, reported
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [None, "float32", "bfloat16"])
def test_nan_model_gives_valid_json_and_a_warning(tmp_path, capsys, monkeypatch, dtype):
    """Under the default --backend auto too, whatever the CPU: the accuracy gate compares engines
    with the model's own float32 output, which is NaN here; the CPU decides which dtypes `auto`
    tries (bf16 only where it is fast), so the float32 and bf16 policies are both forced."""
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    model = tiny_simple_model()
    with torch.no_grad():
        list(model.keypoint_head.parameters())[-1].fill_(float("nan"))
    ckpt = vitpose.save_checkpoint(model, tmp_path / "nan.pth")
    _images(tmp_path / "imgs", ["a.png", "b.png"])
    out = tmp_path / "out"
    extra = ["--dtype", dtype] if dtype else []
    assert predict(tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image",
                   "--out-dir", out, *extra) == 1
    err = capsys.readouterr().err
    assert ("2 instance(s) in 2 image(s) had non-finite (NaN or infinite) keypoints or scores "
            "and were left out") in err
    assert _strict_json(out / "results.json") == []



def test_demo_with_a_nan_model_writes_valid_json_and_says_so(tmp_path, data_dir):
    from vitpose.demo import PoseDemo
    model = tiny_simple_model()
    with torch.no_grad():
        list(model.keypoint_head.parameters())[-1].fill_(float("nan"))
    path = vitpose.save_checkpoint(model, tmp_path / "nan.pth")
    demo = PoseDemo(str(path), work_dir=tmp_path / "work", dtype="float32", backend="torch")
    out = demo.predict_image(str(data_dir / "coco" / "000000000785.jpg"), None, "whole-image")
    assert not out.error, out.message
    assert "non-finite" in out.message and "left out" in out.message
    assert _strict_json(Path(out.json_path)) == []

# ---------------------------------------------------------------------------------------------
# 6. A damaged video: the frames that could not be decoded are reported
# ---------------------------------------------------------------------------------------------

def test_damaged_video_reports_undecodable_frames(ckpt, tmp_path, capsys):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    start, index = data.index(b"movi"), data.index(b"idx1")
    middle = start + (index - start) // 2
    data[middle:index - 8] = bytes(index - 8 - middle)  # the second half of the frames: zeros
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert predict(path, "--model", ckpt, "--detector", "whole-image", "--out-dir", out,
                   "--no-draw") == 1
    err = capsys.readouterr().err
    assert "of the 20 frames of" in err and "could not be decoded" in err
    frames = _strict_json(out / "clip_frames.json")
    assert 0 < len(frames) < 20


# ---------------------------------------------------------------------------------------------
# 10. One line instead of a traceback, nothing written that blocks a rerun
# ---------------------------------------------------------------------------------------------

def test_batch_size_zero(ckpt, tmp_path, capsys):
    (image,) = _images(tmp_path, ["a.png"])
    out = tmp_path / "out"
    args = [image, "--model", ckpt, "--detector", "whole-image", "--out-dir", out]
    assert predict(*args, "--batch-size", "0") == 2
    assert "--batch-size must be at least 1, got 0" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()
    assert predict(*args) == 0  # nothing blocks the rerun


def test_dataset_the_model_lacks(ckpt, tmp_path, capsys):
    (image,) = _images(tmp_path, ["a.png"])
    assert predict(image, "--model", ckpt, "--dataset", "ap10k", "--detector", "whole-image",
                   "--out-dir", tmp_path / "out") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "ap10k" in line and "coco" in line
    assert not (tmp_path / "out" / "results.json").exists()


def test_unwritable_out_dir(ckpt, tmp_path, capsys):
    (image,) = _images(tmp_path, ["a.png"])
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert predict(image, "--model", ckpt, "--detector", "whole-image",
                   "--out-dir", blocker / "out") == 2
    assert "cannot write to the output folder" in _one_error_line(capsys.readouterr().err)


def test_images_file_with_a_non_integer_id(ckpt, tmp_path, capsys):
    (image,) = _images(tmp_path, ["a.png"])
    images_file = tmp_path / "ann.json"
    images_file.write_text(json.dumps({"images": [{"id": "first", "file_name": "a.png"}]}))
    assert predict(image, "--model", ckpt, "--detector", "whole-image", "--images-file",
                   images_file, "--out-dir", tmp_path / "out") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'first'" in line and "integers" in line
    assert not (tmp_path / "out" / "results.json").exists()


def test_evaluate_out_in_a_missing_folder(data_dir, tmp_path, capsys):
    gt = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0} for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]
    (tmp_path / "r.json").write_text(json.dumps(results))
    out = tmp_path / "missing" / "dir" / "m.json"
    assert main(["evaluate", "--dataset", "coco", "--ann", str(data_dir / "coco" / "test_coco.json"),
                 "--results", str(tmp_path / "r.json"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == pytest.approx(1.0)
    capsys.readouterr()
    assert main(["evaluate", "--dataset", "coco", "--ann", str(data_dir / "coco" / "test_coco.json"),
                 "--results", str(tmp_path / "r.json"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in _one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------
# Issue 16: predict output is scored by evaluate; --version; a closed pipe; help texts
# ---------------------------------------------------------------------------------------------

def test_predict_folder_results_are_scored_by_evaluate(ckpt, data_dir, tmp_path, capsys):
    coco = data_dir / "coco"
    out = tmp_path / "out"
    assert predict(coco, "--model", ckpt, "--det-file", coco / "test_coco_det_AP_H_56.json",
                   "--det-thr", "0.9", "--no-draw", "--out-dir", out) == 0
    # without --images-file the det-file's ids come from the file names; drop that route:
    results = json.loads((out / "results.json").read_text())
    for r in results:
        r["image_id"] = f"{r['image_id']:012d}.jpg"
    (tmp_path / "names.json").write_text(json.dumps(results))
    capsys.readouterr()
    ann = str(coco / "test_coco.json")
    assert main(["evaluate", "--dataset", "coco", "--ann", ann, "--results",
                 str(tmp_path / "names.json"), "--json"]) == 0
    assert "AP" in json.loads(capsys.readouterr().out)
    results[0]["image_id"] = "holiday.jpg"
    (tmp_path / "other.json").write_text(json.dumps(results))
    assert main(["evaluate", "--dataset", "coco", "--ann", ann, "--results",
                 str(tmp_path / "other.json")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'holiday.jpg'" in line and "--images-file" in line


def test_whole_image_folder_run_is_scored_by_evaluate(ckpt, data_dir, tmp_path, capsys):
    """The plain folder run (file names as ids) meets `evaluate` without any extra option."""
    coco = data_dir / "coco"
    out = tmp_path / "out"
    assert predict(coco, "--model", ckpt, "--detector", "whole-image", "--no-draw",
                   "--out-dir", out) == 0
    assert {r["image_id"] for r in _strict_json(out / "results.json")} == \
        {p.name for p in coco.glob("*.jpg")}
    capsys.readouterr()
    assert main(["evaluate", "--dataset", "coco", "--ann", str(coco / "test_coco.json"),
                 "--results", str(out / "results.json"), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= {"AP", "AR"}


@pytest.mark.slow
def test_version_and_closed_pipe(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("vitpose ")
    # the reader goes away before the first line is written (`vitpose models --json | head`)
    proc = subprocess.Popen([sys.executable, "-m", "vitpose.cli", "models", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141


def test_predict_help_says_every_default():
    from vitpose.cli.main import build_parser
    parser = build_parser()
    predict_parser = parser._subparsers._group_actions[0].choices["predict"]
    by_flag = {opt: a for a in predict_parser._actions for opt in a.option_strings}
    for flag in ("--device", "--batch-size", "--kpt-thr", "--max-pixels", "--overwrite"):
        assert by_flag[flag].help, flag
    help_text = predict_parser.format_help()
    assert "drawn (default: 0.3)" in " ".join(help_text.split())
    assert "alias: none" in help_text  # --detector none is documented

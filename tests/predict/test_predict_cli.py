"""`vitpose predict` on images: COCO results on the real sample images, the Python API giving
the same numbers, and every kind of bad input (each reported clearly, with the right exit code).

The model is a tiny random ViTPose written with `vitpose.save_checkpoint` and read back by the
CLI's ``--model PATH`` (no download)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main
from vitpose.inference.detectors import load_coco_detections
from vitpose.inference.pipeline import PoseEstimator

ROOT = Path(__file__).resolve().parents[2]
COCO_IDS = {785, 40083, 196141, 197388}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    model = tiny_simple_model()
    return vitpose.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.pth")


def predict(*args: object) -> int:
    """``vitpose predict ARGS --device cpu`` in-process; returns the exit code."""
    return main(["predict", *map(str, args), "--device", "cpu"])


def _write_images(folder: Path, n: int, size=(96, 80)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# The real sample images with the paper's detections
# ---------------------------------------------------------------------------------------------

def test_coco_results_json_and_python_api(data_dir, ckpt, tmp_path, capsys):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = data_dir / "coco"
    det_file, images_file = coco / "test_coco_det_AP_H_56.json", coco / "test_coco.json"
    out = tmp_path / "out"
    # --backend torch: the engine of the Python API below (auto may pick another one, equal
    # within its accuracy gate but not to 1e-6)
    rc = predict(coco, "--model", ckpt, "--det-file", det_file, "--images-file", images_file,
                 "--out-dir", out, "--backend", "torch")
    assert rc == 0
    assert "4 image(s), 118 instance(s)" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert not (out / "results.json.partial.jsonl").exists()
    assert len(results) == 118  # every detection (no score threshold, no NMS by default)
    assert {r["image_id"] for r in results} == COCO_IDS  # the COCO ids, not file names
    for r in results:
        assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and len(r["bbox"]) == 4
        assert np.isfinite(r["keypoints"]).all() and 0 <= r["score"] <= 1
    for name in ("000000000785", "000000040083", "000000196141", "000000197388"):
        drawn = cv2.imread(str(out / f"{name}_pose.jpg"))
        assert drawn is not None and drawn.shape == cv2.imread(str(coco / f"{name}.jpg")).shape

    # pycocotools accepts the file and can evaluate it
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(images_file))
        dt = gt.loadRes(str(out / "results.json"))
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert len(dt.getAnnIds()) == 118 and np.isfinite(ev.stats).all()

    # The Python API, with the same checkpoint, boxes, engine and settings, gives the same
    # numbers (predict's default dtype "auto").
    from vitpose.inference.builder import build_estimator
    est = build_estimator(str(ckpt), dataset="coco", batch_size=16, device="cpu",
                          backend="torch")
    dets = load_coco_detections(det_file, images_file)
    ids = {im["file_name"]: im["id"] for im in json.loads(images_file.read_text())["images"]}
    names = sorted(ids)
    api = [e for res in est.predict_many((coco / n, dets[n], ids[n]) for n in names)
           for e in res.to_coco()]
    assert len(api) == len(results)
    for a, r in zip(api, results):
        assert a["image_id"] == r["image_id"] and a["bbox"] == r["bbox"]
        assert a["score"] == pytest.approx(r["score"], abs=1e-6)
        np.testing.assert_allclose(a["keypoints"], r["keypoints"], atol=1e-3, rtol=0)


def test_subprocess_exit_codes(data_dir, ckpt, tmp_path):
    """The real command line: exit 0 with results; a bad input: exit 2, one error line, no
    traceback, nothing written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    image = data_dir / "coco" / "000000000785.jpg"
    out = tmp_path / "out"
    ok = subprocess.run([sys.executable, "-m", "vitpose.cli", "predict", str(image), "--model",
                         str(ckpt), "--box", "277,45,225,333", "--out-dir", str(out),
                         "--device", "cpu"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads((out / "results.json").read_text())) == 1
    assert (out / "000000000785_pose.jpg").is_file()

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a JPEG at all")
    err = subprocess.run([sys.executable, "-m", "vitpose.cli", "predict", str(bad), "--model",
                          str(ckpt), "--out-dir", str(tmp_path / "bad_out")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert err.returncode == 2
    assert "Traceback" not in err.stderr
    assert err.stderr.strip().splitlines()[-1].startswith("error: cannot decode image file")
    assert not (tmp_path / "bad_out").exists()


def test_det_file_without_images_file_still_gives_coco_ids(data_dir, ckpt, tmp_path):
    coco = data_dir / "coco"
    out = tmp_path / "results.json"
    assert predict(coco / "000000000785.jpg", "--model", ckpt, "--det-file",
                   coco / "test_coco_det_AP_H_56.json", "--det-thr", "0.5", "--out", out,
                   "--no-draw") == 0
    results = json.loads(out.read_text())
    assert results and {r["image_id"] for r in results} == {785}
    assert all(r["bbox"] for r in results)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

def test_corrupt_file_in_folder_is_skipped_and_reported(ckpt, tmp_path, capsys):
    folder = tmp_path / "imgs"
    good = _write_images(folder, 2)
    (folder / "img1b_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "notes.txt").write_text("not an image, not even looked at")
    out = tmp_path / "out"
    rc = predict(folder, "--model", ckpt, "--detector", "whole-image", "--out-dir", out)
    captured = capsys.readouterr()
    assert rc == 1
    assert "1 of 3 file(s) could not be read and were skipped" in captured.err
    assert "img1b_broken.jpg" in captured.err
    assert "2 image(s), 2 instance(s)" in captured.out
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == [p.name for p in good]
    assert sorted(p.name for p in out.iterdir()) == ["img0_pose.png", "img1_pose.png",
                                                     "results.json"]


def test_single_bad_file_is_one_clear_error(ckpt, tmp_path, capsys):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    out = tmp_path / "out"
    rc = predict(bad, "--model", ckpt, "--out-dir", out)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == f"error: image file is empty: {bad}"
    assert not out.exists()  # failed before anything was written
    missing = tmp_path / "nope.jpg"
    assert predict(missing, "--model", ckpt, "--out-dir", out) == 2
    assert "not found" in capsys.readouterr().err


def test_gray_rgba_and_16bit_images(ckpt, tmp_path):
    """Grayscale, RGBA and 16-bit files are read as RGB uint8: a 16-bit copy (x257), an opaque
    RGBA copy and a grayscale file give exactly the results of their 8-bit RGB equivalents."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (130, 90, 3), dtype=np.uint8), (5, 5), 0)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(folder / "a_rgb.png"), bgr)
    cv2.imwrite(str(folder / "b_rgb16.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "c_rgba.png"), np.dstack([bgr, np.full(gray.shape, 255, np.uint8)]))
    cv2.imwrite(str(folder / "d_gray.png"), gray)
    cv2.imwrite(str(folder / "e_gray3.png"), np.dstack([gray] * 3))
    cv2.imwrite(str(folder / "f_gray16.png"), gray.astype(np.uint16) * 257)
    alpha = np.where(np.arange(90) < 45, 0, 255).astype(np.uint8)[None].repeat(130, 0)
    cv2.imwrite(str(folder / "g_rgba_half.png"), np.dstack([bgr, alpha]))
    out = tmp_path / "out"
    assert predict(folder, "--model", ckpt, "--detector", "whole-image", "--out-dir", out) == 0
    res = {r["image_id"]: r for r in json.loads((out / "results.json").read_text())}
    assert len(res) == 7
    for a, b in [("a_rgb", "b_rgb16"), ("a_rgb", "c_rgba"), ("e_gray3", "d_gray"),
                 ("e_gray3", "f_gray16")]:
        assert res[f"{a}.png"]["keypoints"] == res[f"{b}.png"]["keypoints"], (a, b)
    # transparent pixels are composited over black: not the same image as the opaque one
    assert res["g_rgba_half.png"]["keypoints"] != res["a_rgb.png"]["keypoints"]
    for name in res:
        drawn = cv2.imread(str(out / name.replace(".png", "_pose.png")), cv2.IMREAD_UNCHANGED)
        assert drawn.shape == (130, 90, 3) and drawn.dtype == np.uint8


def test_bad_boxes_are_clipped_or_dropped_with_warning(ckpt, tmp_path, caplog):
    _write_images(tmp_path / "imgs", 2, size=(120, 100))
    boxes = {
        "img0.png": [[10, 10, 50, 80, 0.9],      # fine
                     [10, 10, 0, 0, 1.0],        # empty (zero area)
                     [10, 10, -30, 40, 1.0],     # negative width
                     [500, 500, 20, 20, 1.0],    # outside the 100x120 image
                     [-20, 60, 60, 90, 0.7]],    # partly outside: clipped to the image
        "img1.png": [],                          # no detections
    }
    box_file = tmp_path / "boxes.json"
    box_file.write_text(json.dumps(boxes))
    out = tmp_path / "results.json"
    with caplog.at_level(logging.WARNING):
        rc = predict(tmp_path / "imgs", "--model", ckpt, "--boxes-json", box_file, "--out", out,
                     "--no-draw")
    assert rc == 0
    results = json.loads(out.read_text())
    assert [r["image_id"] for r in results] == ["img0.png", "img0.png"]
    assert results[0]["bbox"] == [10, 10, 50, 80]
    assert results[1]["bbox"] == [0, 60, 40, 60]  # clipped to x >= 0 and y <= 120
    assert ("dropped 2 box(es) for image img0.png with zero or negative width/height "
            "(index 1, 2)") in caplog.text
    assert "dropped 1 box(es) for image img0.png lying outside the 100x120 image (index 3)" \
        in caplog.text
    assert "clipped 1 box(es) for image img0.png" in caplog.text


def test_image_without_detections_gives_empty_list(ckpt, tmp_path, capsys):
    (image,) = _write_images(tmp_path / "imgs", 1)
    box_file = tmp_path / "boxes.json"
    box_file.write_text(json.dumps({image.name: []}))
    out = tmp_path / "out"
    assert predict(image, "--model", ckpt, "--boxes-json", box_file, "--out-dir", out) == 0
    assert json.loads((out / "results.json").read_text()) == []
    assert "1 image(s), 0 instance(s)" in capsys.readouterr().out
    assert cv2.imread(str(out / "img0_pose.png")) is not None  # drawn unchanged


def test_existing_output_is_kept_unless_overwrite(ckpt, tmp_path, capsys):
    (image,) = _write_images(tmp_path / "imgs", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("precious")
    args = [image, "--model", ckpt, "--detector", "whole-image", "--out-dir", out, "--no-draw"]
    assert predict(*args) == 2
    err = capsys.readouterr().err
    assert "output already exists" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == "precious"
    # drawn images count as outputs too
    (out / "results.json").unlink()
    (out / "img0_pose.png").write_bytes(b"old drawing")
    assert predict(*args[:-1]) == 2
    assert (out / "img0_pose.png").read_bytes() == b"old drawing"
    assert predict(*args[:-1], "--overwrite") == 0
    assert len(json.loads((out / "results.json").read_text())) == 1
    assert cv2.imread(str(out / "img0_pose.png")) is not None


def test_interrupted_run_keeps_partial_results(ckpt, tmp_path, monkeypatch, capsys):
    paths = _write_images(tmp_path / "imgs", 5)
    calls = {"n": 0}
    real_crops = PoseEstimator.crops

    def crops(self, image, boxes):  # Ctrl-C while the 3rd image is being prepared
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_crops(self, image, boxes)

    monkeypatch.setattr(PoseEstimator, "crops", crops)
    out = tmp_path / "out"
    rc = predict(tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image",
                 "--batch-size", "1", "--out-dir", out)
    assert rc == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 of 5 image(s)" in err and "rerun the same command" in err
    assert "\ninterrupted\n" not in err and not err.startswith("interrupted\n")  # said once
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == [p.name for p in paths[:2]]
    # the journal stays: it marks the run as resumable (issue 12 item 2)
    assert (out / "results.json.partial.jsonl").exists()
    drawn_before = {p.name: p.read_bytes() for p in out.glob("*_pose.png")}
    assert sorted(drawn_before) == ["img0_pose.png", "img1_pose.png"]

    # rerunning the same command continues: only the 3 missing images go through the model
    calls["n"] = -100
    assert predict(tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image",
                   "--batch-size", "1", "--out-dir", out) == 0
    assert calls["n"] == -100 + 3
    captured = capsys.readouterr()
    assert "resuming: 2 of 5 image(s) already done" in captured.err
    # the summary counts the whole run, the new part in brackets
    assert "5 image(s) (3 new, 2 from the interrupted run), 5 instance(s)" in captured.out
    final = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in final] == [p.name for p in paths]
    assert final[:2] == results  # kept, not recomputed
    assert not (out / "results.json.partial.jsonl").exists()
    assert {p.name: p.read_bytes() for p in out.glob("*_pose.png")
            if p.name in drawn_before} == drawn_before
    assert len(list(out.glob("*_pose.png"))) == 5

    # a complete run: rerunning is an error that names --overwrite; --overwrite starts afresh
    assert predict(tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image",
                   "--out-dir", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    calls["n"] = -100
    assert predict(tmp_path / "imgs", "--model", ckpt, "--detector", "whole-image",
                   "--batch-size", "1", "--out-dir", out, "--overwrite") == 0
    assert calls["n"] == -100 + 5
    assert json.loads((out / "results.json").read_text()) == final


def test_detector_fallback_to_whole_image(ckpt, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 90, 3), 127, np.uint8))  # HOG finds nobody here
    assert predict(str(blank), "--model", str(ckpt), "--detector", "hog", "--no-draw",
                   "--out", str(tmp_path / "none.json")) == 0
    assert json.loads((tmp_path / "none.json").read_text()) == []
    # nobody found: said once, at the end, with the option that helps
    err = capsys.readouterr().err
    assert err.count("found nobody") == 1
    assert "HOG detector found nobody in 1 of 1 image(s)" in err
    assert "--fallback whole-image" in err
    assert predict(str(blank), "--model", str(ckpt), "--detector", "hog", "--no-draw",
                   "--fallback", "whole-image", "--out", str(tmp_path / "whole.json")) == 0
    results = json.loads((tmp_path / "whole.json").read_text())
    assert len(results) == 1 and results[0]["bbox"] == [0.0, 0.0, 90.0, 120.0]
    err = capsys.readouterr().err
    assert "HOG detector found nobody in 1 of 1 image(s); the whole image was used" in err


def test_custom_keypoints_need_and_use_their_metadata(tmp_path, capsys):
    from vitpose.training.config import CONFIG_DIR
    meta_file = CONFIG_DIR / "datasets" / "custom_example.yaml"
    model = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2, num_heads=2,
                                num_keypoints=7, dataset="upper_body_7")
    ckpt = vitpose.save_checkpoint(model, tmp_path / "custom.pth")
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((96, 72, 3), 90, np.uint8))
    args = [str(image), "--model", str(ckpt), "--detector", "whole-image", "--no-draw"]
    assert predict(*args, "--out", str(tmp_path / "a.json")) == 2
    err = capsys.readouterr().err
    assert "--dataset-meta" in err and "Traceback" not in err
    assert predict(*args, "--dataset-meta", str(meta_file), "--out", str(tmp_path / "b.json")) == 0
    results = json.loads((tmp_path / "b.json").read_text())
    assert len(results) == 1 and len(results[0]["keypoints"]) == 7 * 3

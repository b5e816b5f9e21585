"""int8, the opt-in engine that states its cost: the certificate's measures (exact values on
made-up heatmaps), the engine and certificate written beside each other and logged once, the
CLI (`vitpose export --int8`, `vitpose bench --dtype int8`), and ``auto`` never choosing it."""

from __future__ import annotations

import importlib.util
import json
import logging

import cv2
import numpy as np
import pytest
import torch
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main
from vitpose.inference import engines as E
from vitpose.inference.engines import select_engine
from vitpose.inference.engines.int8 import (
    INT8_VARIANTS,
    certify,
    crops_from_images,
    int8_engine,
    load_int8,
    split_crops,
)

HAS_INT8 = all(importlib.util.find_spec(m) is not None for m in ("nncf", "openvino", "onnx"))
needs_int8 = pytest.mark.skipif(not HAS_INT8, reason="pip install 'vitpose[int8]'")
ASSET = "src/vitpose/assets/000000000785.jpg"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))


def _asset(repo_root):
    return repo_root / ASSET


@pytest.fixture
def repo_root(request):
    return request.config.rootpath


def _peaks(positions, h=64, w=48):
    """Heatmaps [N, K, h, w] with one peak per keypoint at (x, y)."""
    n, k = len(positions), len(positions[0])
    out = torch.zeros(n, k, h, w)
    for i, row in enumerate(positions):
        for j, (x, y) in enumerate(row):
            out[i, j, y, x] = 1.0
    return out


def test_certificate_values_on_known_heatmaps():
    ref = _peaks([[(10, 10), (20, 30)], [(5, 5), (40, 50)]])
    # crop 0: keypoint 0 moved one heatmap pixel right (4 crop px), keypoint 1 exact;
    # crop 1: keypoint 0 exact, keypoint 1 moved 3 right and 4 down (5 heatmap px = 20 crop px)
    out = _peaks([[(11, 10), (20, 30)], [(5, 5), (43, 54)]])
    cert = certify(lambda x: out, ref, torch.zeros(2, 3, 256, 192), (256, 192), variant="all",
                   description="d", engine="test/int8", runtime={"openvino_device": "CPU"},
                   cpu="cpu", calibration_crops=6)
    assert cert.argmax_same == 0.5
    assert cert.argmax_same_per_keypoint == [0.5, 0.5]
    assert cert.max_pixel_error == pytest.approx(20.0)
    assert cert.mean_pixel_error == pytest.approx((4.0 + 20.0) / 4)
    # box side 256 / 1.25 = 204.8 px: 5% = 10.24 px; the 20 px error is out
    assert cert.pck_005 == 0.75
    assert cert.held_out_crops == 2 and cert.calibration_crops == 6
    line = cert.summary()
    assert "same arg-max 50.0%" in line and "PCK@0.05 75.0%" in line and "20.0 px" in line
    assert "test/int8 on CPU" in line
    with pytest.raises(E.EngineError, match="not finite"):
        certify(lambda x: out, ref * float("nan"), torch.zeros(2, 3, 256, 192), (256, 192),
                variant="all", description="d", engine="e", runtime={}, cpu="c",
                calibration_crops=1)


def test_crops_of_the_users_images_and_the_held_out_split(repo_root):
    model = tiny_simple_model()
    x = crops_from_images(model, [_asset(repo_root)])
    assert x.shape == (8, 3, 256, 192)  # 4 scales, each followed by its mirror
    assert torch.equal(x[1::2], x[::2].flip(3))
    boxes = [np.array([[10, 10, 100, 200, 0.9]], np.float32)]
    assert crops_from_images(model, [_asset(repo_root)], boxes).shape[0] == 2
    calib, held = split_crops(x)
    assert len(held) == 2 and len(calib) == 6
    assert torch.equal(held[1], held[0].flip(2))  # a pair held out together
    for t in held:  # no held-out crop is a calibration crop or the mirror of one
        assert not any(torch.equal(t, c) or torch.equal(t, c.flip(2)) for c in calib)
    with pytest.raises(E.EngineError):
        split_crops(x[:1])


@needs_int8
def test_int8_engine_certificate_written_beside_and_logged_once(repo_root, caplog, tmp_path):
    model = tiny_simple_model()
    with caplog.at_level(logging.INFO, logger="vitpose"):
        engine = int8_engine(model, images=[_asset(repo_root)], variant="all")
        again = int8_engine(model, images=[_asset(repo_root)], variant="all")
    assert engine.label == again.label == "openvino/int8" and engine.dtype == torch.int8
    assert not engine.exact
    announced = [r for r in caplog.records if "int8 certificate (" in r.getMessage()]
    assert len(announced) == 1  # the second engine came from the cache, not announced again
    assert any("quantizing the model to int8" in r.getMessage() for r in caplog.records)
    folder = next((tmp_path / "cache" / "int8").iterdir())
    saved = json.loads((folder / "certificate.json").read_text())
    cert = engine.certificate
    assert saved == cert.as_dict() and saved["engine"] == "openvino/int8"
    assert saved["runtime"]["openvino_device"] == "CPU" and saved["runtime"]["openvino"]
    assert 0.0 <= saved["argmax_same"] <= 1.0 and 0.0 <= saved["pck_005"] <= 1.0
    assert len(saved["argmax_same_per_keypoint"]) == model.cfg.num_keypoints
    assert saved["held_out_crops"] == 2 and saved["calibration_crops"] == 6
    assert saved["calibration_source"] == "1 input image(s)"
    # the certificate matches a fresh measurement against our float32 on the same crops
    x = crops_from_images(model, [_asset(repo_root)])
    _, held = split_crops(x)
    with torch.no_grad():
        ref = model.head_for(0)(model.forward_features(held, 0))
    fresh = certify(engine, ref, held, (256, 192), variant="all", description="",
                    engine=engine.label, runtime={}, cpu="", calibration_crops=6)
    assert fresh.argmax_same == pytest.approx(cert.argmax_same)
    assert fresh.max_pixel_error == pytest.approx(cert.max_pixel_error)
    # heatmaps close to float32 (a tiny random model: loose bound)
    out = engine(held)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    loaded = load_int8(folder)
    assert loaded.certificate.as_dict() == saved and torch.allclose(loaded(held), out)
    # it runs what was certified: the LayerNorms kept float32 are recorded, and a folder
    # written before they were (no entry) runs without them
    from vitpose.inference.engines.openvino_engine import FLOAT32_OPS
    manifest = json.loads((folder / "int8.json").read_text())
    expected = list(FLOAT32_OPS) if engine.hint == torch.bfloat16 else []
    assert manifest["float32_ops"] == saved["runtime"]["float32_ops"] == expected
    assert loaded.float32_ops == expected
    del manifest["float32_ops"]
    (folder / "int8.json").write_text(json.dumps(manifest))
    assert load_int8(folder).float32_ops == []
    # the quantized trunk is marked in its own file: no marked copy beside it
    assert not [p.name for p in folder.iterdir() if ".f32-" in p.name]


@needs_int8
def test_auto_never_picks_int8_even_when_cached_and_fastest(repo_root, monkeypatch):
    model = tiny_simple_model()
    int8_engine(model, images=[_asset(repo_root)], variant="all")
    seen = []

    def fake_time(engines, x, rounds):
        seen.extend(engines)
        return dict.fromkeys(engines, 1.0)

    monkeypatch.setattr(E.auto, "_time_engines", fake_time)
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    for policy in ("auto", "float32", "bfloat16"):
        engine, choice = select_engine(model, dtype=policy, calibrate=True, use_cache=False)
        assert "int8" not in engine.label and "int8" not in choice.engine
        assert not any("int8" in m.engine for m in choice.measurements)
    assert seen and not any("int8" in s for s in seen)


@needs_int8
def test_cli_export_int8_prints_the_certificate_once(tmp_path, capsys, caplog):
    ckpt = vitpose.save_checkpoint(tiny_simple_model(), tmp_path / "m.pth")
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(calib / f"{i}.png"), rng.integers(0, 255, (120, 90, 3), np.uint8))
    out = tmp_path / "int8"
    with caplog.at_level(logging.INFO):
        assert main(["export", "--model", str(ckpt), "--int8", str(out), "--calib", str(calib),
                     "--int8-variant", "all"]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err + "\n".join(r.getMessage() for r in caplog.records)
    assert text.count("int8 certificate (all;") == 1
    assert f"int8 (all) -> {out}" in printed.out and "2 image(s) of" in printed.out
    assert (out / "certificate.json").is_file() and (out / "trunk-int8.xml").is_file()
    assert load_int8(out).label == "openvino/int8"
    assert main(["export", "--model", str(ckpt), "--int8", str(out)]) == 2  # exists
    assert main(["export", "--model", str(ckpt), "--calib", str(calib)]) == 2  # no --int8


def test_variants_are_documented():
    assert {"all", "mixed", "accuracy"} <= set(INT8_VARIANTS)
    assert all(desc for desc, _ in INT8_VARIANTS.values())

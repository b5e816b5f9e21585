"""How `vitpose predict` (and `engine_for`, the one place predict, the demo and `vitpose test`
build their engine) wires the engine choice: a one-image job runs the safe engine without
exporting or calibrating, ``--threads`` reaches the engine, ``--dtype int8`` is an opt-in with a
certificate, and ``auto`` calibrates only when the job's crops repay it (injected timings)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main
from vitpose.inference import builder
from vitpose.inference import engines as E
from vitpose.inference.engines import TorchEngine, cache_dir, resolve_dtype
from vitpose.inference.engines.base import DTYPE_NAMES

IMAGE = Path(vitpose.__file__).resolve().parent / "assets" / "000000000785.jpg"


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return vitpose.save_checkpoint(tiny_simple_model(), tmp_path_factory.mktemp("m") / "m.pth")


def predict(*args: object) -> int:
    return main(["predict", *map(str, args), "--device", "cpu"])


def _keypoints(results: Path) -> np.ndarray:
    return np.array([r["keypoints"] for r in json.loads(results.read_text())], np.float64)


def test_one_image_with_defaults_builds_nothing_and_matches_torch(ckpt, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image",
                       "--out-dir", tmp_path / "auto", "--no-draw") == 0
    engines = cache_dir() / "engines"
    assert not engines.exists() or not any(p.is_file() for p in engines.rglob("*"))
    decided = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine ")]
    plain = f"torch/{DTYPE_NAMES[resolve_dtype('auto', 'cpu')]}"  # bf16 where it is native
    assert len(decided) == 1 and decided[0].startswith(f"engine {plain}: ")
    assert "2 crops" in decided[0]  # the job's length reached the rule: one image, flip test
    torch_args = ["--backend", "torch"]  # the same path: the same keypoints
    assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image", *torch_args,
                   "--out-dir", tmp_path / "torch", "--no-draw") == 0
    a, b = _keypoints(tmp_path / "auto" / "results.json"), _keypoints(tmp_path / "torch" /
                                                                       "results.json")
    assert a.shape == b.shape and a.size and np.array_equal(a, b)


def test_threads_reach_the_engine(ckpt, tmp_path, monkeypatch):
    seen: list[tuple[int | None, int, dict]] = []
    real = builder.engine_for

    def spy(*args, **kwargs):
        engine, choice = real(*args, **kwargs)
        seen.append((kwargs.get("threads"), torch.get_num_threads(), engine.describe()))
        return engine, choice

    monkeypatch.setattr(builder, "engine_for", spy)
    torch.set_num_threads(2)
    assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image", "--threads", "1",
                   "--backend", "torch", "--out-dir", tmp_path / "o", "--no-draw") == 0
    assert len(seen) == 1
    threads, inside, facts = seen[0]
    assert threads == 1 and inside == 1 and facts.get("threads", 1) == 1
    # without --threads: the machine's free threads (`default_threads`), also a whole number
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("vitpose.inference.engines.threads.default_threads", lambda: 1)
    seen.clear()
    assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image", "--backend", "torch",
                   "--out-dir", tmp_path / "o2", "--no-draw") == 0
    assert seen[0][0] == 1
    # OMP_NUM_THREADS (set by torchrun for each process) keeps torch's own count
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    seen.clear()
    assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image", "--backend", "torch",
                   "--out-dir", tmp_path / "o3", "--no-draw") == 0
    assert seen[0][0] == 2


def test_threads_must_be_positive(ckpt, tmp_path, capsys):
    assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image", "--threads", "0",
                   "--out-dir", tmp_path / "o") == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_int8_is_an_opt_in_with_a_certificate(ckpt, tmp_path, caplog, capsys):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    with caplog.at_level(logging.INFO):
        rc = predict(IMAGE, "--model", ckpt, "--detector", "whole-image", "--dtype", "int8",
                     "--out-dir", tmp_path / "o", "--no-draw", "--threads", "1")
    assert rc == 0, capsys.readouterr().err
    certificates = list((cache_dir() / "int8").rglob("certificate.json"))
    assert len(certificates) == 1
    cert = json.loads(certificates[0].read_text())
    assert 0.0 <= cert["argmax_same"] <= 1.0 and "pck_005" in cert
    said = [r.getMessage() for r in caplog.records if "int8 certificate" in r.getMessage()]
    assert len(said) == 1 and str(certificates[0]) in said[0]
    assert np.isfinite(_keypoints(tmp_path / "o" / "results.json")).all()


def test_int8_refuses_other_backends(ckpt, tmp_path, capsys):
    assert predict(IMAGE, "--model", ckpt, "--detector", "whole-image", "--dtype", "int8",
                   "--backend", "torch", "--out-dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "int8" in err[0]


def test_engine_for_calibrates_only_when_the_crops_repay_it(monkeypatch, caplog):
    """The rule with injected speeds: a short job runs the safe engine untimed, a long one
    calibrates during the job (and never picks int8), calibrate=False never calibrates."""
    gated: list[list[str]] = []
    real_gate = E.auto._gate

    def gate(model, dataset, device, cands, *a, **k):
        gated.append([c.label for c in cands])
        return real_gate(model, dataset, device, cands, *a, **k)

    monkeypatch.setattr(E.auto, "_gate", gate)
    monkeypatch.setattr(E.auto, "_scores", lambda samples: {
        k: 1.0 if k == "torch/float32" else 0.5 for k in samples})
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    monkeypatch.setattr(E.auto, "available_backends", lambda: ["torch"])
    model = tiny_simple_model().eval()
    engine, choice = builder.engine_for(model, 0, "auto", "bfloat16", "cpu", crops=2,
                                        calibrate=None)
    assert isinstance(engine, TorchEngine)
    assert choice.engine == "torch/bfloat16" and "short job" in choice.reason
    engine, choice = builder.engine_for(tiny_simple_model(seed=1).eval(), 0, "auto", "bfloat16",
                                        "cpu", crops=10 ** 9, calibrate=False)
    assert choice.engine == "torch/bfloat16" and "turned off" in choice.reason
    model = tiny_simple_model(seed=2).eval()
    engine, choice = builder.engine_for(model, 0, "auto", "bfloat16", "cpu", crops=10 ** 9,
                                        calibrate=None)
    assert not gated  # nothing before the job's first call
    x = torch.randn(2, 3, *model.input_size)
    for _ in range(12):
        engine(x)
    assert gated and choice.engine == engine.label == "torch/bfloat16"
    assert "int8" not in choice.engine and all("int8" not in t for ts in gated for t in ts)


@pytest.mark.parametrize("content", ["[" * 100000,
                                     json.dumps({"images": [{"id": 1, "file_name": "a.jpg"},
                                                            {"id": 1, "file_name": "b.jpg"}]})])
def test_a_bad_images_file_is_one_line(ckpt, tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert predict(IMAGE, "--model", ckpt, "--box", "0,0,50,80", "--images-file", bad,
                   "--out-dir", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json" in err[0]


def test_demo_takes_threads_and_int8(ckpt, tmp_path):
    from vitpose.cli.main import build_parser
    from vitpose.demo.app import PoseDemo
    args = build_parser().parse_args(["demo", "--threads", "1", "--dtype", "int8"])
    assert args.threads == 1 and args.dtype == "int8"
    args = build_parser().parse_args(["predict", "x.jpg", "--dtype", "int8", "--calib", "d",
                                      "--int8-variant", "mixed"])
    assert (args.calib, args.int8_variant) == ("d", "mixed")
    demo = PoseDemo(str(ckpt), work_dir=tmp_path, threads=1, backend="torch")
    assert demo.options().threads == 1
    torch.set_num_threads(2)
    demo.estimator()
    assert torch.get_num_threads() == 1


def test_int8_calibrates_on_the_jobs_own_images_and_boxes(ckpt, tmp_path, monkeypatch):
    """What `int8_engine` is given (spied; no quantization): the job's images at its fixed
    boxes; with --calib the folder instead; the variant asked for."""
    asked: list[dict] = []

    def spy(net, dataset, **kw):
        asked.append(kw)
        return TorchEngine(net, dataset, torch.float32)

    monkeypatch.setattr(E, "int8_engine", spy)
    assert predict(IMAGE, "--model", ckpt, "--box", "10,20,100,200", "--dtype", "int8",
                   "--int8-variant", "all", "--out-dir", tmp_path / "o", "--no-draw") == 0
    kw = asked[-1]
    assert [Path(p) for p in kw["images"]] == [IMAGE] and kw["calib"] is None
    assert np.array_equal(kw["boxes"][0], [[10, 20, 100, 200]]) and kw["variant"] == "all"
    calib = tmp_path / "calib"
    calib.mkdir()
    assert predict(IMAGE, "--model", ckpt, "--box", "10,20,100,200", "--dtype", "int8",
                   "--calib", calib, "--out-dir", tmp_path / "o2", "--no-draw") == 0
    kw = asked[-1]
    assert kw["images"] is None and kw["boxes"] is None and kw["calib"] == str(calib)


def test_int8_on_a_video_calibrates_on_its_frames(ckpt, tmp_path, monkeypatch):
    """A video file with --dtype int8: the frames it calibrates on are the video's own, one
    per second (spied; no quantization); with --calib, the folder."""
    import cv2
    asked: list[dict] = []

    def spy(net, dataset, **kw):
        asked.append(kw)
        return TorchEngine(net, dataset, torch.float32)

    monkeypatch.setattr(E, "int8_engine", spy)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for i in range(23):  # 4.6 s at 5 fps: frames 0, 5, 10, 15, 20 are one second apart
        writer.write(np.full((64, 96, 3), 10 * i, np.uint8))
    writer.release()
    assert predict(video, "--model", ckpt, "--detector", "whole-image", "--dtype", "int8",
                   "--out-dir", tmp_path / "o", "--no-draw") == 0
    frames = asked[-1]["images"]
    assert len(frames) == 5 and all(f.shape == (64, 96, 3) for f in frames)
    assert [round(float(f.mean()) / 10) for f in frames] == [0, 5, 10, 15, 20]
    assert asked[-1]["calib"] is None
    calib = tmp_path / "calib"
    calib.mkdir()
    assert predict(video, "--model", ckpt, "--detector", "whole-image", "--dtype", "int8",
                   "--calib", calib, "--out-dir", tmp_path / "o2", "--no-draw") == 0
    assert asked[-1]["images"] is None and asked[-1]["calib"] == str(calib)
    # the Python front door calibrates on the same frames, and on a folder's images
    frames = list(vitpose.Predictor(ckpt, dtype="int8", detector="whole-image",
                                    device="cpu")(video))
    assert len(frames) == 23
    assert [round(float(f.mean()) / 10) for f in asked[-1]["images"]] == [0, 5, 10, 15, 20]
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(IMAGE.read_bytes())
    list(vitpose.Predictor(ckpt, dtype="int8", box="10,20,100,200", device="cpu")(folder))
    assert [Path(p).name for p in asked[-1]["images"]] == ["a.jpg"]
    assert np.array_equal(asked[-1]["boxes"][0], [[10, 20, 100, 200]])


def test_a_folder_job_calibrates_during_the_job_and_the_next_job_starts_on_its_choice(
        ckpt, tmp_path, monkeypatch, caplog):
    """`vitpose predict FOLDER` with --backend auto: the first image on the safe engine, the
    engines built and gated before the second, the chosen one (injected speeds) running the
    rest; every image has its poses; a second run builds the remembered engine at once."""
    import cv2
    folder = tmp_path / "in"
    folder.mkdir()
    image = cv2.imread(str(IMAGE))[::4, ::4]
    for i in range(60):  # 60 one-box images, flip test: 120 crops, enough for 2 torch engines
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), image)
    monkeypatch.setattr(E.auto, "available_backends", lambda: ["torch"])
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    monkeypatch.setattr(E.auto, "_scores", lambda samples: {
        k: 1.0 if k == "torch/float32" else 0.5 for k in samples})
    with caplog.at_level(logging.INFO):
        assert predict(folder, "--model", ckpt, "--box", "5,5,100,90", "--dtype", "bfloat16",
                       "--out-dir", tmp_path / "o1", "--no-draw") == 0
    said = [r.getMessage() for r in caplog.records]
    first = [m for m in said if m.startswith("engine torch/float32 first: a long job (120 crops")]
    chosen = [m for m in said if m.startswith("engine torch/bfloat16: ")]
    assert len(first) == 1 and len(chosen) == 1 and "timed on" in chosen[0], said
    assert len(json.loads((tmp_path / "o1" / "results.json").read_text())) == 60
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert predict(folder, "--model", ckpt, "--box", "5,5,100,90", "--dtype", "bfloat16",
                       "--out-dir", tmp_path / "o2", "--no-draw") == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine ")]
    assert len(said) == 1 and said[0].startswith("engine torch/bfloat16 (remembered in ")
    assert len(json.loads((tmp_path / "o2" / "results.json").read_text())) == 60

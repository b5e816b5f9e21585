"""`vitpose bench`: a smoke run on a tiny model (JSON and chart written, every section present),
plus the measurement helpers. No timing is asserted: speed is measured by hand (see
docs/PERFORMANCE.md)."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch

import vitpose
from vitpose.benchmark import (
    BenchConfig,
    Sample,
    StageClock,
    chart_points,
    coco_ap_of,
    draw_chart,
    format_report,
    largest_batch,
    matmul_peak_gflops,
    model_flops,
    peak_rss_mb,
    pipeline_end_to_end,
    run_with_peak_rss,
    time_interleaved,
)
from vitpose.cli.main import main
from vitpose.inference.pipeline import PoseEstimator

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and \
    importlib.util.find_spec("onnx") is not None
HAS_HF = importlib.util.find_spec("transformers") is not None
HAS_OV = importlib.util.find_spec("openvino") is not None and \
    importlib.util.find_spec("onnx") is not None


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    model = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=1, num_heads=2)
    return vitpose.save_checkpoint(model.eval(), tmp_path_factory.mktemp("bench") / "tiny.pth")


@pytest.mark.slow
def test_bench_smoke(tmp_path, tiny_ckpt, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    coco = data_dir / "coco"
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_ckpt), "--device", "cpu",
            "--dtype", "float32", "bfloat16", "--batch-size", "1", "2", "--rounds", "1",
            "--warmup", "0", "--accuracy-crops", "2", "--no-peak",
            "--images", str(coco / "000000000785.jpg"),
            "--det-file", str(coco / "test_coco_det_AP_H_56.json"),
            "--images-file", str(coco / "test_coco.json"), "--det-thr", "0.5",
            "--out-dir", str(out)]
    backends = ["auto", "torch"] + (["onnxruntime"] if HAS_ORT else []) + \
        (["openvino"] if HAS_OV else [])
    args += ["--backend", *backends]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "crops/s" in printed and "end to end" in printed
    assert "auto (float32):" in printed and "fastest engine that passes" in printed
    report = json.loads((out / "bench.json").read_text())
    (entry,) = report["models"]
    assert entry["gflop_per_crop"] > 0 and entry["coco_ap_readme"] is None
    labels = {(r["impl"], r["backend"], r["dtype"], r["batch_size"]) for r in entry["runs"]}
    for b in (1, 2):
        assert ("vitpose", "torch", "float32", b) in labels
        assert ("vitpose", "torch", "bfloat16", b) in labels
        if HAS_ORT:
            assert ("vitpose", "onnxruntime", "float32", b) in labels
        if HAS_HF:
            assert ("transformers", "torch", "float32", b) in labels
        if HAS_OV:
            assert ("vitpose", "openvino", "bfloat16", b) in labels
            assert ("peer", "openvino", "bfloat16", b) in labels  # OpenVINO's defaults
        autos = {r["policy"]: r for r in entry["runs"] if r["backend"] == "auto"
                 and r["batch_size"] == b}
        assert set(autos) == {"float32", "bfloat16"}
        assert autos["float32"]["dtype"] == "float32"
        assert autos["float32"]["rel_l2_vs_fp32"] <= 1e-5  # the exact path stays exact
    choices = {c["policy"]: c for c in entry["auto_choices"]}
    assert choices["float32"]["engine"] == autos["float32"]["engine"]
    assert all(m["accepted"] == (m["note"] == "") for m in choices["bfloat16"]["measurements"])
    if HAS_OV or HAS_HF:
        assert all(r["vs_fastest_peer"] > 0 for r in entry["runs"])
    for r in entry["runs"]:
        assert r["items_per_s"] > 0 and r["calls"] == 1
        if r["dtype"] == "float32":
            assert r["rel_l2_vs_fp32"] < 1e-4
    e2e = {(r["impl"], r["backend"], r["dtype"]): r for r in entry["end_to_end"]}
    ours = e2e[("vitpose", "torch", "float32")]
    assert ours["images"] == 1 and ours["instances"] > 0
    assert {"read", "crop", "model", "decode", "postprocess"} <= set(ours["stages_s"])
    if HAS_HF:
        assert e2e[("transformers", "torch", "float32")]["instances"] == ours["instances"]
    mem = entry["predict_memory"]
    assert [m["dtype"] for m in mem] == ["float32", "bfloat16"]
    assert all(m["exit_code"] == 0 and m["peak_rss_mb"] > 0 for m in mem)
    first = entry["first_result"]
    assert [f["run"] for f in first] == ["torch", "auto, cold cache", "auto, warm cache"]
    assert all(f["exit_code"] == 0 and f["seconds"] > 0 for f in first)
    assert entry["summary"]["first_result_warm_vs_torch"] > 0
    assert entry["summary"]["batch_1"]["exact_rel_l2_vs_fp32"] <= 1e-5
    chart = cv2.imread(str(out / "throughput_vs_ap.png"))
    assert chart is not None and chart.shape[2] == 3


def test_bench_rejects_bad_arguments(tiny_ckpt):
    assert main(["bench", "--model", str(tiny_ckpt), "x", "--weights", "w.pth"]) == 2
    assert main(["bench", "--model", str(tiny_ckpt), "--det-file", "d.json"]) == 2


def test_time_interleaved_counts_rounds():
    calls = []
    t = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                         items=4, warmup=1, rounds=3, settle=0)
    assert len(t["a"].seconds) == len(t["b"].seconds) == 3
    assert calls[:2] == ["a", "b"] and calls.count("a") == 4  # warm-up + 3 rounds
    assert calls[4:6] == ["b", "a"]  # the order rotates each round
    assert t["a"].rate > 0 and t["a"].as_dict()["items_per_call"] == 4


def test_model_flops_and_readme_ap():
    # ViTPose-B at 256x192: ~33 GFLOP in the linear layers + attention and head (meta device)
    gflop = model_flops(vitpose.build_model("vitpose-b-simple")) / 1e9
    assert 33 < gflop < 37
    plus = vitpose.build_model("vitpose-plus-b")
    assert model_flops(plus, "ap10k") == pytest.approx(model_flops(plus, 0), rel=0.01)
    assert coco_ap_of("vitpose-b-simple") == 75.5 and coco_ap_of("vitpose_h") == 79.1
    assert coco_ap_of("nonsense") is None


def test_peak_rss_helpers(tmp_path):
    assert peak_rss_mb() > 10
    code, peak, text = run_with_peak_rss("vitpose.cli", ["bench", "--help"])
    assert code == 0 and "bench" in text and 10 < peak < 2000
    code, _, text = run_with_peak_rss("vitpose.cli", ["no-such-command"])
    assert code == 2 and "invalid choice" in text


def test_stage_clock_and_pipeline_stages(tmp_path):
    clock = StageClock()
    with clock("a"):
        pass
    clock.wrap("a", lambda: None)()
    assert set(clock.seconds) == {"a"}
    model = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=1, num_heads=2).eval()
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (120, 90, 3), np.uint8))
    boxes = np.array([[5, 5, 60, 100, 0.9], [10, 20, 40, 50, 0.8]], np.float32)
    rec = pipeline_end_to_end(PoseEstimator(model), [Sample(path, boxes, (120, 90))])
    assert rec["instances"] == 2 and rec["images"] == 1
    assert rec["stages_s"]["model"] > 0 and 0 <= rec["non_model_fraction"] <= 1


def test_chart_and_table_from_a_report(tmp_path):
    run = {"impl": "vitpose", "backend": "torch", "dtype": "bfloat16", "compile": False,
           "batch_size": 1, "items_per_s": 20.0, "median_ms": 50.0, "gflop_per_s": 700.0,
           "fraction_of_matmul_peak": 0.25, "vs_transformers_fp32": 3.0,
           "vs_transformers_same_dtype": 1.8, "rel_l2_vs_fp32": 5e-3, "argmax_same": 0.99}
    models = [{"model": v, "variant": v, "params_M": 90.0, "gflop_per_crop": 35.0,
               "dataset": "coco", "weights": "random", "coco_ap_readme": coco_ap_of(v),
               "paper_fps_a100_batch64": fps, "runs": [dict(run, items_per_s=r)],
               "end_to_end": [], "predict_memory": [], "notes": [], "summary": {}}
              for v, fps, r in (("vitpose-b-simple", 944.0, 20.0),
                                ("vitpose-l-simple", 411.0, 7.0))]
    report = {"system": {"cpu": "test", "cpu_count": 2, "torch_threads": 2, "torch": "x"},
              "matmul_peak_gflops": {"float32": 300.0}, "models": models}
    points = chart_points(report)
    assert {p["series"] for p in points} == {"vitpose torch bfloat16", "paper: A100, batch 64"}
    path = draw_chart(report, tmp_path / "c.png")
    img = cv2.imread(str(path))
    assert img.shape == (640, 1000, 3) and (img < 250).any()
    assert "vitpose/torch/bfloat16" in format_report(report)


def test_matmul_peak_runs():
    assert matmul_peak_gflops(torch.float32, sizes=(64,), seconds=0.0) > 0


def test_batch_64_is_one_model_call_on_cuda():
    """Each run at batch b must be one call of b crops: the estimators' chunk size covers the
    paper's batch 64, which `vitpose bench` adds on CUDA devices."""
    cfg = BenchConfig(batch_sizes=[1, 8], e2e_batch_size=16)
    assert largest_batch(cfg, torch.device("cpu")) == 16
    assert largest_batch(cfg, torch.device("cuda")) == 64  # no GPU needed: only the type
    assert largest_batch(BenchConfig(batch_sizes=[128]), torch.device("cuda")) == 128


@pytest.mark.skipif(not HAS_HF, reason="needs transformers")
def test_bench_detector_ms_per_frame_on_each_engine(tmp_path, capsys, monkeypatch):
    """`vitpose bench --detector`: every available detector engine timed on a 640x640 frame
    (a tiny D-FINE config here, random weights, no download), auto's engine marked."""
    import transformers

    from vitpose.inference import detectors as det

    def tiny_config(name):
        assert name == "dfine-n"
        labels = {0: "person", 1: "dog"}
        backbone = dict(
            model_type="hgnet_v2", stem_channels=[3, 8, 8], hidden_sizes=[16, 32, 64, 128],
            stage_in_channels=[8, 16, 32, 64], stage_mid_channels=[8, 16, 32, 64],
            stage_out_channels=[16, 32, 64, 128], stage_num_blocks=[1, 1, 1, 1],
            stage_downsample=[False, True, True, True],
            stage_light_block=[False, False, True, True], stage_kernel_size=[3, 3, 5, 5],
            stage_numb_of_layers=[2, 2, 2, 2], out_indices=[3, 4],
            use_learnable_affine_block=True, layer_type="basic", embedding_size=8)
        return transformers.DFineConfig(
            backbone_config=backbone, num_labels=2, num_feature_levels=2, encoder_ffn_dim=32,
            encode_proj_layers=[1], d_model=32, encoder_hidden_dim=32, decoder_ffn_dim=32,
            encoder_in_channels=[64, 128], decoder_n_points=[2, 2], decoder_in_channels=[32, 32],
            feat_strides=[16, 32], depth_mult=0.5, decoder_layers=2, hidden_expansion=0.34,
            num_queries=20, encoder_attention_heads=2, decoder_attention_heads=2,
            id2label=labels, label2id={v: k for k, v in labels.items()})

    monkeypatch.setattr(det.detr, "detector_config", tiny_config)
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert main(["bench", "--detector", "dfine-n", "--device", "cpu", "--no-peak",
                 "--rounds", "2", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "bench.json").read_text())
    assert report["models"] == []  # only the detector was asked for
    rows = {r["engine"]: r for r in report["detectors"]}
    assert set(rows) == set(det.available_detector_engines("cpu"))
    for r in rows.values():
        assert r["detector"] == "dfine-n" and r["input_hw"] == [640, 640]
        assert r["calls"] == 2 and r["ms_per_frame"] > 0
    auto = [e for e, r in rows.items() if r["auto"]]
    order = det.detector_engine_order("auto", True, torch.device("cpu"))
    timed = {e: rows[e]["ms_per_frame"] for e in order}
    assert auto == [det.choose_detector_engine(timed, order) if timed else "torch"]
    assert "detector (random weights)" in printed and "<- --det-engine auto" in printed
    assert "640x640" in printed


@pytest.mark.skipif(not (HAS_OV and importlib.util.find_spec("nncf") is not None),
                    reason="pip install 'vitpose[int8]'")
def test_bench_int8_reports_speed_and_certificate_and_auto_ignores_it(tmp_path, tiny_ckpt,
                                                                     capsys, monkeypatch):
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert main(["bench", "--model", str(tiny_ckpt), "--device", "cpu", "--dtype", "float32",
                 "int8", "--int8-variant", "all", "--backend", "auto", "torch", "--peers",
                 "--batch-size", "2", "--rounds", "1", "--warmup", "0", "--accuracy-crops",
                 "2", "--no-peak", "--no-transformers", "--no-memory", "--no-first-result",
                 "--out-dir", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    (entry,) = report["models"]
    (cert,) = entry["int8"]
    assert cert["variant"] == "all" and cert["engine"] == "openvino/int8"
    assert 0.0 <= cert["argmax_same"] <= 1.0 and cert["held_out_crops"] >= 2
    assert cert["calibrated_on"] == "the bundled sample image"
    rows = {(r["backend"], r["dtype"]) for r in entry["runs"]}
    assert ("openvino", "int8") in rows and ("torch", "float32") in rows
    assert [c["policy"] for c in entry["auto_choices"]] == ["float32"]  # not int8
    assert all("int8" not in c["engine"] for c in entry["auto_choices"])


def test_bench_auto_told_a_short_job_does_not_calibrate(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert main(["bench", "--model", str(tiny_ckpt), "--device", "cpu", "--dtype", "float32",
                 "--backend", "auto", "--auto-crops", "1", "--peers", "--batch-size", "1",
                 "--rounds", "1", "--warmup", "0", "--accuracy-crops", "2", "--no-peak",
                 "--no-transformers", "--no-memory", "--no-first-result",
                 "--out-dir", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert 1 <= report["system"]["default_threads"] <= report["system"]["usable_cpus"]
    (entry,) = report["models"]
    (choice,) = entry["auto_choices"]
    assert choice["engine"] == "torch/float32" and not choice["measurements"]
    assert "short job" in choice["reason"] or "nothing to calibrate" in choice["reason"]


def test_each_int8_variant_is_its_own_row():
    """Rows are timed and reported by label: int8 variants must not share one (they did: the
    last variant's timing was reported for all)."""
    from vitpose.benchmark.report import row_label
    rows = [{"impl": "vitpose", "backend": "openvino", "dtype": "int8", "compile": False,
             "policy": f"int8-{v}", "engine": "openvino/int8"} for v in ("all", "mixed")]
    rows.append({"impl": "vitpose", "backend": "openvino", "dtype": "bfloat16", "compile": False})
    labels = [row_label(r) for r in rows]
    assert labels == ["vitpose/openvino/int8-all", "vitpose/openvino/int8-mixed",
                      "vitpose/openvino/bfloat16"]

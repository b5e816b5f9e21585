"""Inference engines: parity of every engine with our eager float32, the `PoseEstimator` hook,
``--backend auto`` (choice with injected timings, accuracy gate, cache) and the pieces that
need a GPU or a missing runtime, tested without them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vitpose
from vitpose.inference import engines as E
from vitpose.inference.builder import build_estimator, estimator_from_file
from vitpose.inference.engines import (
    EngineError,
    OnnxRuntimeEngine,
    OpenVinoEngine,
    TorchEngine,
    argmax_agreement,
    build_engine,
    cache_dir,
    candidates_for,
    rel_l2,
    select_engine,
)
from vitpose.inference.engines.onnxruntime_engine import providers_for
from vitpose.inference.pipeline import PoseEstimator, TestSettings

HAS_ORT = importlib.util.find_spec("onnx") is not None and \
    importlib.util.find_spec("onnxruntime") is not None
HAS_OV = importlib.util.find_spec("onnx") is not None and \
    importlib.util.find_spec("openvino") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnx / onnxruntime are not installed "
                                                   "(pip install 'vitpose[onnx]')")
needs_ov = pytest.mark.skipif(not HAS_OV, reason="onnx / openvino are not installed "
                                                 "(pip install 'vitpose[openvino]')")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))


def _tiny(name: str = "vitpose-b-simple", seed: int = 0) -> vitpose.ViTPose:
    model = vitpose.build_model(name, embed_dim=32, depth=2, num_heads=2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # non-trivial weights (the default head init is ~0)
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + (1.0 if p.ndim == 1 and
                                                                 p.shape[0] == 32 else 0.0))
    return model.eval()


def _x(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 256, 192, generator=torch.Generator().manual_seed(seed))


def _ref(model: vitpose.ViTPose, x: torch.Tensor, dataset: int | str = 0) -> torch.Tensor:
    with torch.no_grad():
        return model.head_for(dataset)(model.forward_features(x, dataset))


# ---------------------------------------------------------------------------------------------
# parity of each engine
# ---------------------------------------------------------------------------------------------

def test_torch_engine_float32_is_the_model_and_bf16_is_close():
    model = _tiny()
    x = _x()
    fp32 = TorchEngine(model)
    assert fp32.label == "torch/float32" and fp32.exact and fp32.model is model
    assert torch.equal(fp32(x), _ref(model, x))
    bf16 = TorchEngine(model, dtype=torch.bfloat16, prepare=True)
    assert bf16.label == "torch/bfloat16" and bf16.model is not model  # prepared on a copy
    assert next(model.parameters()).dtype == torch.float32
    assert rel_l2(bf16(x), _ref(model, x)) < 2e-2
    with pytest.raises(EngineError, match="prepare"):
        TorchEngine(model, compile=True)


@needs_ort
@pytest.mark.parametrize("name,dataset", [("vitpose-b-simple", None), ("vitpose-plus-b", "ap10k")])
def test_onnxruntime_engine_is_exact(name, dataset):
    model = _tiny(name)
    engine = build_engine("onnxruntime", model, dataset, "float32")
    assert isinstance(engine, OnnxRuntimeEngine) and engine.label == "onnxruntime/float32"
    assert engine.providers == ["CPUExecutionProvider"]
    for n in (1, 4):  # dynamic batch
        x = _x(n)
        assert rel_l2(engine(x), _ref(model, x, dataset or 0)) <= E.EXACT_REL_L2
    with pytest.raises(EngineError, match="float32"):
        build_engine("onnxruntime", model, dataset, "bfloat16")


@needs_ov
def test_openvino_engine_float32_is_exact_and_bf16_close(tmp_path):
    model = _tiny()
    x = _x()
    fp32 = build_engine("openvino", model, None, "float32")
    assert isinstance(fp32, OpenVinoEngine) and fp32.label == "openvino/float32"
    assert rel_l2(fp32(x), _ref(model, x)) <= E.EXACT_REL_L2
    assert fp32.properties["PERFORMANCE_HINT"] == "LATENCY"
    assert (cache_dir() / "openvino").is_dir()  # the compiled-model cache
    assert any((cache_dir() / "graphs").glob("*.onnx"))  # the export is cached too
    bf16 = build_engine("openvino", model, None, "bfloat16")
    assert bf16.label == "openvino/bfloat16"
    assert rel_l2(bf16(x), _ref(model, x)) < 5e-2
    peer = OpenVinoEngine(fp32.path, "float32", tuned=False)  # OpenVINO's defaults (bench peer)
    assert peer.properties == {"INFERENCE_PRECISION_HINT": "f32"}
    assert rel_l2(peer(x), _ref(model, x)) <= E.EXACT_REL_L2
    with pytest.raises(EngineError, match="does not exist"):
        OpenVinoEngine(tmp_path / "missing.onnx")


@needs_ov
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_openvino_split_calls_equal_one_request(dtype):
    """Calls of several rows run split across two streams; each row is computed on its own, so
    the heatmaps are those of one request over the whole call, whatever the split (to float32
    rounding; bf16 kernels may differ with the batch size on some CPUs, hence its bound)."""
    model = _tiny()
    tol = E.EXACT_REL_L2 if dtype == "float32" else 1e-2
    path = E.onnx_file_for(model)
    one = OpenVinoEngine(path, dtype, streams=1)
    two = OpenVinoEngine(path, dtype, streams=2)
    assert one.streams == 1 and two.streams == 2 and two.describe()["streams"] == 2
    # only the model of a job's calls is compiled up front (crop and mirror: split); the
    # latency model of one-row calls on the first such call
    assert list(one._chains) == [1] and list(two._chains) == [2]
    assert OpenVinoEngine(path, dtype, tuned=False, streams=2).streams == 1  # the peer: defaults
    for n in (1, 2, 3, 5):
        x = _x(n, seed=n)
        a, b = one(x), two(x)
        assert b.shape == a.shape == (n, 17, 64, 48)
        assert rel_l2(b, a) <= tol, n
        if dtype == "float32":
            assert rel_l2(b, _ref(model, x)) <= E.EXACT_REL_L2
    assert sorted(two._chains) == [1, 2]
    split = two.properties["split"]
    assert split["PERFORMANCE_HINT"] == "THROUGHPUT" and split["NUM_STREAMS"] == 2
    assert two.properties["PERFORMANCE_HINT"] == "LATENCY"  # one-row calls
    x = _x(4, seed=9)
    assert rel_l2(two(x), one(x)) <= tol  # the requests are reused safely


@needs_ort
@pytest.mark.parametrize("name", ["vitpose-b-simple", "vitpose-b", "vitpose-plus-b"])
def test_three_part_graph_chains_to_the_model(name):
    """stem -> trunk -> final (split where `models.precision` keeps float32) computes the
    model's heatmaps; the files are cached beside the one-file export."""
    model = _tiny(name)
    dataset = "ap10k" if "plus" in name else None
    paths = E.onnx_parts_for(model, dataset)
    assert [p.name.split(".")[-2] for p in paths] == list(E.PART_NAMES)
    assert all(p.parent == cache_dir() / "graphs" for p in paths)
    assert E.onnx_parts_for(model, dataset) == paths  # cached: not exported again
    sessions = [E.ort_session(p) for p in paths]
    x = _x(3)
    out = x.numpy()
    for s in sessions:
        out = s.run(None, {s.get_inputs()[0].name: out})[0]
    assert rel_l2(out, _ref(model, x, dataset or 0)) <= E.EXACT_REL_L2
    head = model.head_for(dataset or 0)
    f = model.forward_features(x, dataset or 0)
    with torch.no_grad():
        assert torch.equal(head.final(head.body(f)), head(f))


@needs_ort
def test_large_graphs_keep_their_weights_beside_the_file(monkeypatch, tmp_path):
    """Past protobuf's 2 GiB (ViTPose-H) the weights go to ``<file>.data``; both runtimes load
    the pair, and nothing else is left in the folder."""
    from vitpose.inference.engines import graph
    monkeypatch.setattr(graph, "EXTERNAL_DATA_BYTES", 0)  # every graph is "large"
    model = _tiny()
    path = E.onnx_file_for(model, folder=tmp_path)
    data = path.with_name(path.name + ".data")
    assert data.is_file() and data.stat().st_size > path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, data.name])
    x = _x(2)
    assert rel_l2(E.OnnxRuntimeEngine(path)(x), _ref(model, x)) <= E.EXACT_REL_L2
    if HAS_OV:
        assert rel_l2(OpenVinoEngine(path, "float32")(x), _ref(model, x)) <= E.EXACT_REL_L2


@needs_ov
def test_openvino_bf16_keeps_the_ends_float32():
    model = _tiny()
    x = _x(3)
    bf16 = build_engine("openvino", model, None, "bfloat16")
    assert bf16.float32_ends and bf16.describe()["float32_ends"]
    assert bf16.properties["INFERENCE_PRECISION_HINT"] == "bf16"  # the trunk's
    assert rel_l2(bf16(x), _ref(model, x)) < 5e-2
    fp32 = build_engine("openvino", model, None, "float32")
    assert not fp32.float32_ends  # one graph: nothing to keep
    peer = OpenVinoEngine(E.onnx_file_for(model), "bfloat16", tuned=False)
    assert not peer.float32_ends  # OpenVINO's own bf16 on the one-file export
    with pytest.raises(EngineError, match="does not exist"):
        OpenVinoEngine(bf16.path, "bfloat16", parts=[bf16.path, bf16.path, "missing.onnx"])


def _offset_model() -> vitpose.ViTPose:
    """A tiny model whose residual stream has a large mean (as trained ViTs have): a LayerNorm
    computed in bf16 loses most of its input's significant bits to the mean."""
    model = _tiny()
    with torch.no_grad():
        model.backbone.pos_embed.add_(300.0)
    return model


@needs_ov
def test_openvino_bf16_keeps_the_layer_norms_float32(tmp_path, monkeypatch):
    from vitpose.inference.engines import openvino_engine as ovmod
    from vitpose.inference.engines.ovcore import shared_core
    from vitpose.inference.engines.precision import cpu_supports_bf16

    model = _offset_model()
    stem, trunk, final = E.onnx_parts_for(model, folder=tmp_path)
    marked = ovmod.keep_float32(trunk, ("MVN",))
    assert marked.parent == tmp_path and marked.with_suffix(".bin").is_file()
    assert ovmod.keep_float32(trunk, ("MVN",)) == marked  # written once, then reused
    assert ovmod.keep_float32(trunk, ()) == trunk
    ops = shared_core().read_model(str(marked)).get_ops()
    kept = {op.get_type_name() for op in ops
            if any("precis" in k.lower() or "fp16" in k.lower() for k in op.get_rt_info().keys())}
    assert kept == {"MVN"}  # the IR reader turned the marks into OpenVINO's attribute
    assert ovmod.keep_float32(marked, ("MVN",)) == marked  # marked already: as it is
    assert ovmod.mark_float32(marked, ("MVN",)) == 0  # nothing left to mark

    # the engine uses them; where the CPU computes bf16 natively, the LayerNorms run float32
    # and the marked trunk is as accurate as autocast, the unmarked one far less
    x = _x(2)
    ref = _ref(model, x)
    ours = OpenVinoEngine(E.onnx_file_for(model, folder=tmp_path), "bfloat16",
                          parts=(stem, trunk, final))
    assert ours.describe()["float32_ops"] == ["MVN"]
    err = rel_l2(ours(x), ref)
    monkeypatch.setattr(ovmod, "FLOAT32_OPS", ())
    unmarked = OpenVinoEngine(ours.path, "bfloat16", parts=(stem, trunk, final))
    err_unmarked = rel_l2(unmarked(x), ref)
    if cpu_supports_bf16():
        runtime = ours._chains_for(1)[0][1].get_compiled_model().get_runtime_model()
        precisions = {(op.get_rt_info()["layerType"].astype(str),
                       op.get_rt_info()["runtimePrecision"].astype(str))
                      for op in runtime.get_ops()}
        assert ("MVN", "f32") in precisions and ("MVN", "bf16") not in precisions
        assert ("FullyConnected", "bf16") in precisions
        assert err < 1e-2 and err_unmarked > 5 * err
    else:  # OpenVINO computes float32 where bf16 is not native
        assert err < 1e-4 and err_unmarked < 1e-4


@needs_ov
def test_marked_graphs_go_to_the_cache_folder_where_the_graph_folder_is_read_only(
        tmp_path, monkeypatch):
    from vitpose.inference.engines import openvino_engine as ovmod
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    trunk = E.onnx_parts_for(_tiny(), folder=tmp_path / "parts")[1]
    write = ovmod._write_marked

    def read_only(graph, out, op_types):
        if out.parent == graph.parent:
            raise PermissionError("read-only")
        return write(graph, out, op_types)

    monkeypatch.setattr(ovmod, "_write_marked", read_only)
    marked = ovmod.keep_float32(trunk, ("MVN",))
    assert marked.parent == tmp_path / "cache" / "graphs" and marked.is_file()
    assert not any(p.name.endswith(".xml") for p in (tmp_path / "parts").iterdir())


@needs_ov
def test_openvino_reads_facts_from_the_file():
    model = _tiny("vitpose-plus-b")
    path = E.onnx_file_for(model, "ap10k")
    engine = OpenVinoEngine(path)
    assert engine.cfg.datasets == ("ap10k",) and engine.cfg.num_keypoints == 17


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_estimator_from_file_equals_torch_estimator(backend, data_dir):
    if not (HAS_ORT if backend == "onnxruntime" else HAS_OV):
        pytest.skip(f"{backend} is not installed")
    from vitpose.inference.detectors import load_coco_detections
    from vitpose.inference.io import read_image
    model = _tiny(seed=1)
    path = E.onnx_file_for(model)
    image = read_image(data_dir / "coco" / "000000000785.jpg")
    dets = load_coco_detections(data_dir / "coco" / "test_coco_det_AP_H_56.json")[785][:3]
    settings = TestSettings.for_dataset("coco", flip_test=True)
    est = PoseEstimator(model, settings=settings)
    other = estimator_from_file(path, backend, settings=settings, batch_size=2)
    assert other.engine.backend == backend and other.model.backbone.pos_embed.is_meta
    x, _, _ = est.crops(image, dets)
    assert rel_l2(other.forward_heatmaps(x), est.forward_heatmaps(x)) <= 1e-5
    a, b = est(image, dets), other(image, dets)
    np.testing.assert_allclose(b.keypoints, a.keypoints, rtol=1e-4, atol=1e-3)


def test_pose_estimator_runs_any_engine():
    model = _tiny()
    calls = []

    class Recording(TorchEngine):
        def __call__(self, images):
            calls.append(len(images))
            return super().__call__(images)

    settings = TestSettings.for_dataset("coco", flip_test=True)
    est = PoseEstimator(model, settings=settings, batch_size=2, engine=Recording(model))
    ref = PoseEstimator(model, settings=settings, batch_size=2)
    x = _x(3)
    assert torch.equal(est.forward_heatmaps(x), ref.forward_heatmaps(x))
    assert calls == [4, 2]  # the crops and their mirrors in one call, per chunk of 2 crops
    assert est.dtype == torch.float32 and est.device == torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# auto: choice, accuracy gate, cache (timings injected: no test depends on speed)
# ---------------------------------------------------------------------------------------------

def _inputs():
    return _x(4, seed=3)


def test_auto_picks_the_fastest_exact_engine():
    model = _tiny()
    timings = {"torch/float32": 3.0, "onnxruntime/float32": 1.0, "openvino/float32": 2.0}
    backends = ["torch"] + (["onnxruntime"] if HAS_ORT else []) + (["openvino"] if HAS_OV else [])
    engine, choice = select_engine(model, dtype="float32", timings=timings, inputs=_inputs(),
                                   backends=backends)
    want = "onnxruntime/float32" if HAS_ORT else "openvino/float32" if HAS_OV \
        else "torch/float32"
    assert engine.label == choice.engine == want
    assert "fastest engine that passes the accuracy gate" in choice.reason
    by = {m.engine: m for m in choice.measurements}
    assert all(m.accepted and m.rel_l2 <= E.EXACT_REL_L2 for m in by.values())
    assert by[want].seconds_per_crop == timings[want]


def test_auto_never_picks_an_engine_below_the_gate(monkeypatch):
    model = _tiny()
    timings = {"torch/bfloat16": 0.5, "torch/float32": 3.0}
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 1.01)  # no low-precision engine passes
    engine, choice = select_engine(model, dtype="bfloat16", timings=timings, inputs=_inputs(),
                                   backends=["torch"])
    assert engine.label == "torch/float32"
    assert "so the exact float32 path runs" in choice.reason
    assert "torch/bfloat16 (same arg-max" in choice.reason
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)  # every one passes: the fastest wins
    engine, choice = select_engine(model, dtype="bfloat16", timings=timings, inputs=_inputs(),
                                   backends=["torch"])
    assert engine.label == "torch/bfloat16" and engine.dtype == torch.bfloat16
    # a faster exact engine beats a slower low-precision one
    engine, _ = select_engine(model, dtype="bfloat16", inputs=_inputs(), backends=["torch"],
                              timings={"torch/bfloat16": 5.0, "torch/float32": 1.0})
    assert engine.label == "torch/float32"


def test_auto_exact_gate(monkeypatch):
    monkeypatch.setattr(E.auto, "EXACT_REL_L2", -1.0)  # nothing is exact enough: an error
    with pytest.raises(EngineError, match="no engine passed the accuracy gate"):
        select_engine(_tiny(), dtype="float32", timings={"torch/float32": 1.0},
                      inputs=_inputs(), backends=["torch"])


def test_auto_remembers_its_choice_per_machine_model_and_policy(monkeypatch):
    model = _tiny()
    measured = []

    def fake_time(engines, x, rounds):
        if len(x) == 2:  # one calibration: a crop and its mirror, then a full call
            measured.append(sorted(engines))
        return {k: 0.1 for k in engines}

    monkeypatch.setattr(E.auto, "_time_engines", fake_time)
    _, c1 = select_engine(model, dtype="float32", backends=["torch"], inputs=_inputs(),
                          calibrate=True)
    assert not c1.cached and c1.cache_file and len(measured) == 1
    saved = json.loads(Path(c1.cache_file).read_text())
    assert saved["engine"] == "torch/float32" and saved["fingerprint"]["machine"]["cpu"]
    _, c2 = select_engine(model, dtype="float32", backends=["torch"], inputs=_inputs(),
                          calibrate=True)
    assert c2.cached and c2.engine == c1.engine and len(measured) == 1  # no new calibration
    # another batch size (call sizes) or thread count: the same remembered choice
    _, c3 = select_engine(model, dtype="float32", backends=["torch"], inputs=_inputs(),
                          rows=(2, 4), threads=torch.get_num_threads())
    assert c3.cached and len(measured) == 1
    select_engine(_tiny(seed=5), dtype="float32", backends=["torch"], inputs=_inputs(),
                  calibrate=True)
    assert len(measured) == 2  # other weights: another key
    select_engine(model, dtype="bfloat16", backends=["torch"], inputs=_inputs(), calibrate=True)
    assert len(measured) == 3  # another policy: another key


def test_auto_decides_a_near_tie_at_the_full_call(monkeypatch):
    # tied at a crop and its mirror, the full call of the estimator's batch decides (issue 13:
    # ONNX Runtime was taken where OpenVINO fp32 was faster at larger calls)
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    timings = {"torch/bfloat16": {2: 1.00, 8: 1.00}, "torch/float32": {2: 1.02, 8: 0.80}}
    engine, choice = select_engine(_tiny(), dtype="bfloat16", timings=timings, inputs=_inputs(),
                                   backends=["torch"])
    assert engine.label == choice.engine == "torch/float32"
    by = {m.engine: m for m in choice.measurements}
    assert by["torch/float32"].seconds_per_crop_by_rows == {"2": 1.02, "8": 0.80}
    assert by["torch/float32"].seconds_per_crop == pytest.approx((1.02 * 0.80) ** 0.5)
    # one call size only (batch 1 with the flip test): the 2-row timing decides
    engine, choice = select_engine(_tiny(), dtype="bfloat16", timings=timings, inputs=_inputs(),
                                   backends=["torch"], rows=E.calibration_rows(1))
    assert engine.label == "torch/bfloat16"


def test_auto_does_not_time_clearly_slower_engines_at_the_full_call(monkeypatch):
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    asked = []

    def timer(active, x, rounds):
        asked.append((sorted(active), len(x), rounds))
        return {k: {"torch/bfloat16": 1.0, "torch/float32": 2.0}[k] for k in active}

    monkeypatch.setattr(E.auto, "_time_engines", timer)
    engine, choice = select_engine(_tiny(), dtype="bfloat16", inputs=_inputs(),
                                   backends=["torch"], use_cache=False, calibrate=True)
    assert asked == [(["torch/bfloat16", "torch/float32"], 2, 5), (["torch/bfloat16"], 8, 3)]
    assert engine.label == "torch/bfloat16"
    by = {m.engine: m for m in choice.measurements}
    assert by["torch/float32"].seconds_per_crop_by_rows == {"2": 2.0}
    assert "not timed at 8 rows" in by["torch/float32"].timing_note
    assert by["torch/float32"].accepted and by["torch/float32"].note == ""
    assert "slower: torch/float32 (2.00x the fastest at 2 rows" in choice.reason


def test_calibration_rows_follow_the_estimator():
    assert E.calibration_rows() == (2, E.MAX_CALIBRATION_ROWS)
    assert E.calibration_rows(16) == (2, 8) and E.calibration_rows(3) == (2, 6)
    assert E.calibration_rows(1) == (2,) and E.calibration_rows(2, flip_test=False) == (1, 2)


def test_calibration_timing_is_interleaved_and_keeps_the_least_disturbed_round(monkeypatch):
    clock = [0.0]
    order = []

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock[0]

        @staticmethod
        def sleep(seconds):  # the settling pause: not timed
            clock[0] += 1000.0

    class Fake:
        def __init__(self, name, cost, spikes=()):
            self.name, self.cost, self.spikes, self.calls = name, cost, set(spikes), 0

        def __call__(self, x):
            self.calls += 1
            order.append(self.name)
            clock[0] += self.cost * len(x) + (5.0 if self.calls in self.spikes else 0.0)
            return x

    monkeypatch.setattr(E.choice, "time", FakeTime)  # the shared timing loop
    a, b = Fake("a", 1.0, spikes={2, 3}), Fake("b", 1.1)  # a: disturbed in two rounds
    got = E.auto._time_engines({"a": a, "b": b}, torch.zeros(2, 1, 1, 1), 4)
    assert got == {"a": pytest.approx(1.0), "b": pytest.approx(1.1)}
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, rotated rounds


def test_candidates_and_cache_folder(monkeypatch, tmp_path):
    labels = [c.label for c in candidates_for(torch.bfloat16, "cpu",
                                              ["torch", "onnxruntime", "openvino"])]
    assert labels == ["torch/bfloat16", "openvino/bfloat16", "torch/float32",
                      "onnxruntime/float32", "openvino/float32"]
    assert [c.label for c in candidates_for(torch.float16, "cuda", ["torch", "onnxruntime",
                                                                    "openvino"])] == \
        ["torch/float16", "torch/float32", "onnxruntime/float32"]
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "v"))
    assert cache_dir() == tmp_path / "v"
    monkeypatch.delenv("VITPOSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "vitpose"


def test_argmax_agreement():
    ref = torch.zeros(2, 3, 4, 5)
    ref[..., 1, 1] = 1
    out = ref.clone()
    out[0, 0, 1, 2] = 2  # one keypoint moves by one pixel
    same, near = argmax_agreement(out, ref)
    assert same == pytest.approx(5 / 6) and near == 1.0


# ---------------------------------------------------------------------------------------------
# builder, missing runtimes, GPU providers (no GPU needed)
# ---------------------------------------------------------------------------------------------

def test_build_estimator_backends_agree(tmp_path, data_dir):
    ckpt = vitpose.save_checkpoint(_tiny(seed=2), tmp_path / "m.pth")
    image = str(data_dir / "coco" / "000000000785.jpg")
    boxes = np.array([[100, 50, 200, 350, 1.0]], np.float32)
    torch_est = build_estimator(str(ckpt), dtype="float32", backend="torch")
    assert torch_est.engine.label == "torch/float32" and torch_est.engine_choice is None
    want = torch_est(image, boxes).keypoints
    backends = (["onnxruntime"] if HAS_ORT else []) + (["openvino"] if HAS_OV else []) + ["auto"]
    for backend in backends:
        est = build_estimator(str(ckpt), dtype="float32", backend=backend)
        assert est.engine.exact
        if backend == "auto":
            assert est.engine_choice is not None and est.engine_choice.engine == est.engine.label
        np.testing.assert_allclose(est(image, boxes).keypoints, want, rtol=1e-4, atol=1e-3)


def test_build_estimator_calibrates_at_its_own_call_sizes(tmp_path, monkeypatch):
    from vitpose.inference import builder
    ckpt = vitpose.save_checkpoint(_tiny(seed=2), tmp_path / "m.pth")
    asked = []

    seen_crops = []

    def fake_select(net, dataset, dtype, device, *, threads=None, rows=None, crops=None,
                    calibrate=None):
        asked.append(rows)
        seen_crops.append(crops)
        return TorchEngine(net, dataset, torch.float32), None

    monkeypatch.setattr(builder, "select_engine", fake_select)
    build_estimator(str(ckpt), dtype="float32", backend="auto", batch_size=1)
    build_estimator(str(ckpt), dtype="float32", backend="auto", batch_size=3, flip_test=False,
                    crops=40)
    assert asked == [(2,), (1, 3)]
    assert seen_crops == [None, 40]  # the job's crops reach the rule


def test_missing_runtimes_name_their_extra(monkeypatch):
    model = _tiny()
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert E.available_backends() == ["torch"]
    with pytest.raises(EngineError, match=r"vitpose\[openvino\]"):
        build_engine("openvino", model, None, "float32")
    with pytest.raises(EngineError, match=r"vitpose\[onnx\]"):
        build_engine("onnxruntime", model, None, "float32")
    with pytest.raises(EngineError, match=r"vitpose\[openvino\]"):
        OpenVinoEngine("any.onnx")
    with pytest.raises(EngineError, match="unknown backend"):
        build_engine("tensorflow", model)


def test_cuda_and_tensorrt_providers_without_a_gpu(tmp_path):
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cpu", gpu) == ["CPUExecutionProvider"]
    assert providers_for("cuda:1", gpu) == [("CUDAExecutionProvider", {"device_id": 1}),
                                             "CPUExecutionProvider"]
    trt = providers_for("cuda", gpu, tensorrt=True, fp16=True, cache=tmp_path)
    assert trt[0] == ("TensorrtExecutionProvider",
                      {"device_id": 0, "trt_fp16_enable": True, "trt_engine_cache_enable": True,
                       "trt_engine_cache_path": str(tmp_path)})
    assert [p if isinstance(p, str) else p[0] for p in trt] == gpu
    with pytest.raises(EngineError, match="onnxruntime-gpu"):
        providers_for("cuda", ["CPUExecutionProvider"])


def test_shared_runtime_helpers_serve_pose_engines_and_other_graphs(tmp_path, monkeypatch):
    """`engines.runtime` is the one place sessions and compiled models are made (the learned
    detectors use it too): thread and spinning settings, the compiled-model cache."""
    from vitpose.inference.detectors import runners
    from vitpose.inference.engines import runtime
    pytest.importorskip("onnxruntime")
    class TwoOut(torch.nn.Module):  # a detector's shape: (logits, boxes)
        def forward(self, x):
            return x.mean((2, 3)), x.amax((2, 3))

    graph = TwoOut().eval()
    source = runners.export_detector(graph, (16, 16), None)
    assert isinstance(source, bytes)
    sess = runtime.ort_session(source, threads=1, spinning=False, quiet=True)
    opts = sess.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.log_severity_level == 3
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(EngineError, match="ONNX Runtime cannot load the graph"):
        runtime.ort_session(b"not a graph")
    path = runners.export_detector(graph, (16, 16), tmp_path / "g.onnx")
    assert path == tmp_path / "g.onnx" and path.is_file()
    if importlib.util.find_spec("openvino") is not None:
        _, props = runtime.compile_openvino(path, torch.float32, threads=1,
                                            cache=tmp_path / "ov")
        assert props["CACHE_DIR"] == str(tmp_path / "ov") and props["INFERENCE_NUM_THREADS"] == 1
        _, props = runtime.compile_openvino(path, use_cache=False)
        assert "CACHE_DIR" not in props
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EngineError, match=r"vitpose\[onnx\]"):
        runtime.ort_session(path)

"""``--backend auto``'s rule: when a calibration repays itself (injected CPU features, model sizes
and job lengths; no timing), what a one-image job builds (nothing it has not cached), what the
calibration releases, and the default thread count."""

from __future__ import annotations

import gc
import logging
import types
import weakref

import pytest
import torch
from tiny_models import tiny_simple_model

from vitpose.inference import engines as E
from vitpose.inference.engines import (
    LONG_JOB_FACTOR,
    TIMING_ROWS,
    CalibratingEngine,
    Candidate,
    TorchEngine,
    calibration_cost_crops,
    candidates_for,
    default_threads,
    plan_engine,
    select_engine,
)
from vitpose.inference.engines.base import DTYPE_NAMES
from vitpose.inference.engines.online import ROUNDS
from vitpose.inference.engines.threads import cgroup_cpu_quota

AVX2 = frozenset({"avx2", "fma"})
AMX = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"})
F32 = [Candidate("torch", torch.float32), Candidate("onnxruntime", torch.float32),
       Candidate("openvino", torch.float32)]
BF16 = [Candidate("torch", torch.bfloat16), Candidate("openvino", torch.bfloat16), *F32]
VIT_B = 33.0  # GFLOP per crop of ViTPose-B at 256x192


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))


def _torch_path(policy: str) -> str:
    """The engine `--backend torch` runs with `policy` on this CPU (bf16 where it is native)."""
    return f"torch/{DTYPE_NAMES[E.resolve_dtype(policy, 'cpu')]}"


def _plan(crops, features=AVX2, cands=F32, cached=False, threads=2, gflop=VIT_B):
    return plan_engine(crops=crops, gflop_per_crop=gflop, target=cands[0].dtype,
                       candidates=cands, threads=threads, features=features,
                       graph_cached=cached)


def _smallest_job_that_calibrates(**kw) -> int:
    lo, hi = 1, 10 ** 7
    assert _plan(hi, **kw).calibrate
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _plan(mid, **kw).calibrate else (mid + 1, hi)
    return lo


def test_short_and_unknown_jobs_run_the_safe_engine_without_calibration():
    for crops in (1, 2, 40, None):
        plan = _plan(crops)
        assert not plan.calibrate and plan.engine == "torch/float32"
    assert "short job" in _plan(1).reason and "1 crops" in _plan(1).reason
    assert "length is unknown" in _plan(None).reason
    # below float32, what `--backend torch` runs with the same policy: the torch path in it
    for crops in (2, None):
        plan = _plan(crops, features=AMX, cands=BF16)
        assert not plan.calibrate and plan.engine == "torch/bfloat16"
        assert "as --backend torch" in plan.reason
    long = _plan(10 ** 6)
    assert long.calibrate and long.during and "long job" in long.reason
    assert long.calibration_crops > 0 and long.calibration_seconds > 0


def test_a_folder_of_100_one_person_images_calibrates_on_every_cpu():
    """100 images with the flip test: 200 crops, enough to calibrate during the job on an AVX2
    CPU (float32 engines only) and where bf16 is native; a one-image job never is."""
    for features, cands in ((AVX2, F32), (AMX, BF16), (AVX2, BF16)):
        assert _plan(200, features=features, cands=cands).calibrate
        assert not _plan(2, features=features, cands=cands).calibrate
        assert not _plan(2, features=features, cands=cands, cached=True).calibrate


def test_the_break_even_follows_engines_cache_and_bf16_speed_not_model_or_cpu_speed():
    avx2 = _smallest_job_that_calibrates()
    # three float32 engines with the ONNX export: about a hundred crops (twice the cost: the
    # calibration adds at most half to the job)
    assert 60 < avx2 < 150
    assert avx2 == pytest.approx(max(LONG_JOB_FACTOR * calibration_cost_crops(
        F32, AVX2, graph_cached=False), 3 * 2 * ROUNDS * TIMING_ROWS), abs=1)
    # a cached export makes calibrating cheaper (down to the calls that time the engines)
    assert _smallest_job_that_calibrates(cached=True) == 3 * 2 * ROUNDS * TIMING_ROWS < avx2
    # more engines cost more; a gate in native bf16 (AMX) costs less than an emulated one
    assert _smallest_job_that_calibrates(cands=BF16) > avx2
    assert _smallest_job_that_calibrates(features=AMX, cands=BF16) < \
        _smallest_job_that_calibrates(cands=BF16)
    # the break-even in crops does not depend on the model's size (both scale with it) ...
    assert _smallest_job_that_calibrates(gflop=8.0) == avx2
    # ... nor on the CPU's speed (a slower one makes both slower alike), nor on threads
    assert _smallest_job_that_calibrates(features=frozenset()) == avx2
    assert _smallest_job_that_calibrates(threads=16) == avx2
    # one engine only: nothing to calibrate, however long the job
    only = _plan(10 ** 9, cands=F32[:1])
    assert not only.calibrate and "only engine" in only.reason


def test_auto_never_considers_int8():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for device in ("cpu", "cuda"):
            labels = [c.label for c in candidates_for(dtype, device,
                                                      ["torch", "onnxruntime", "openvino"])]
            assert labels and not any("int8" in lab for lab in labels)
    with pytest.raises(ValueError):
        E.resolve_dtype("int8")


def test_one_image_job_builds_nothing_it_has_not_cached(monkeypatch, caplog, tmp_path):
    model = tiny_simple_model()

    def forbidden(*a, **k):
        raise AssertionError("a one-image job must not export, compile or time engines")

    for name in ("_calibrate", "onnx_file_for", "onnx_parts_for", "_time_engines",
                 "model_key"):  # not even the hash of the weights: the cache holds nothing
        monkeypatch.setattr(E.auto, name, forbidden)
    monkeypatch.setattr(E.auto, "OnnxRuntimeEngine", forbidden)
    monkeypatch.setattr(E.auto, "OpenVinoEngine", forbidden)
    with caplog.at_level(logging.INFO, logger="vitpose"):
        engine, choice = select_engine(model, dtype="auto", crops=1,
                                       backends=["torch", "onnxruntime", "openvino"],
                                       features=AMX)
    plain = _torch_path("auto")  # what `--backend torch` runs on this CPU
    assert isinstance(engine, TorchEngine) and engine.label == plain
    if plain == "torch/float32":
        assert engine.model is model  # no weight copy: the memory of the torch path
    assert choice.engine == plain and not choice.measurements
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("vitpose")]
    assert len(lines) == 1 and lines[0].startswith(f"engine {plain}: ")
    assert "without calibration" in lines[0] or "nothing to calibrate" in lines[0]
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_a_long_job_calibrates_during_the_job_and_later_short_jobs_reuse_the_choice(
        monkeypatch, caplog):
    model = tiny_simple_model()
    prepared = []
    real_gate = E.auto._gate

    def gate(*a, **k):
        prepared.append(1)
        return real_gate(*a, **k)

    monkeypatch.setattr(E.auto, "_gate", gate)
    # the speeds the job's calls measured (injected: no test depends on this machine's timing)
    monkeypatch.setattr(E.auto, "_scores", lambda samples: {
        k: 1.0 if k == "torch/float32" else 0.5 for k in samples})
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    with caplog.at_level(logging.INFO, logger="vitpose"):
        engine, choice = select_engine(model, dtype="bfloat16", backends=["torch"],
                                       crops=10 ** 9, features=AVX2)
        assert isinstance(engine, CalibratingEngine) and engine.label == "torch/float32"
        x = torch.randn(2, 3, *model.input_size)
        first = engine(x)
        assert not prepared  # the first call never waits for the candidates
        assert torch.equal(first, TorchEngine(model)(x))
        labels = []
        for _ in range(12):
            engine(x)
            labels.append(engine.label)
    assert prepared == [1] and engine.done
    assert labels[-1] == choice.engine == "torch/bfloat16"
    assert "timed on" in choice.reason and choice.cache_file
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("engine torch/float32 first: a long job") for m in messages)
    assert any(m.startswith("choosing the engine for this machine during the job")
               for m in messages)
    assert any(m.startswith("engine torch/bfloat16: ") for m in messages)
    engine, again = select_engine(model, dtype="bfloat16", backends=["torch"], crops=1,
                                  features=AVX2)
    assert again.cached and engine.label == "torch/bfloat16" and prepared == [1]
    # calibrate=False: a long job without a remembered choice runs the torch path of the policy
    engine, off = select_engine(tiny_simple_model(seed=3), dtype="bfloat16", backends=["torch"],
                                crops=10 ** 9, features=AVX2, calibrate=False)
    assert off.engine == "torch/bfloat16" and "turned off" in off.reason
    assert isinstance(engine, TorchEngine) and prepared == [1]


def test_calibration_releases_what_it_loaded(monkeypatch):
    model = tiny_simple_model()
    copies = []
    real = E.auto.optimize_for_inference

    def spy(m, dtype, *a, **k):
        out = real(m, dtype, *a, **k)
        copies.append(weakref.ref(out))
        return out

    monkeypatch.setattr(E.auto, "optimize_for_inference", spy)
    monkeypatch.setattr(E.auto, "MIN_ARGMAX_SAME", 0.0)
    engine, choice = select_engine(model, dtype="bfloat16", backends=["torch"],
                                   timings={"torch/bfloat16": 2.0, "torch/float32": 1.0},
                                   use_cache=False)
    assert engine.label == "torch/float32" and copies
    gc.collect()
    assert all(ref() is None for ref in copies)  # the bf16 copy of the weights is gone


def test_default_threads_counts_what_is_free():
    # affinity, quota and load injected
    assert default_threads(cpus=2, quota=None, load=0.0, own=0, total=2) == 2
    assert default_threads(cpus=2, quota=None, load=1.0, own=0, total=2) == 1  # a core taken
    assert default_threads(cpus=2, quota=None, load=5.0, own=0, total=2) == 1  # at least one
    assert default_threads(cpus=2, quota=None, load=1.0, own=1, total=2) == 2  # our own load
    assert default_threads(cpus=16, quota=2.5, load=None) == 2  # the container's quota
    assert default_threads(cpus=16, quota=0.3, load=None) == 1
    # the load average is the whole machine's: 64 busy of 128 leaves half of our 8
    assert default_threads(cpus=8, quota=None, load=64.0, own=0, total=128) == 4
    assert default_threads(cpus=8, quota=None, load=None) == 8
    n = default_threads()
    assert 1 <= n <= (E.threads.usable_cpus())


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_quota(v1) == 2.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_quota(v1) is None


def test_threads_reach_the_torch_engine():
    before = torch.get_num_threads()
    try:
        engine = TorchEngine(tiny_simple_model(), threads=1)
        assert torch.get_num_threads() == 1 and engine.describe()["threads"] == 1
        engine, _ = select_engine(tiny_simple_model(), dtype="float32", crops=1, threads=1,
                                  backends=["torch"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_one_image_job_does_not_even_import_the_other_runtimes(tmp_path):
    import os
    import subprocess
    import sys
    code = ("import sys, vitpose\n"
            "from vitpose.inference.engines import select_engine\n"
            "m = vitpose.build_model('vitpose-b-simple', embed_dim=32, depth=1, num_heads=2)\n"
            "engine, choice = select_engine(m.eval(), crops=1)\n"
            "print(engine.label, 'openvino' in sys.modules, 'onnxruntime' in sys.modules)\n")
    env = {**os.environ, "VITPOSE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [_torch_path("auto"), "False", "False"]


def test_predict_one_image_with_defaults_exports_and_calibrates_nothing(tmp_path, caplog):
    """`vitpose predict IMAGE` with the default --backend auto on a fresh cache: the safe
    engine at once, nothing written to the cache (no export, compilation or choice)."""
    from pathlib import Path

    import vitpose
    from vitpose.cli.main import main
    image = Path(vitpose.__file__).resolve().parent / "assets" / "000000000785.jpg"
    ckpt = vitpose.save_checkpoint(tiny_simple_model(), tmp_path / "m.pth")
    with caplog.at_level(logging.INFO):
        assert main(["predict", str(image), "--model", str(ckpt), "--detector", "whole-image",
                     "--out-dir", str(tmp_path / "out")]) == 0
    decided = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine ")]
    assert len(decided) == 1 and decided[0].startswith(f"engine {_torch_path('auto')}: ")
    assert not any("calibrating" in r.getMessage() for r in caplog.records)
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_busy_cpus_are_measured_now_not_from_the_lagging_load_average(monkeypatch):
    """`default_threads` counts what the rest of the machine keeps busy during a short
    interval (injected /proc/stat readings), less this process's own CPU time; the 1-minute
    load average, which still counts a job that just ended, is only the fallback."""
    from vitpose.inference.engines import threads as T
    readings = iter([(100.0, 400.0), (100.1, 400.2)])  # one of two CPUs busy for 0.1 s
    own = iter([5.0, 5.0])
    clock = iter([0.0, 0.1])
    monkeypatch.setattr(T, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(T, "_own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(T, "time", types.SimpleNamespace(sleep=lambda s: None,
                                                         monotonic=lambda: next(clock)))
    monkeypatch.setattr(T.os, "getloadavg", lambda: (2.0, 2.0, 2.0))  # stale: ignored
    assert T.default_threads(cpus=2, quota=None, total=2) == 1
    readings = iter([(100.0, 400.0), (100.1, 400.2)])  # the busy CPU time was our own
    own = iter([5.0, 5.1])
    clock = iter([0.0, 0.1])
    assert T.default_threads(cpus=2, quota=None, total=2) == 2
    readings = iter([(100.0, 400.0), (100.0, 400.2)])  # an idle machine, stale load average
    own, clock = iter([5.0, 5.0]), iter([0.0, 0.1])
    assert T.default_threads(cpus=2, quota=None, total=2) == 2
    monkeypatch.setattr(T, "_cpu_times", lambda: None)  # no /proc/stat: the load average
    assert T.default_threads(cpus=2, quota=None, own=0, total=2) == 1


def test_a_low_precision_engine_passes_on_its_arg_max_or_as_close_as_the_torch_path():
    """The gate's rule (no engine built): 99% of the arg-max, or, where the torch path of the
    same dtype passed, a relative error within `AS_CLOSE_AS_TORCH` times the torch path's (a
    near-tie flip is 0.7% of the gate's 136 keypoints); never on the relative error alone."""
    from vitpose.inference.engines.auto import (
        AS_CLOSE_AS_TORCH,
        MIN_ARGMAX_SAME,
        Measurement,
        low_precision_verdict,
    )

    def m(rel: float, same: float, engine: str = "openvino/bfloat16") -> Measurement:
        return Measurement(engine, "bfloat16", rel_l2=rel, argmax_same=same)

    torch_path = m(2.4e-3, 1.0, "torch/bfloat16")
    low_precision_verdict(torch_path, None)
    assert torch_path.accepted and not torch_path.note
    ok = m(3.0e-3, 133 / 136)  # 3 flips, as close to float32 as autocast
    low_precision_verdict(ok, torch_path)
    assert ok.accepted and "as close to float32 as torch/bfloat16" in ok.note
    far = m(1.3e-2, 133 / 136)  # OpenVINO's own bf16: 5x farther
    low_precision_verdict(far, torch_path)
    assert not far.accepted and "5.0e-03" not in far.note and f"{AS_CLOSE_AS_TORCH}x" in far.note
    edge = m(AS_CLOSE_AS_TORCH * 2.4e-3 * 1.01, 0.5)
    low_precision_verdict(edge, torch_path)
    assert not edge.accepted
    alone = m(1e-4, 0.9)  # no torch path to compare with: the arg-max decides
    low_precision_verdict(alone, None)
    assert not alone.accepted and alone.note.endswith("on these weights")
    failed_torch = m(2.4e-3, MIN_ARGMAX_SAME - 0.01, "torch/bfloat16")
    low_precision_verdict(failed_torch, None)
    other = m(2.0e-3, 0.97)
    low_precision_verdict(other, failed_torch)
    assert not failed_torch.accepted and not other.accepted
    high = m(5e-2, MIN_ARGMAX_SAME)  # 99% of the arg-max passes whatever the error
    low_precision_verdict(high, torch_path)
    assert high.accepted


def test_the_reason_says_when_the_chosen_engine_passed_on_its_closeness_to_float32():
    from vitpose.inference.engines.auto import Measurement, _reason, low_precision_verdict
    torch_path = Measurement("torch/bfloat16", "bfloat16", rel_l2=3.2e-3, argmax_same=1.0)
    low_precision_verdict(torch_path, None)
    ov = Measurement("openvino/bfloat16", "bfloat16", rel_l2=3.5e-3, argmax_same=133 / 136)
    low_precision_verdict(ov, torch_path)
    reason = _reason("openvino/bfloat16", {"openvino/bfloat16": 0.089, "torch/bfloat16": 0.112},
                     {m.engine: m for m in (torch_path, ov)}, torch.bfloat16, True)
    assert reason.startswith("openvino/bfloat16 is the fastest engine that passes")
    assert "it passed with same arg-max 97.8% < 99%, but as close to float32 as " \
           "torch/bfloat16 (relative error 3.5e-03 against 3.2e-03)" in reason

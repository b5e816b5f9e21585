"""`run_benchmark`: what `vitpose bench` measures, for each model and each variant.

Variants are engines (`vitpose.inference.engines`) of our model and the peers on the same
weights:

* **ours**: ``vitpose/<backend>/<dtype>`` for each backend asked (torch eager or compiled,
  ONNX Runtime, OpenVINO with our settings) and ``vitpose/auto:<policy>`` (what ``--backend
  auto`` chooses for the dtype policy, with its reason);
* **peers**: the ``transformers`` VitPose (fp32 eager and autocast), and OpenVINO / ONNX Runtime
  on our ONNX export with their default settings (``peer/openvino/<dtype>``,
  ``peer/onnxruntime/float32``), as a user of those runtimes would run it.

For each: model throughput (the model call alone at each batch size, interleaved rounds, median),
accuracy against our eager fp32 on real crops (heatmap relative L2, same arg-max), end-to-end
throughput with the flip test (read, crop, model, decode, rescore; the time of each stage; the
OpenVINO peer's pipeline calls the model on the crops and on their mirrors, as its users do),
time to first result of ``vitpose predict`` on one image (today's torch path, ``auto`` with a
cold and with a warm cache) and its peak memory. The matmul peak of the machine and the model's
FLOPs give the fraction of the peak reached.
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..checkpoints import save_checkpoint
from ..errors import VitPoseError
from ..hub import RELEASED_WEIGHTS, load_model
from ..inference.engines import (
    DTYPE_NAMES,
    DTYPES,
    INT8,
    AutoChoice,
    CalibratingEngine,
    Engine,
    EngineError,
    OnnxRuntimeEngine,
    OpenVinoEngine,
    TorchEngine,
    argmax_agreement,
    build_engine,
    calibration_inputs,
    cpu_supports_bf16,
    default_threads,
    machine_fingerprint,
    onnx_file_for,
    onnxruntime_available,
    openvino_available,
    optimize_for_inference,
    rel_l2,
    resolve_dtype,
    select_engine,
    usable_cpus,
)
from ..inference.engines.choice import SETTLE_SECONDS
from ..inference.io import read_image
from ..inference.pipeline import PoseEstimator, TestSettings
from ..models.vitpose import ViTPose, build_model, canonical_name
from .measure import (
    Sample,
    load_samples,
    load_transformers_reference,
    matmul_peak_gflops,
    model_flops,
    peak_rss_mb,
    pipeline_end_to_end,
    run_with_peak_rss,
    sync_for,
    time_interleaved,
    transformers_end_to_end,
)
from .report import row_label, summary

__all__ = ["PAPER_FPS_A100", "BenchConfig", "coco_ap_of", "largest_batch", "run_benchmark"]

log = logging.getLogger("vitpose.benchmark")

#: Throughput in the paper (A100, batch 64, 256x192, no flip test), images/s, by model size.
PAPER_FPS_A100 = {"b": 944.0, "l": 411.0, "h": 241.0}
PEERS = ("transformers", "openvino", "onnxruntime")


def coco_ap_of(variant: str | None) -> float | None:
    """COCO val AP of a variant from the original README tables (None when unknown)."""
    if not variant:
        return None
    key = canonical_name(variant) or variant
    if key == "vitpose-g":
        return 81.0
    rel = RELEASED_WEIGHTS.get(key)
    return rel.coco_ap if rel else None


def _size_letter(variant: str | None) -> str | None:
    key = canonical_name(variant or "") or ""
    for p in key.split("-")[1:]:
        if p in ("s", "b", "l", "h", "g"):
            return p
    return None


@dataclass
class BenchConfig:
    """What `run_benchmark` measures (see ``vitpose bench --help``)."""

    models: list[str] = field(default_factory=lambda: ["vitpose-b-simple"])
    weights: str | None = None
    dataset: str | None = None
    device: str = "cpu"
    dtypes: list[str] = field(default_factory=lambda: ["float32", "auto"])
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    backends: list[str] = field(default_factory=lambda: ["auto", "torch"])
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    compile: bool = False
    transformers: bool = True
    images: str | None = None
    det_file: str | None = None
    images_file: str | None = None
    det_thr: float = 0.0
    max_images: int | None = None
    flip: bool = True
    e2e_batch_size: int = 16
    e2e_repeats: int = 1
    rounds: int = 5
    warmup: int = 1
    min_seconds: float = 0.0
    accuracy_crops: int = 16
    matmul_peak: bool = True
    predict_memory: bool = True
    first_result: bool = True
    paper_batch: int = 64
    threads: int | None = None
    seed: int = 0
    detectors: list[str] = field(default_factory=list)
    #: ``--dtype int8``: the quantization variants (`engines.int8.INT8_VARIANTS`), the crops
    #: to calibrate and certify on (from `images`; else `calib`'s images)
    int8_variants: list[str] = field(default_factory=lambda: ["mixed"])
    int8_crops: int = 128
    calib: str | None = None
    #: the job length ``auto`` is told (None: calibrate, as for a long job)
    auto_crops: int | None = None


@dataclass
class _Variant:
    impl: str  # "vitpose", "transformers" or "peer"
    backend: str  # "torch", "onnxruntime", "openvino" or "auto"
    dtype: torch.dtype
    compile: bool = False
    runner: Callable[[torch.Tensor], torch.Tensor] | None = None
    engine: Engine | None = None
    policy: str | None = None  # auto only
    choice: AutoChoice | None = None

    @property
    def label(self) -> str:
        return row_label(self.fields())

    def fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {"impl": self.impl, "backend": self.backend,
                             "dtype": DTYPE_NAMES[self.dtype], "compile": self.compile}
        if self.policy is not None:
            d["policy"] = self.policy
            d["engine"] = self.engine.label if self.engine is not None else None
        return d


class _TwoCalls(Engine):
    """A peer's flip test: the crops and their mirrors in two model calls (the documented way of
    ``transformers``; any runtime's user would do the same without our batching)."""

    def __init__(self, engine: Engine, flip: bool) -> None:
        self.inner, self.flip = engine, flip
        self.backend, self.dtype, self.device = engine.backend, engine.dtype, engine.device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not self.flip:
            return self.inner(images)
        n = len(images) // 2
        return torch.cat([self.inner(images[:n]), self.inner(images[n:])])


def _build_model(name: str, weights: str | None, device: str, seed: int) -> tuple[ViTPose, str]:
    """A model for benchmarking: variant names get random weights unless `weights` is given."""
    if weights is None and canonical_name(name) and not Path(name).exists():
        torch.manual_seed(seed)
        return build_model(name).eval().to(device), "random"
    return load_model(name, weights=weights, device=device), str(weights or name)


def _system_info(device: torch.device) -> dict[str, Any]:
    fp = machine_fingerprint()
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "opencv": cv2.__version__, "platform": platform.platform(),
        "cpu": fp["cpu"], "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "cpu_native_bf16": cpu_supports_bf16(), "device": str(device),
        "onnxruntime": fp["onnxruntime"], "openvino": fp["openvino"],
    }
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    # what the machine has free for this process now (the default of --threads in predict)
    info["usable_cpus"], info["default_threads"] = usable_cpus(), default_threads()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["transformers"] = __import__("transformers").__version__
    except ImportError:
        info["transformers"] = None
    return info


def _crops_for(estimator: PoseEstimator, samples: Sequence[Sample], count: int,
               seed: int) -> torch.Tensor:
    """Up to `count` normalised crops from the samples (random images without samples)."""
    parts: list[torch.Tensor] = []
    for s in samples:
        if sum(len(p) for p in parts) >= count:
            break
        if len(s.boxes):
            x, _, _ = estimator.crops(read_image(s.path), s.boxes)
            parts.append(x)
    if parts:
        return torch.cat(parts)[:count]
    h, w = estimator.model.input_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, h, w, generator=g).to(estimator.device)


def _tile(x: torch.Tensor, n: int) -> torch.Tensor:
    reps = -(-n // len(x))
    return x.repeat(reps, 1, 1, 1)[:n].contiguous()


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int
             ) -> torch.Tensor:
    return torch.cat([fn(x[i:i + size]).float().cpu() for i in range(0, len(x), size)])


def run_benchmark(cfg: BenchConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything in `cfg`; returns the JSON-ready report (see the module docstring)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    sync = sync_for(device)
    report: dict[str, Any] = {"system": _system_info(device), "config": dict(vars(cfg)),
                              "matmul_peak_gflops": {}, "models": []}
    free, usable = report["system"]["default_threads"], report["system"]["usable_cpus"]
    if free < usable and not cfg.threads:
        echo(f"warning: only {free} of {usable} CPUs look free (other processes keep CPUs "
             f"busy now): figures at "
             f"{torch.get_num_threads()} threads are oversubscribed; --threads {free} measures "
             "what a user gets on this machine now")
    dtypes: list[torch.dtype] = []
    for name in cfg.dtypes:
        if name == INT8:  # an engine of its own (`_int8_variants`), not a compute dtype
            continue
        d = resolve_dtype(name, device)
        if d not in dtypes:
            dtypes.append(d)
    lowp = [d for d in dtypes if d != torch.float32]
    if cfg.matmul_peak:
        peak_dtypes = [torch.float32, *lowp]
        if device.type == "cuda":
            peak_dtypes = [torch.float32, torch.float16, torch.bfloat16]
        elif cpu_supports_bf16() and torch.bfloat16 not in peak_dtypes:
            peak_dtypes.append(torch.bfloat16)
        for d in peak_dtypes:
            g = matmul_peak_gflops(d, device)
            report["matmul_peak_gflops"][DTYPE_NAMES[d]] = round(g, 1)
            echo(f"matmul peak {DTYPE_NAMES[d]}: {g:.0f} GFLOP/s")
        report["matmul_peak_dtypes"] = [DTYPE_NAMES[d] for d in peak_dtypes]
    samples = load_samples(cfg.images, cfg.det_file, cfg.images_file, cfg.det_thr,
                           cfg.max_images) if cfg.images else []
    if samples:
        echo(f"{len(samples)} image(s), {sum(len(s.boxes) for s in samples)} box(es) from "
             f"{cfg.det_file or 'whole images'}")
    missing = [b for b, ok in (("onnxruntime", onnxruntime_available()),
                               ("openvino", openvino_available())) if not ok]
    for b in missing:
        if b in cfg.backends or b in cfg.peers:
            echo(f"{b} is not installed: skipping its engines "
                 f"(pip install 'vitpose[{'onnx' if b == 'onnxruntime' else b}]')")
    with tempfile.TemporaryDirectory(prefix="vitpose-bench-") as tmp:
        for name in cfg.models:
            entry = _bench_model(name, cfg, device, dtypes, missing, samples, Path(tmp), sync,
                                 report["matmul_peak_gflops"], echo)
            report["models"].append(entry)
            gc.collect()
    if cfg.matmul_peak:  # measured again at the end: the best of both counts as the peak
        runs = report.setdefault("matmul_peak_gflops_start_end", {})
        for name in report.pop("matmul_peak_dtypes"):
            first = report["matmul_peak_gflops"][name]
            last = round(matmul_peak_gflops(DTYPES[name], device), 1)
            runs[name] = [first, last]
            report["matmul_peak_gflops"][name] = max(first, last)
        _rescale_peak_fractions(report)
    if cfg.detectors:
        report["detectors"] = detector_runs(cfg, device, echo)
    if hasattr(os, "getloadavg"):
        report["system"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["system"]["bench_peak_rss_mb"] = peak_rss_mb()
    return report


def detector_runs(cfg: BenchConfig, device: torch.device,
                  echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Milliseconds per frame of each learned detector of `cfg.detectors` (names of
    `DETECTOR_MODELS`, random weights from their transformers config: no download) on every
    detector engine available on `device`, timed in interleaved rounds on one random frame of
    the detector's input size (640x640): pre-processing, the network and decoding, as
    `predict` calls it. The row of the engine ``--det-engine auto``'s rule
    (`choose_detector_engine`) picks on these timings says so."""
    from ..inference import detectors as det

    rows: list[dict[str, Any]] = []
    engines = det.available_detector_engines(str(device))
    for name in cfg.detectors:
        built: dict[str, Any] = {}
        notes: dict[str, str] = {}
        for engine in engines:
            try:
                d = det.random_detector(name, engine=engine, device=str(device), threshold=0.5)
            except VitPoseError as exc:
                notes[engine] = str(exc)
                echo(f"detector {name}: {engine} unavailable: {exc}")
                continue
            if d.engine == engine:
                built[engine] = d
        if not built:
            continue
        first = next(iter(built.values()))
        h, w = first.preprocess.output_hw(1, 1)
        frame = np.random.default_rng(cfg.seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
        timings = time_interleaved({e: (lambda d=d, f=frame: d(f)) for e, d in built.items()},
                                   warmup=max(1, cfg.warmup), rounds=cfg.rounds,
                                   min_seconds=cfg.min_seconds)
        # what --det-engine auto's rule keeps on these timings (it calibrates the same way)
        order = det.detector_engine_order("auto", first.preprocess.fixed_size, device)
        timed = {e: round(1e3 * timings[e].median, 2) for e in order if e in timings}
        auto = det.choose_detector_engine(timed, order) if timed else "torch"
        for engine, t in timings.items():
            row = {"detector": name, "engine": engine, "auto": engine == auto,
                   "input_hw": [h, w], "weights": "random", **t.as_dict(),
                   "ms_per_frame": round(1e3 * t.median, 2)}
            rows.append(row)
            echo(f"detector {name} / {engine}: {row['ms_per_frame']:.1f} ms per {w}x{h} frame"
                 + (" (auto)" if row["auto"] else ""))
        for engine, note in notes.items():
            rows.append({"detector": name, "engine": engine, "note": note})
        built.clear()
        gc.collect()
    return rows


def _rescale_peak_fractions(report: dict[str, Any]) -> None:
    peaks = report["matmul_peak_gflops"]
    for m in report["models"]:
        for r in m["runs"]:
            peak = peaks.get(r["dtype"])
            r["fraction_of_matmul_peak"] = round(r["gflop_per_s"] / peak, 3) if peak else None
        m["summary"] = summary(m)


def largest_batch(cfg: BenchConfig, device: torch.device) -> int:
    """The estimators' chunk size: the largest batch any run uses, so that a run at batch b is
    one model call of b crops (on CUDA that includes the paper's batch 64)."""
    sizes = [*cfg.batch_sizes, cfg.e2e_batch_size]
    if device.type == "cuda":
        sizes.append(cfg.paper_batch)
    return max(sizes)


def _our_variants(model: ViTPose, index: int, cfg: BenchConfig, device: torch.device,
                  dtypes: list[torch.dtype], missing: Sequence[str], onnx: Callable[[], Path],
                  notes: list[str], echo: Callable[[str], None]) -> list[_Variant]:
    out: list[_Variant] = []
    torch_dtypes = list(dtypes)
    if device.type == "cuda":  # the paper's comparison: fp16 and bf16 at batch 64
        torch_dtypes += [d for d in (torch.float16, torch.bfloat16) if d not in torch_dtypes]
    for backend in cfg.backends:
        if backend in missing:
            continue
        if backend == "torch":
            for d in torch_dtypes:
                for comp in ([False, True] if cfg.compile else [False]):
                    m = model if (d == torch.float32 and not comp) else optimize_for_inference(
                        copy.deepcopy(model), d, compile=comp)
                    eng = TorchEngine(m, index, d)
                    out.append(_Variant("vitpose", "torch", d, comp, eng, eng))
        elif backend in ("onnxruntime", "openvino"):
            for d in dtypes:
                try:
                    eng = build_engine(backend, model, index, d, device, onnx_path=onnx(),
                                       threads=cfg.threads)
                except EngineError as e:
                    notes.append(f"vitpose/{backend}/{DTYPE_NAMES[d]} skipped: {e}")
                    continue
                out.append(_Variant("vitpose", backend, eng.dtype, False, eng, eng))
        elif backend == "auto":
            for policy in dict.fromkeys(d for d in cfg.dtypes if d != INT8):  # never int8
                t0 = time.perf_counter()
                # auto_crops None: the calibrated choice (what a long job gets); N: what the
                # rule gives a job of N crops (no calibration unless it repays itself)
                eng, choice = select_engine(model, index, policy, device, use_cache=False,
                                            threads=cfg.threads, crops=cfg.auto_crops,
                                            calibrate=True if cfg.auto_crops is None else None)
                if isinstance(eng, CalibratingEngine):
                    # a job that calibrates during its calls: timed after its calibration,
                    # on one-person calls (a crop and its mirror), as a folder job makes them
                    x, calls = calibration_inputs(model)[[0, 4]].to(device), 0
                    while not eng.done and calls < 200:
                        eng(x)
                        calls += 1
                    echo(f"  auto ({policy}) calibrated during {calls} calls of 2 rows")
                echo(f"  auto ({policy}) chose {eng.label} in {time.perf_counter() - t0:.1f} s:"
                     f" {choice.reason}")
                out.append(_Variant("vitpose", "auto", eng.dtype, eng.compiled, eng, eng,
                                    policy=policy, choice=choice))
    return out


def _int8_variants(model: ViTPose, index: int, cfg: BenchConfig, device: torch.device,
                   missing: Sequence[str], est: PoseEstimator, samples: Sequence[Sample],
                   tmp: Path, entry: dict[str, Any], echo: Callable[[str], None]
                   ) -> list[_Variant]:
    """``--dtype int8``: each of `cfg.int8_variants` quantized on crops of the bench's images
    (their boxes and mirrors; else ``--calib DIR``, else the bundled image) and certified on
    held-out crops; the certificates go to ``entry["int8"]``."""
    from ..inference.engines.int8 import calibration_crops, int8_engine, with_mirrors
    out: list[_Variant] = []
    entry["int8"] = []
    if device.type != "cpu" or "openvino" in missing:
        entry["notes"].append("int8 skipped: it runs on the CPU with OpenVINO")
        return out
    if any(len(s.boxes) for s in samples):
        x = _crops_for(est, samples, cfg.int8_crops // 2, cfg.seed).float().cpu()
        x, source = with_mirrors(x), f"{len(samples)} bench image(s)"
    else:
        x, source = calibration_crops(model, calib=cfg.calib, max_crops=cfg.int8_crops)
    for variant in cfg.int8_variants:
        try:
            eng = int8_engine(model, index, crops=x, variant=variant, threads=cfg.threads,
                              folder=tmp / f"int8-{variant}")
        except EngineError as e:
            entry["notes"].append(f"int8 {variant} skipped: {e}")
            echo(f"  int8 {variant} skipped: {e}")
            continue
        cert = eng.certificate
        entry["int8"].append({"calibrated_on": source, **cert.as_dict()})
        out.append(_Variant("vitpose", "openvino", torch.int8, False, eng, eng,
                            policy=f"int8-{variant}"))
    return out


def _peer_variants(model: ViTPose, index: int, cfg: BenchConfig, device: torch.device,
                   dtypes: list[torch.dtype], missing: Sequence[str], onnx: Callable[[], Path],
                   notes: list[str]) -> list[_Variant]:
    """OpenVINO and ONNX Runtime on our ONNX export with their default settings."""
    out: list[_Variant] = []
    if device.type != "cpu":
        return out
    if "openvino" in cfg.peers and "openvino" not in missing:
        for d in dtypes:
            if d in (torch.float32, torch.bfloat16):
                eng = OpenVinoEngine(onnx(), d, tuned=False, threads=cfg.threads)
                out.append(_Variant("peer", "openvino", d, runner=eng, engine=eng))
    if "onnxruntime" in cfg.peers and "onnxruntime" not in missing:
        eng = OnnxRuntimeEngine(onnx(), threads=cfg.threads)
        out.append(_Variant("peer", "onnxruntime", torch.float32, runner=eng, engine=eng))
    return out


def _bench_model(name: str, cfg: BenchConfig, device: torch.device, dtypes: list[torch.dtype],
                 missing: Sequence[str], samples: list[Sample], tmp: Path,
                 sync: Callable[[], None], peaks: Mapping[str, float],
                 echo: Callable[[str], None]) -> dict[str, Any]:
    model, weights = _build_model(name, cfg.weights, cfg.device, cfg.seed)
    dataset = cfg.dataset if cfg.dataset is not None else model.datasets[0]
    index = model.dataset_index_of(dataset)
    flops = model_flops(model, index)
    variant = canonical_name(name) if not Path(name).exists() else None
    entry: dict[str, Any] = {
        "model": name, "variant": variant, "weights": weights, "dataset": model.datasets[index],
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "gflop_per_crop": round(flops / 1e9, 3), "coco_ap_readme": coco_ap_of(variant),
        "paper_fps_a100_batch64": PAPER_FPS_A100.get(_size_letter(variant) or ""),
        "runs": [], "end_to_end": [], "predict_memory": [], "first_result": [],
        "auto_choices": [], "notes": [],
    }
    echo(f"== {name} ({entry['params_M']}M params, {entry['gflop_per_crop']} GFLOP/crop, "
         f"weights: {weights})")
    batch = largest_batch(cfg, device)
    ref_est = PoseEstimator(model, dataset=dataset, batch_size=batch,
                            settings=TestSettings.for_dataset(model.datasets[index],
                                                              flip_test=False))
    crops = _crops_for(ref_est, samples, max(cfg.accuracy_crops, 1), cfg.seed)
    onnx_path: list[Path] = []

    def onnx() -> Path:  # our export, written once per model (in the bench's temp folder)
        if not onnx_path:
            onnx_path.append(onnx_file_for(model, index, tmp / "graphs"))
        return onnx_path[0]

    # -- the variants -----------------------------------------------------------------------
    variants = _our_variants(model, index, cfg, device, dtypes, missing, onnx, entry["notes"],
                             echo)
    if INT8 in cfg.dtypes:
        variants += _int8_variants(model, index, cfg, device, missing, ref_est, samples, tmp,
                                   entry, echo)
    for v in variants:
        if v.choice is not None:
            entry["auto_choices"].append({"policy": v.policy, **v.choice.as_dict()})
    variants += _peer_variants(model, index, cfg, device, dtypes, missing, onnx, entry["notes"])
    hf = None
    if cfg.transformers and "transformers" in cfg.peers:
        if model.cfg.is_moe and index != 0:
            entry["notes"].append("transformers reference skipped: its layout holds dataset 0 "
                                  "only")
        elif model.heads[0] is not model.head_for(index):
            entry["notes"].append("transformers reference skipped: not the main head")
        else:
            hf = load_transformers_reference(model, tmp / f"hf-{len(os.listdir(tmp))}", device)
            if hf is None:
                entry["notes"].append("transformers (with VitPose) is not installed or cannot "
                                      "hold this model: no reference runs")
    if hf is not None:
        hf_model = hf[0]
        moe = model.cfg.is_moe

        def hf_runner(dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
            def run(x: torch.Tensor) -> torch.Tensor:
                kw = {"dataset_index": torch.zeros(len(x), dtype=torch.long, device=device)} \
                    if moe else {}
                with torch.inference_mode(), torch.autocast(device.type, dtype=dtype,
                                                            enabled=dtype != torch.float32):
                    return hf_model(pixel_values=x, **kw).heatmaps.float()
            return run

        for d in dtypes:
            variants.append(_Variant("transformers", "torch", d, runner=hf_runner(d)))

    # -- accuracy against our fp32 output --------------------------------------------------
    ref = _chunked(ref_est.forward_heatmaps, crops, batch)
    accuracy: dict[str, dict[str, float]] = {}
    for v in variants:
        out = _chunked(v.runner, crops.to(device), batch)
        same, near = argmax_agreement(out, ref)
        accuracy[v.label] = {"rel_l2_vs_fp32": rel_l2(out, ref), "argmax_same": same,
                             "argmax_within_1px": near}

    # -- model throughput ------------------------------------------------------------------
    groups = [(b, variants) for b in cfg.batch_sizes]
    if device.type == "cuda" and cfg.paper_batch not in cfg.batch_sizes:
        groups.append((cfg.paper_batch, [v for v in variants if v.impl == "vitpose"
                                         and v.dtype != torch.float32]))
    for b, group in groups:
        x = _tile(crops, b).to(device)
        fns = {v.label: (lambda v=v, x=x: v.runner(x)) for v in group}
        timings = time_interleaved(fns, items=b, warmup=cfg.warmup, rounds=cfg.rounds,
                                   min_seconds=cfg.min_seconds, sync=sync)
        hf32 = timings.get("transformers/torch/float32")
        peer_rates = {v.label: (v.dtype, timings[v.label].rate) for v in group
                      if v.impl in ("transformers", "peer")}
        for v in group:
            t = timings[v.label]
            row: dict[str, Any] = {**v.fields(), "batch_size": b, **t.as_dict(),
                                   **accuracy[v.label]}
            gflops = flops * t.rate / 1e9
            row["gflop_per_s"] = round(gflops, 1)
            peak = peaks.get(DTYPE_NAMES[v.dtype])
            row["fraction_of_matmul_peak"] = round(gflops / peak, 3) if peak else None
            row["vs_transformers_fp32"] = round(t.rate / hf32.rate, 3) if hf32 else None
            hf_same = timings.get(f"transformers/torch/{DTYPE_NAMES[v.dtype]}")
            row["vs_transformers_same_dtype"] = round(t.rate / hf_same.rate, 3) \
                if hf_same else None
            _peer_ratios(row, v, t.rate, peer_rates)
            if device.type == "cuda" and b == cfg.paper_batch:
                row["paper_fps_a100"] = entry["paper_fps_a100_batch64"]
            entry["runs"].append(row)
            echo(f"  model  {v.label:34s} batch {b:3d}: {t.rate:8.2f} crops/s "
                 f"({1e3 * t.median:.1f} ms/batch), rel L2 {row['rel_l2_vs_fp32']:.1e}")
        if device.type == "cuda":
            for v in group:
                torch.cuda.reset_peak_memory_stats(device)
                v.runner(x)
                sync()
                peak_mb = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
                for row in entry["runs"]:
                    if row["batch_size"] == b and row_label(row) == v.label:
                        row["cuda_peak_mb"] = peak_mb
    entry["bench_peak_rss_mb_after_model_runs"] = peak_rss_mb()

    # -- end to end, then `vitpose predict` in separate processes ---------------------------
    if samples:
        def make_estimator(v: _Variant) -> PoseEstimator:
            s = TestSettings.for_dataset(model.datasets[index], flip_test=cfg.flip)
            assert v.engine is not None
            engine = _TwoCalls(v.engine, cfg.flip) if v.impl == "peer" else v.engine
            return PoseEstimator(model, dataset=dataset, settings=s, engine=engine,
                                 batch_size=cfg.e2e_batch_size)

        e2e_variants = [v for v in variants
                        if v.impl != "peer" or v.backend == "openvino"]
        flip_pairs = ref_est._flip_pairs if cfg.flip else None
        entry["end_to_end"] = _end_to_end_rows(e2e_variants, make_estimator, hf, flip_pairs,
                                               samples, cfg, echo)
        if cfg.predict_memory or cfg.first_result:
            ckpt = save_checkpoint(model, tmp / f"{Path(name).stem}-bench.pth")
            if cfg.predict_memory:
                entry["predict_memory"] = _predict_memory(model, index, ckpt, dtypes, cfg,
                                                          device, tmp, echo)
            if cfg.first_result:
                entry["first_result"] = _first_result(model, index, ckpt, samples[0], cfg,
                                                      device, tmp, echo)
    entry["summary"] = summary(entry)
    return entry


def _peer_ratios(row: dict[str, Any], v: _Variant, rate: float,
                 peers: Mapping[str, tuple[torch.dtype, float]]) -> None:
    """Ratios to the fastest peer in any precision, and to the fastest peer of the same class
    (float32 against float32, lower precision against lower precision)."""
    if not peers:
        row["vs_fastest_peer"] = row["vs_fastest_peer_same_class"] = None
        return
    best = max(peers, key=lambda k: peers[k][1])
    row["fastest_peer"] = best
    row["vs_fastest_peer"] = round(rate / peers[best][1], 3)
    same = {k: r for k, (d, r) in peers.items() if (d == torch.float32) == (v.dtype ==
                                                                           torch.float32)}
    if same:
        best_same = max(same, key=same.__getitem__)
        row["fastest_peer_same_class"] = best_same
        row["vs_fastest_peer_same_class"] = round(rate / same[best_same], 3)
    else:
        row["vs_fastest_peer_same_class"] = None


def _end_to_end_rows(variants: Sequence[_Variant], make_estimator: Callable[[_Variant],
                     PoseEstimator], hf: tuple[Any, Any] | None, flip_pairs: np.ndarray | None,
                     samples: Sequence[Sample], cfg: BenchConfig, echo: Callable[[str], None]
                     ) -> list[dict[str, Any]]:
    """End-to-end passes of every variant in interleaved order; the median pass of each."""
    e2e: list[tuple[dict[str, Any], Callable[[Sequence[Sample]], dict[str, Any]]]] = []
    for v in variants:
        if v.impl in ("vitpose", "peer"):
            est = make_estimator(v)
            e2e.append((v.fields(), lambda ss, est=est: pipeline_end_to_end(est, ss)))
        elif hf is not None:
            e2e.append((v.fields(), lambda ss, d=v.dtype: transformers_end_to_end(
                hf[0], hf[1], ss, flip_pairs, d, cfg.e2e_batch_size)))
    if not e2e:
        return []
    for fields, fn in e2e:  # warm-up: allocations; compilation of every batch shape
        fn(samples if fields["compile"] else samples[:1])
    passes: list[list[dict[str, Any]]] = [[] for _ in e2e]
    for r in range(max(cfg.e2e_repeats, 1)):
        order = list(range(len(e2e)))
        k = r % len(e2e)
        for i in order[k:] + order[:k]:
            time.sleep(SETTLE_SECONDS)  # the previous pass's runtime threads go idle first
            passes[i].append(e2e[i][1](samples))
    rows = []
    for (fields, _), runs in zip(e2e, passes, strict=True):
        runs = sorted(runs, key=lambda rec: rec["seconds"])
        rows.append({**fields, **runs[(len(runs) - 1) // 2], "flip_test": cfg.flip,
                     "batch_size": cfg.e2e_batch_size, "repeats": len(runs)})
    hf32 = next((r for r in rows if row_label(r) == "transformers/torch/float32"), None)
    ov_peers = [r for r in rows if r["impl"] == "peer"]
    ov_best = max(ov_peers, key=lambda r: r["instances_per_s"]) if ov_peers else None
    for rec in rows:
        rec["vs_transformers_fp32"] = round(rec["instances_per_s"] / hf32["instances_per_s"], 3) \
            if hf32 and hf32["instances_per_s"] else None
        rec["vs_openvino_reference"] = round(rec["instances_per_s"] / ov_best["instances_per_s"],
                                             3) if ov_best else None
        echo(f"  e2e    {row_label(rec):34s}: {rec['instances_per_s']:8.2f} instances/s "
             f"({rec['images']} images, {rec['instances']} instances, {rec['seconds']:.2f} s, "
             f"non-model {100 * rec['non_model_fraction']:.1f}%)")
    return rows


def _predict_args(cfg: BenchConfig, images: str, ckpt: Path, out: Path, device: torch.device,
                  dataset: str) -> list[str]:
    cmd = ["predict", images, "--model", str(ckpt), "--device", str(device),
           "--batch-size", str(cfg.e2e_batch_size), "--no-draw", "--out", str(out),
           "--overwrite", "--dataset", dataset]
    if cfg.det_file:
        cmd += ["--det-file", str(cfg.det_file), "--det-thr", str(cfg.det_thr)]
        if cfg.images_file:
            cmd += ["--images-file", str(cfg.images_file)]
    else:
        cmd += ["--detector", "whole-image"]
    if not cfg.flip:
        cmd.append("--no-flip")
    return cmd


def _run_predict(cmd: list[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    code, peak, text = run_with_peak_rss("vitpose.cli", cmd, env)
    rec = {"exit_code": code, "peak_rss_mb": round(peak, 1) if peak else None,
           "seconds": round(time.perf_counter() - t0, 2), "command": "vitpose " + " ".join(cmd)}
    if code != 0:
        rec["output_tail"] = text[-2000:]
    return rec


def _predict_memory(model: ViTPose, index: int, ckpt: Path, dtypes: Sequence[torch.dtype],
                    cfg: BenchConfig, device: torch.device, tmp: Path,
                    echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Peak resident memory of a separate `vitpose predict` (default backend) on the bench
    images, per dtype (the model is read back from a checkpoint with ``--model PATH``)."""
    rows = []
    env = {**os.environ, "VITPOSE_CACHE": str(tmp / "cache-memory")}
    for d in dtypes:
        cmd = _predict_args(cfg, str(cfg.images), ckpt, tmp / f"predict-{DTYPE_NAMES[d]}.json",
                            device, model.datasets[index]) + ["--dtype", DTYPE_NAMES[d]]
        rec = {"dtype": DTYPE_NAMES[d], **_run_predict(cmd, env)}
        rows.append(rec)
        echo(f"  memory vitpose predict {DTYPE_NAMES[d]}: peak RSS {rec['peak_rss_mb']} MiB "
             f"(exit {rec['exit_code']})")
    return rows


def _first_result(model: ViTPose, index: int, ckpt: Path, sample: Sample, cfg: BenchConfig,
                  device: torch.device, tmp: Path, echo: Callable[[str], None]
                  ) -> list[dict[str, Any]]:
    """Time to first result of `vitpose predict` on one image (process start to exit) in the
    exact path (``--dtype float32``, so that every run computes in the same precision whatever
    the accuracy gate decides on these weights): the torch path (what `predict` ran before
    engines), then ``--backend auto`` with an empty cache folder (calibration, export,
    compilation) and again with the cache it left."""
    cache = tmp / "cache-first-result"
    env = {**os.environ, "VITPOSE_CACHE": str(cache)}
    rows = []
    for label, backend in (("torch", "torch"), ("auto, cold cache", "auto"),
                           ("auto, warm cache", "auto")):
        cmd = _predict_args(cfg, str(sample.path), ckpt, tmp / "first.json", device,
                            model.datasets[index]) + ["--backend", backend, "--dtype", "float32"]
        rec = {"run": label, **_run_predict(cmd, env)}
        rows.append(rec)
        echo(f"  first result, {label}: {rec['seconds']:.2f} s, peak RSS {rec['peak_rss_mb']} "
             f"MiB (exit {rec['exit_code']})")
    return rows

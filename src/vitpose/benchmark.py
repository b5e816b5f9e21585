"""Speed and memory measurements behind `vitpose bench`.

What is measured, for each model and each variant asked (implementation x backend x dtype):

* **model throughput**: crops/s of the model call alone (no flip), at each batch size, timed in
  interleaved rounds (variant A, B, C, A, B, C, ...) so that a noisy machine hurts every
  variant alike; the median round is reported. Our variants run `PoseEstimator.forward_heatmaps`
  (the one test-time model path) on a model prepared by `optimize_for_inference`; the reference
  is the ``transformers`` VitPose with the same weights (`save_hf_pretrained`), in fp32 eager and
  under autocast; ONNX Runtime runs the file of `export_onnx`.
* **accuracy of each variant** against our fp32 output on real crops: relative L2 error of the
  heatmaps and the fraction of keypoints with the same arg-max.
* **end-to-end throughput**: read image -> boxes (detections file) -> crops -> model with flip
  test -> decoding -> rescoring, with the time of each stage; for ``transformers`` its image
  processor, two forward passes (image and mirror, ``flip_pairs``) and its post-processing.
* **hardware reference**: the best fp32 / bf16 / fp16 matrix-multiply rate of the device
  (GFLOP/s), the model's FLOPs per crop (`torch.utils.flop_counter`), and so the fraction of
  the matmul peak the model reaches.
* **memory**: peak resident memory of a separate ``vitpose predict`` process per dtype
  (``wait4`` rusage, no psutil), the bench process's own peak, and CUDA peak allocations.

`run_benchmark` returns a JSON-ready dict; `format_report` prints it as a table and
`draw_chart` draws the throughput-vs-AP chart of the original README with OpenCV (AP from the
README's tables, throughput measured here). Timing never runs in unit tests beyond a smoke run.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch

from .checkpoints import save_checkpoint, save_hf_pretrained
from .export import (
    DTYPES,
    OnnxPoseEstimator,
    OnnxPoseModel,
    cpu_supports_bf16,
    export_onnx,
    onnxruntime_available,
    optimize_for_inference,
    plain_config,
    rel_l2,
    resolve_dtype,
)
from .hub import RELEASED_WEIGHTS, load_model
from .inference.detectors import find_boxes, load_coco_detections, sanitize_boxes
from .inference.io import iter_inputs, read_image
from .inference.pipeline import PoseEstimator, TestSettings
from .models.vitpose import ViTPose, build_model, canonical_name

__all__ = [
    "PAPER_FPS_A100",
    "BenchConfig",
    "Sample",
    "StageClock",
    "Timing",
    "coco_ap_of",
    "draw_chart",
    "format_report",
    "load_samples",
    "load_transformers_reference",
    "matmul_peak_gflops",
    "model_flops",
    "peak_rss_mb",
    "pipeline_end_to_end",
    "run_benchmark",
    "run_with_peak_rss",
    "time_interleaved",
    "transformers_end_to_end",
]

log = logging.getLogger(__name__)

#: Throughput in the paper (A100, batch 64, 256x192, no flip test), images/s, by model size.
PAPER_FPS_A100 = {"b": 944.0, "l": 411.0, "h": 241.0}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


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
    parts = key.split("-")
    for p in parts[1:]:
        if p in ("s", "b", "l", "h", "g"):
            return p
    return None


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

@dataclass
class Timing:
    """Wall-clock seconds of repeated calls, each processing `items` items."""

    seconds: list[float]
    items: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def rate(self) -> float:
        """Items per second at the median call."""
        return self.items / self.median

    def as_dict(self) -> dict[str, Any]:
        return {"items_per_call": self.items, "calls": len(self.seconds),
                "median_ms": round(1e3 * self.median, 3), "best_ms": round(1e3 * self.best, 3),
                "items_per_s": round(self.rate, 3),
                "best_items_per_s": round(self.items / self.best, 3)}


def _sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_interleaved(fns: Mapping[str, Callable[[], Any]], items: int = 1, warmup: int = 1,
                     rounds: int = 5, min_seconds: float = 0.0, max_rounds: int = 200,
                     sync: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Time several callables in interleaved rounds (each round calls each once, rotating order).

    Rounds continue until both `rounds` and `min_seconds` are reached (at most `max_rounds`).
    Interleaving makes a background load on the machine affect every variant alike.
    """
    sync = sync or (lambda: None)
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
        sync()
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    r = 0
    while r < max_rounds and (r < rounds or time.perf_counter() - start < min_seconds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - t0)
        r += 1
    return {n: Timing(times[n], items) for n in names}


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                       sizes: Sequence[int] | None = None, seconds: float = 1.0) -> float:
    """Best matrix-multiply rate (GFLOP/s, 2 n^3 per product) over square sizes `sizes`.

    The best single call over about `seconds` per size is kept: on a shared machine the
    fastest call is the one least disturbed by other processes.
    """
    device = torch.device(device)
    sizes = sizes or ((4096, 8192) if device.type == "cuda" else (1024, 2048, 3072))
    sync = _sync_for(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    best_rate = 0.0
    for n in sizes:
        a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        for _ in range(2):
            torch.mm(a, b, out=out)
        sync()
        best = math.inf
        start = time.perf_counter()
        calls = 0
        while calls < 3 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            sync()
            best = min(best, time.perf_counter() - t0)
            calls += 1
        best_rate = max(best_rate, 2.0 * n ** 3 / best / 1e9)
        del a, b, out
    return best_rate


def model_flops(model: ViTPose, dataset: int | str | None = None) -> float:
    """FLOPs (multiply-add = 2) of one crop through backbone and head of `dataset`.

    Counted by `torch.utils.flop_counter` on a meta-device copy of the plain single-dataset model
    (ViTPose+ experts cost the same as the folded plain model), so no compute is spent.
    """
    from torch.utils.flop_counter import FlopCounterMode
    cfg = plain_config(model.cfg, model.dataset_index_of(dataset if dataset is not None else 0))
    with torch.device("meta"):
        m = ViTPose(cfg).eval()
        x = torch.zeros(1, 3, *cfg.img_size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            m.keypoint_head(m.backbone(x))
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def _maxrss_mb(value: int) -> float:
    return value / 2 ** 20 if sys.platform == "darwin" else value / 1024  # bytes vs KiB


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far (MiB), None where unavailable."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    return _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


_HWM_PRELUDE = """
import atexit, runpy, sys
def _report_hwm(path=sys.argv.pop(1)):
    try:
        with open('/proc/self/status') as fh:
            kb = next(int(l.split()[1]) for l in fh if l.startswith('VmHWM:'))
        with open(path, 'w') as out:
            out.write(str(kb))
    except (OSError, StopIteration, ValueError):
        pass
atexit.register(_report_hwm)
module = sys.argv.pop(1)
sys.argv[0] = module
runpy.run_module(module, run_name='__main__', alter_sys=True)
"""


def run_with_peak_rss(module: str, args: Sequence[str], env: Mapping[str, str] | None = None
                      ) -> tuple[int, float | None, str]:
    """Run ``python -m module args`` in a fresh process; return its exit code, its peak resident
    memory (MiB) and its output.

    The peak is the child's own ``VmHWM`` (Linux), written at exit. The rusage ``ru_maxrss`` of
    ``wait4`` is not used where ``VmHWM`` is available: Linux carries the parent's resident size
    at fork time into the child's ``ru_maxrss``, so a child of a large process would report the
    parent's size.
    """
    with tempfile.TemporaryDirectory() as tmp:
        hwm_file = Path(tmp) / "hwm"
        cmd = [sys.executable, "-c", _HWM_PRELUDE, str(hwm_file), module, *args]
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    env=dict(env) if env is not None else None)
            peak = None
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                peak = _maxrss_mb(usage.ru_maxrss)
            else:  # pragma: no cover
                proc.wait()
            out.seek(0)
            text = out.read().decode(errors="replace")
        if hwm_file.is_file():
            peak = int(hwm_file.read_text()) / 1024
    return proc.returncode, peak, text


# --------------------------------------------------------------------------------------------
# Sample images and boxes
# --------------------------------------------------------------------------------------------

@dataclass
class Sample:
    """One image and its person boxes ``[N, 5]`` (x, y, w, h, score; already sanitised)."""

    path: Path
    boxes: np.ndarray
    image_hw: tuple[int, int]


def load_samples(images: str | os.PathLike, det_file: str | os.PathLike | None = None,
                 images_file: str | os.PathLike | None = None, det_thr: float = 0.0,
                 max_images: int | None = None) -> list[Sample]:
    """Images (file, folder or glob) with boxes from a COCO detections file (whole image
    without one). Boxes are sanitised here so every implementation gets the same boxes."""
    paths = iter_inputs(images).image_paths
    if max_images:
        paths = paths[:max_images]
    mapping = load_coco_detections(det_file, images_file, score_thr=det_thr) if det_file else None
    samples = []
    for p in paths:
        hw = read_image(p).shape[:2]
        boxes = find_boxes(mapping, p) if mapping is not None else None
        if boxes is None:
            boxes = np.array([[0, 0, hw[1], hw[0], 1.0]], np.float32)
        kept, _ = sanitize_boxes(boxes, hw)
        samples.append(Sample(Path(p), kept, hw))
    return samples


# --------------------------------------------------------------------------------------------
# End-to-end runs
# --------------------------------------------------------------------------------------------

class StageClock:
    """Accumulates wall time per named stage (``with clock('read'): ...`` or `wrap`)."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.sync = sync or (lambda: None)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[stage] += time.perf_counter() - t0

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(stage):
                return fn(*args, **kwargs)
        return timed


def _e2e_record(stages: Mapping[str, float], total: float, images: int, instances: int
                ) -> dict[str, Any]:
    stages = {k: round(v, 4) for k, v in stages.items()}
    model = stages.get("model", 0.0)
    non_model = max(total - model, 0.0)
    read = stages.get("read", 0.0)
    return {"seconds": round(total, 4), "images": images, "instances": instances,
            "instances_per_s": round(instances / total, 3) if total else None,
            "images_per_s": round(images / total, 3) if total else None,
            "stages_s": stages,
            "non_model_fraction": round(non_model / total, 4) if total else None,
            "non_model_fraction_without_read": round((non_model - read) / total, 4)
            if total else None}


def pipeline_end_to_end(estimator: PoseEstimator, samples: Sequence[Sample]) -> dict[str, Any]:
    """Run `estimator.predict_many` on the samples (the estimator reads each file), timing
    stages by wrapping the estimator's own steps: read, crop (box -> affine crop ->
    normalised tensor), model (with flip test), decode (heatmaps -> image keypoints) and
    postprocess (rescoring); 'other' is the rest (box checks, batching)."""
    est = copy.copy(estimator)  # instrument a shallow copy; the model is shared
    clock = StageClock(_sync_for(est.device))
    est._load = clock.wrap("read", est._load)
    est.crops = clock.wrap("crop", est.crops)
    est.forward_heatmaps = clock.wrap("model", est.forward_heatmaps)
    split_decode = hasattr(est, "decode")  # predict_crops = decode(forward_heatmaps(...))
    if split_decode:
        est.decode = clock.wrap("decode", est.decode)
    else:
        est.predict_crops = clock.wrap("_model_and_decode", est.predict_crops)
    est._fill = clock.wrap("postprocess", est._fill)
    t0 = time.perf_counter()
    instances = 0
    for result in est.predict_many((str(s.path), s.boxes, None) for s in samples):
        instances += len(result.instances)
    total = time.perf_counter() - t0
    stages = dict(clock.seconds)
    if not split_decode:
        stages["decode"] = stages.pop("_model_and_decode", 0.0) - stages.get("model", 0.0)
    stages["other"] = max(total - sum(stages.values()), 0.0)
    return _e2e_record(stages, total, len(samples), instances)


def transformers_end_to_end(hf_model: torch.nn.Module, processor: Any,
                            samples: Sequence[Sample], flip_pairs: np.ndarray | None,
                            dtype: torch.dtype = torch.float32, batch_size: int = 16
                            ) -> dict[str, Any]:
    """The ``transformers`` way: its image processor (affine crops + normalisation), the
    model on the crops and, for the flip test, on the mirrored crops with ``flip_pairs`` (two
    forward passes), the average, then ``post_process_pose_estimation``."""
    device = next(hf_model.parameters()).device
    clock = StageClock(_sync_for(device))
    fp = torch.as_tensor(np.asarray(flip_pairs), device=device) if flip_pairs is not None else None
    moe = getattr(hf_model.config.backbone_config, "num_experts", 1) > 1
    instances = 0
    t0 = time.perf_counter()
    for s in samples:
        with clock("read"):
            image = read_image(s.path)
        if not len(s.boxes):
            continue
        boxes = [s.boxes[:, :4].tolist()]
        with clock("preprocess"):
            pixels = processor(images=[image], boxes=boxes, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(device)
        with clock("model"), torch.inference_mode(), torch.autocast(
                device.type, dtype=dtype, enabled=dtype != torch.float32):
            outs = []
            for i in range(0, len(pixels), batch_size):
                x = pixels[i:i + batch_size]
                kw = {"dataset_index": torch.zeros(len(x), dtype=torch.long, device=device)} \
                    if moe else {}
                hm = hf_model(pixel_values=x, **kw).heatmaps.float()
                if fp is not None:
                    hm_f = hf_model(pixel_values=x.flip(3), flip_pairs=fp, **kw).heatmaps.float()
                    hm = (hm + hm_f) * 0.5
                outs.append(hm)
            heatmaps = torch.cat(outs)
        with clock("postprocess"):
            res = processor.post_process_pose_estimation(SimpleNamespace(heatmaps=heatmaps),
                                                         boxes=boxes)
        instances += len(res[0])
    total = time.perf_counter() - t0
    stages = dict(clock.seconds)
    stages["other"] = max(total - sum(stages.values()), 0.0)
    return _e2e_record(stages, total, len(samples), instances)


def load_transformers_reference(model: ViTPose, folder: str | os.PathLike,
                                device: str | torch.device = "cpu") -> tuple[Any, Any] | None:
    """The ``transformers`` VitPose with `model`'s weights and its image processor, or None
    when transformers (with VitPose) is not installed or cannot represent the model."""
    try:
        import transformers
        from transformers import VitPoseForPoseEstimation
    except ImportError:
        return None
    try:
        from transformers import VitPoseImageProcessorPil as Processor
    except ImportError:  # older transformers: one processor class
        from transformers import VitPoseImageProcessor as Processor
    try:
        save_hf_pretrained(model, folder)
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        try:
            hf = VitPoseForPoseEstimation.from_pretrained(str(folder))
        finally:
            transformers.logging.set_verbosity(verbosity)
            transformers.logging.enable_progress_bar()
    except Exception as e:  # noqa: BLE001 - the model may not fit the transformers layout
        log.warning("no transformers reference for this model: %s", e)
        return None
    h, w = model.input_size
    processor = Processor(size={"height": h, "width": w})
    return hf.to(device).eval(), processor


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------

@dataclass
class BenchConfig:
    """What `run_benchmark` measures (see ``vitpose bench --help``)."""

    models: list[str] = field(default_factory=lambda: ["vitpose-b-simple"])
    weights: str | None = None
    dataset: str | None = None
    device: str = "cpu"
    dtypes: list[str] = field(default_factory=lambda: ["float32", "auto"])
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    backends: list[str] = field(default_factory=lambda: ["torch"])
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
    paper_batch: int = 64
    threads: int | None = None
    seed: int = 0


@dataclass
class _Variant:
    impl: str  # "vitpose" or "transformers"
    backend: str  # "torch" or "onnxruntime"
    dtype: torch.dtype
    compile: bool = False
    runner: Callable[[torch.Tensor], torch.Tensor] | None = None
    estimator: PoseEstimator | None = None

    @property
    def label(self) -> str:
        extra = "+compile" if self.compile else ""
        return f"{self.impl}/{self.backend}/{_DTYPE_NAMES[self.dtype]}{extra}"


def _build_model(name: str, weights: str | None, device: str, seed: int) -> tuple[ViTPose, str]:
    """A model for benchmarking: variant names get random weights unless `weights` is given."""
    if weights is None and canonical_name(name) and not Path(name).exists():
        torch.manual_seed(seed)
        return build_model(name).eval().to(device), "random"
    return load_model(name, weights=weights, device=device), str(weights or name)


def _system_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "opencv": cv2.__version__, "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "cpu_native_bf16": cpu_supports_bf16(), "device": str(device),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for mod in ("transformers", "onnxruntime"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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


def _argmax_agreement(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Fractions of keypoints with the same heatmap arg-max, and within one heatmap pixel."""
    a = out.float().flatten(2).argmax(-1).cpu()
    b = ref.float().flatten(2).argmax(-1).cpu()
    w = ref.shape[-1]
    same = (a == b).float().mean().item()
    near = (((a // w - b // w).abs() <= 1) & ((a % w - b % w).abs() <= 1)).float().mean().item()
    return same, near


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int
             ) -> torch.Tensor:
    return torch.cat([fn(x[i:i + size]).float().cpu() for i in range(0, len(x), size)])


def run_benchmark(cfg: BenchConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything in `cfg`; returns the JSON-ready report (see the module docstring)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    sync = _sync_for(device)
    report: dict[str, Any] = {"system": _system_info(device), "config": dict(vars(cfg)),
                              "matmul_peak_gflops": {}, "models": []}
    dtypes: list[torch.dtype] = []
    for name in cfg.dtypes:
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
            report["matmul_peak_gflops"][_DTYPE_NAMES[d]] = round(g, 1)
            echo(f"matmul peak {_DTYPE_NAMES[d]}: {g:.0f} GFLOP/s")
        report["matmul_peak_dtypes"] = [_DTYPE_NAMES[d] for d in peak_dtypes]
    samples = load_samples(cfg.images, cfg.det_file, cfg.images_file, cfg.det_thr,
                           cfg.max_images) if cfg.images else []
    if samples:
        echo(f"{len(samples)} image(s), {sum(len(s.boxes) for s in samples)} box(es) from "
             f"{cfg.det_file or 'whole images'}")
    use_ort = "onnxruntime" in cfg.backends
    if use_ort and not onnxruntime_available():
        echo("onnxruntime is not installed: skipping the onnxruntime backend "
             "(pip install 'vitpose[onnx]')")
        use_ort = False
    with tempfile.TemporaryDirectory(prefix="vitpose-bench-") as tmp:
        for name in cfg.models:
            entry = _bench_model(name, cfg, device, dtypes, use_ort, samples, Path(tmp), sync,
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
    if hasattr(os, "getloadavg"):
        report["system"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["system"]["bench_peak_rss_mb"] = peak_rss_mb()
    return report


def _rescale_peak_fractions(report: dict[str, Any]) -> None:
    peaks = report["matmul_peak_gflops"]
    for m in report["models"]:
        for r in m["runs"]:
            peak = peaks.get(r["dtype"])
            r["fraction_of_matmul_peak"] = round(r["gflop_per_s"] / peak, 3) if peak else None
        m["summary"] = _summary(m)


def largest_batch(cfg: BenchConfig, device: torch.device) -> int:
    """The estimators' chunk size: the largest batch any run uses, so that a run at batch b is
    one model call of b crops (on CUDA that includes the paper's batch 64)."""
    sizes = [*cfg.batch_sizes, cfg.e2e_batch_size]
    if device.type == "cuda":
        sizes.append(cfg.paper_batch)
    return max(sizes)


def _bench_model(name: str, cfg: BenchConfig, device: torch.device, dtypes: list[torch.dtype],
                 use_ort: bool, samples: list[Sample], tmp: Path, sync: Callable[[], None],
                 peaks: Mapping[str, float], echo: Callable[[str], None]) -> dict[str, Any]:
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
        "runs": [], "end_to_end": [], "predict_memory": [], "notes": [],
    }
    echo(f"== {name} ({entry['params_M']}M params, {entry['gflop_per_crop']} GFLOP/crop, "
         f"weights: {weights})")
    settings = TestSettings.for_dataset(model.datasets[index], flip_test=False)
    batch = largest_batch(cfg, device)

    def estimator(m: ViTPose, dtype: torch.dtype, flip: bool, bs: int) -> PoseEstimator:
        s = TestSettings.for_dataset(model.datasets[index], flip_test=flip)
        return PoseEstimator(m, dataset=dataset, settings=s, batch_size=bs, dtype=dtype)

    ref_est = PoseEstimator(model, dataset=dataset, settings=settings, batch_size=batch)
    crops = _crops_for(ref_est, samples, max(cfg.accuracy_crops, 1), cfg.seed)

    # -- the variants -----------------------------------------------------------------------
    variants: list[_Variant] = []
    models_by_dtype: dict[tuple[torch.dtype, bool], ViTPose] = {}
    torch_dtypes = list(dtypes)
    if device.type == "cuda":  # the paper's comparison: fp16 and bf16 at batch 64
        torch_dtypes += [d for d in (torch.float16, torch.bfloat16) if d not in torch_dtypes]
    if "torch" in cfg.backends or not cfg.backends:
        for d in torch_dtypes:
            for comp in ([False, True] if cfg.compile else [False]):
                m = model if (d == torch.float32 and not comp) else optimize_for_inference(
                    copy.deepcopy(model), d, compile=comp)
                models_by_dtype[(d, comp)] = m
                est = estimator(m, d, False, batch)
                variants.append(_Variant("vitpose", "torch", d, comp, est.forward_heatmaps, est))
    if use_ort:
        if device.type == "cuda":
            entry["notes"].append("onnxruntime runs on its own provider choice (CUDA if the "
                                  "onnxruntime-gpu build is installed)")
        path = tmp / f"{Path(name).stem}.onnx"
        exp = export_onnx(model, path, dataset=index)
        onnx_model = OnnxPoseModel(path, threads=cfg.threads)
        entry["onnx_export_rel_error"] = exp.max_rel_error
        v = _Variant("vitpose", "onnxruntime", torch.float32, runner=onnx_model)
        v.estimator = OnnxPoseEstimator(onnx_model, settings=settings, batch_size=batch)
        variants.append(v)
    hf = None
    if cfg.transformers:
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
        same, near = _argmax_agreement(out, ref)
        accuracy[v.label] = {"rel_l2_vs_fp32": rel_l2(out, ref), "argmax_same": same,
                             "argmax_within_1px": near}

    # -- model throughput ------------------------------------------------------------------
    groups = [(b, variants) for b in cfg.batch_sizes]
    if device.type == "cuda" and cfg.paper_batch not in cfg.batch_sizes:
        groups.append((cfg.paper_batch, [v for v in variants if v.impl == "vitpose"
                                         and v.backend == "torch" and v.dtype != torch.float32]))
    for b, group in groups:
        x = _tile(crops, b).to(device)
        fns = {v.label: (lambda v=v, x=x: v.runner(x)) for v in group}
        timings = time_interleaved(fns, items=b, warmup=cfg.warmup, rounds=cfg.rounds,
                                   min_seconds=cfg.min_seconds, sync=sync)
        hf32 = timings.get("transformers/torch/float32")
        for v in group:
            t = timings[v.label]
            row: dict[str, Any] = {"impl": v.impl, "backend": v.backend,
                                   "dtype": _DTYPE_NAMES[v.dtype], "compile": v.compile,
                                   "batch_size": b, **t.as_dict(), **accuracy[v.label]}
            gflops = flops * t.rate / 1e9
            row["gflop_per_s"] = round(gflops, 1)
            peak = peaks.get(_DTYPE_NAMES[v.dtype])
            row["fraction_of_matmul_peak"] = round(gflops / peak, 3) if peak else None
            row["vs_transformers_fp32"] = round(t.rate / hf32.rate, 3) if hf32 else None
            hf_same = timings.get(f"transformers/torch/{_DTYPE_NAMES[v.dtype]}")
            row["vs_transformers_same_dtype"] = round(t.rate / hf_same.rate, 3) \
                if hf_same else None
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
                    if row["batch_size"] == b and _row_label(row) == v.label:
                        row["cuda_peak_mb"] = peak_mb
    entry["bench_peak_rss_mb_after_model_runs"] = peak_rss_mb()

    # -- end to end, then the peak memory of `vitpose predict` --------------------------------
    if samples:
        def make_estimator(v: _Variant) -> PoseEstimator:
            if v.backend == "torch":
                return estimator(models_by_dtype[(v.dtype, v.compile)], v.dtype, cfg.flip,
                                 cfg.e2e_batch_size)
            assert v.estimator is not None
            est = v.estimator.with_settings(flip_test=cfg.flip)
            est.batch_size = cfg.e2e_batch_size
            return est

        flip_pairs = ref_est._flip_pairs if cfg.flip else None
        entry["end_to_end"] = _end_to_end_rows(variants, make_estimator, hf, flip_pairs, samples,
                                               cfg, echo)
        if cfg.predict_memory:
            entry["predict_memory"] = _predict_memory(model, index, name, dtypes, cfg, device,
                                                      tmp, echo)
    entry["summary"] = _summary(entry)
    return entry


def _row_label(row: Mapping[str, Any]) -> str:
    return f"{row['impl']}/{row['backend']}/{row['dtype']}" + ("+compile" if row["compile"]
                                                              else "")


def _end_to_end_rows(variants: Sequence[_Variant], make_estimator: Callable[[_Variant],
                     PoseEstimator], hf: tuple[Any, Any] | None, flip_pairs: np.ndarray | None,
                     samples: Sequence[Sample], cfg: BenchConfig, echo: Callable[[str], None]
                     ) -> list[dict[str, Any]]:
    """End-to-end passes of every variant in interleaved order; the median pass of each."""
    e2e: list[tuple[dict[str, Any], Callable[[Sequence[Sample]], dict[str, Any]]]] = []
    for v in variants:
        fields = {"impl": v.impl, "backend": v.backend, "dtype": _DTYPE_NAMES[v.dtype],
                  "compile": v.compile}
        if v.impl == "vitpose":
            est = make_estimator(v)
            e2e.append((fields, lambda ss, est=est: pipeline_end_to_end(est, ss)))
        elif hf is not None:
            e2e.append((fields, lambda ss, d=v.dtype: transformers_end_to_end(
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
            passes[i].append(e2e[i][1](samples))
    rows = []
    for (fields, _), runs in zip(e2e, passes, strict=True):
        runs = sorted(runs, key=lambda rec: rec["seconds"])
        rows.append({**fields, **runs[(len(runs) - 1) // 2], "flip_test": cfg.flip,
                     "batch_size": cfg.e2e_batch_size, "repeats": len(runs)})
    hf32 = next((r for r in rows if _row_label(r) == "transformers/torch/float32"), None)
    for rec in rows:
        rec["vs_transformers_fp32"] = round(rec["instances_per_s"] / hf32["instances_per_s"], 3) \
            if hf32 and hf32["instances_per_s"] else None
        echo(f"  e2e    {_row_label(rec):34s}: {rec['instances_per_s']:8.2f} instances/s "
             f"({rec['images']} images, {rec['instances']} instances, {rec['seconds']:.2f} s, "
             f"non-model {100 * rec['non_model_fraction']:.1f}%)")
    return rows


def _predict_memory(model: ViTPose, index: int, name: str, dtypes: Sequence[torch.dtype],
                    cfg: BenchConfig, device: torch.device, tmp: Path,
                    echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Peak resident memory of a separate `vitpose predict` on the bench images, per dtype
    (the model is saved with its current weights and read back by ``--model PATH``)."""
    ckpt = save_checkpoint(model, tmp / f"{Path(name).stem}-bench.pth")
    rows = []
    for d in dtypes:
        out = tmp / f"predict-{_DTYPE_NAMES[d]}.json"
        cmd = ["predict", str(cfg.images), "--model", str(ckpt), "--device", str(device),
               "--dtype", _DTYPE_NAMES[d], "--batch-size", str(cfg.e2e_batch_size),
               "--no-draw", "--out", str(out), "--overwrite", "--dataset", model.datasets[index]]
        if cfg.det_file:
            cmd += ["--det-file", str(cfg.det_file), "--det-thr", str(cfg.det_thr)]
            if cfg.images_file:
                cmd += ["--images-file", str(cfg.images_file)]
        else:
            cmd += ["--detector", "whole-image"]
        if not cfg.flip:
            cmd.append("--no-flip")
        t0 = time.perf_counter()
        code, peak, text = run_with_peak_rss("vitpose.cli", cmd)
        rec = {"dtype": _DTYPE_NAMES[d], "exit_code": code,
               "peak_rss_mb": round(peak, 1) if peak else None,
               "seconds": round(time.perf_counter() - t0, 2), "command": "vitpose " + " ".join(cmd)}
        if code != 0:
            rec["output_tail"] = text[-2000:]
        rows.append(rec)
        echo(f"  memory vitpose predict {_DTYPE_NAMES[d]}: peak RSS {rec['peak_rss_mb']} MiB "
             f"(exit {code})")
    return rows


def _summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The headline ratios of one model (batch 1 when measured, else the smallest batch)."""
    runs = entry["runs"]
    out: dict[str, Any] = {}
    if runs:
        b = min(r["batch_size"] for r in runs)
        at_b = [r for r in runs if r["batch_size"] == b]
        ours = [r for r in at_b if r["impl"] == "vitpose"]
        theirs = {r["dtype"]: r for r in at_b if r["impl"] == "transformers"}
        if ours:
            best = max(ours, key=lambda r: r["items_per_s"])
            out["batch_size"] = b
            out["best_ours"] = f"{best['backend']}/{best['dtype']}" + \
                ("+compile" if best["compile"] else "")
            out["best_ours_crops_per_s"] = best["items_per_s"]
            out["best_ours_fraction_of_matmul_peak"] = best["fraction_of_matmul_peak"]
            out["best_ours_rel_l2_vs_fp32"] = best["rel_l2_vs_fp32"]
            out["best_ours_argmax_same"] = best["argmax_same"]
            if "float32" in theirs:
                out["model_speedup_vs_transformers_fp32"] = round(
                    best["items_per_s"] / theirs["float32"]["items_per_s"], 3)
            lowp = [r for d, r in theirs.items() if d != "float32"]
            if lowp:
                fastest = max(lowp, key=lambda r: r["items_per_s"])
                out["model_speedup_vs_transformers_autocast"] = round(
                    best["items_per_s"] / fastest["items_per_s"], 3)
    e2e = entry["end_to_end"]
    ours_e2e = [r for r in e2e if r["impl"] == "vitpose"]
    if ours_e2e:
        best = max(ours_e2e, key=lambda r: r["instances_per_s"])
        out["best_e2e"] = f"{best['backend']}/{best['dtype']}" + \
            ("+compile" if best["compile"] else "")
        out["best_e2e_instances_per_s"] = best["instances_per_s"]
        out["best_e2e_non_model_fraction"] = best["non_model_fraction"]
        hf32 = next((r for r in e2e if r["impl"] == "transformers" and r["dtype"] == "float32"),
                    None)
        if hf32:
            out["e2e_speedup_vs_transformers_fp32"] = round(
                best["instances_per_s"] / hf32["instances_per_s"], 3)
    ort = [r for r in runs if r["backend"] == "onnxruntime"]
    if ort:
        out["onnxruntime_rel_l2_vs_fp32"] = max(r["rel_l2_vs_fp32"] for r in ort)
    mem = [r["peak_rss_mb"] for r in entry["predict_memory"] if r.get("peak_rss_mb")]
    if mem:
        out["predict_peak_rss_mb_max"] = max(mem)
    return out


# --------------------------------------------------------------------------------------------
# Output: table and chart
# --------------------------------------------------------------------------------------------

def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as plain-text tables."""
    lines = []
    sysinfo = report["system"]
    lines.append(f"device: {sysinfo.get('gpu') or sysinfo['cpu']} ({sysinfo['cpu_count']} CPUs, "
                 f"{sysinfo['torch_threads']} torch threads), torch {sysinfo['torch']}, "
                 f"transformers {sysinfo.get('transformers')}, onnxruntime "
                 f"{sysinfo.get('onnxruntime')}")
    if "load_average_start" in sysinfo:
        lines.append(f"load average at start {sysinfo['load_average_start']}, at end "
                     f"{sysinfo.get('load_average_end')}")
    if report["matmul_peak_gflops"]:
        lines.append("matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s"
                                                  for k, v in report["matmul_peak_gflops"].items()))
    for m in report["models"]:
        lines.append("")
        lines.append(f"{m['model']}  ({m['params_M']}M params, {m['gflop_per_crop']} GFLOP/crop, "
                     f"dataset {m['dataset']}, weights {m['weights']}, COCO AP (README) "
                     f"{_fmt(m['coco_ap_readme'], '.1f')})")
        hdr = (f"{'model call':34s} {'batch':>5s} {'crops/s':>9s} {'ms/batch':>9s} "
               f"{'GFLOP/s':>8s} {'%peak':>6s} {'x hf32':>7s} {'x hf=dt':>7s} {'relL2':>8s} "
               f"{'argmax':>7s}")
        lines.append(hdr)
        for r in m["runs"]:
            label = _row_label(r)
            frac = r["fraction_of_matmul_peak"]
            lines.append(
                f"{label:34s} {r['batch_size']:5d} {r['items_per_s']:9.2f} {r['median_ms']:9.1f} "
                f"{r['gflop_per_s']:8.1f} {_fmt(None if frac is None else 100 * frac, '.1f'):>6s} "
                f"{_fmt(r['vs_transformers_fp32']):>7s} "
                f"{_fmt(r['vs_transformers_same_dtype']):>7s} {r['rel_l2_vs_fp32']:8.1e} "
                f"{100 * r['argmax_same']:6.1f}%"
                + (f"  paper A100: {r['paper_fps_a100']}" if r.get("paper_fps_a100") else ""))
        if m["end_to_end"]:
            lines.append(f"{'end to end (flip test)':34s} {'inst':>5s} {'inst/s':>9s} "
                         f"{'seconds':>9s} {'x hf32':>8s} {'non-model':>10s}  stages (s)")
            for r in m["end_to_end"]:
                label = _row_label(r)
                stages = " ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items())
                lines.append(f"{label:34s} {r['instances']:5d} {r['instances_per_s']:9.2f} "
                             f"{r['seconds']:9.2f} {_fmt(r['vs_transformers_fp32']):>8s} "
                             f"{100 * r['non_model_fraction']:9.1f}%  {stages}")
        for r in m["predict_memory"]:
            lines.append(f"vitpose predict ({r['dtype']}): peak RSS {_fmt(r['peak_rss_mb'], '.0f')}"
                         f" MiB, {r['seconds']} s, exit code {r['exit_code']}")
        for note in m["notes"]:
            lines.append(f"note: {note}")
        if m.get("summary"):
            lines.append("summary: " + json.dumps(m["summary"]))
    return "\n".join(lines)


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def chart_points(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Points of the throughput-vs-AP chart: one per (series, model) with a known COCO AP;
    throughput is the model's best measured crops/s in that series; the paper's A100 figures
    (batch 64) form their own series."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    paper: dict[str, dict[str, Any]] = {}
    for m in report["models"]:
        ap = m.get("coco_ap_readme")
        if ap is None:
            continue
        short = (m.get("variant") or m["model"]).replace("vitpose-", "")
        for r in m["runs"]:
            series = f"{r['impl']} {r['backend']} {r['dtype']}" + (" compile" if r["compile"]
                                                                   else "")
            key = (series, m["model"])
            if key not in best or r["items_per_s"] > best[key]["throughput"]:
                best[key] = {"series": series, "label": short, "throughput": r["items_per_s"],
                             "ap": ap}
        if m.get("paper_fps_a100_batch64"):
            paper[m["model"]] = {"series": "paper: A100, batch 64", "label": short,
                                 "throughput": m["paper_fps_a100_batch64"], "ap": ap}
    return list(best.values()) + list(paper.values())


def draw_chart(report: Mapping[str, Any], path: str | os.PathLike,
               size_wh: tuple[int, int] = (1000, 640)) -> Path:
    """Draw COCO AP (README) against measured throughput (log scale) as a PNG with OpenCV."""
    points = chart_points(report)
    w, h = size_wh
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 80, 300, 50, 60
    x0, x1, y0, y1 = left, w - right, top, h - bottom
    font = cv2.FONT_HERSHEY_SIMPLEX
    black = (0, 0, 0)
    title = "COCO val AP (original README) vs throughput measured by `vitpose bench`"
    cv2.putText(img, title, (left, 30), font, 0.55, black, 1, cv2.LINE_AA)
    if points:
        xs = [p["throughput"] for p in points]
        lo, hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
        hi = max(hi, lo + 1)
        aps = [p["ap"] for p in points]
        ap_lo, ap_hi = math.floor(min(aps)) - 1, math.ceil(max(aps)) + 1
    else:
        lo, hi, ap_lo, ap_hi = 0, 3, 72, 82

    def px(t: float, ap: float) -> tuple[int, int]:
        fx = (math.log10(t) - lo) / (hi - lo)
        fy = (ap - ap_lo) / (ap_hi - ap_lo)
        return int(x0 + fx * (x1 - x0)), int(y1 - fy * (y1 - y0))

    cv2.rectangle(img, (x0, y0), (x1, y1), black, 1)
    for e in range(lo, hi + 1):
        for mult in (1, 2, 5):
            t = mult * 10.0 ** e
            if not 10.0 ** lo <= t <= 10.0 ** hi:
                continue
            x, _ = px(t, ap_lo)
            cv2.line(img, (x, y0), (x, y1), (225, 225, 225) if mult > 1 else (200, 200, 200), 1)
            label = f"{t:g}"
            cv2.putText(img, label, (x - 4 * len(label), y1 + 18), font, 0.4, black, 1,
                        cv2.LINE_AA)
    for ap in range(int(ap_lo), int(ap_hi) + 1):
        _, y = px(10.0 ** lo, ap)
        cv2.line(img, (x0, y), (x1, y), (230, 230, 230), 1)
        cv2.putText(img, str(ap), (x0 - 30, y + 4), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(img, "throughput (crops/s, log scale)", ((x0 + x1) // 2 - 120, h - 20), font,
                0.5, black, 1, cv2.LINE_AA)
    cv2.putText(img, "AP", (20, (y0 + y1) // 2), font, 0.5, black, 1, cv2.LINE_AA)
    series = list(dict.fromkeys(p["series"] for p in points))
    taken: list[tuple[int, int, int, int]] = []  # label boxes drawn so far

    def put_label(text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
        (tw, th), _ = cv2.getTextSize(text, font, 0.4, 1)
        for dy in (-7, 14, -21, 28):  # above, below, further up, further down; else skip
            box = (x + 7, y + dy - th, x + 7 + tw, y + dy + 2)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in taken):
                taken.append(box)
                cv2.putText(img, text, (box[0], y + dy), font, 0.4, colour, 1, cv2.LINE_AA)
                return

    for i, s in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)][::-1]  # RGB -> BGR
        pts = sorted((p for p in points if p["series"] == s), key=lambda p: p["throughput"])
        xy = [px(p["throughput"], p["ap"]) for p in pts]
        if len(xy) > 1:
            cv2.polylines(img, [np.array(xy, np.int32)], False, colour, 2, cv2.LINE_AA)
        for (x, y), p in zip(xy, pts, strict=True):
            cv2.circle(img, (x, y), 5, colour, -1, cv2.LINE_AA)
            put_label(p["label"], x, y, colour)
        ly = y0 + 20 + 22 * i
        cv2.circle(img, (x1 + 20, ly - 4), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(img, s, (x1 + 32, ly), font, 0.42, black, 1, cv2.LINE_AA)
    if not points:
        cv2.putText(img, "no measured model has a COCO AP in the README tables", (x0 + 20,
                    (y0 + y1) // 2), font, 0.5, (0, 0, 200), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path

"""Measurements: interleaved timing, the matmul peak and FLOPs of the machine and model, peak
memory of a process, sample images and boxes, and end-to-end runs (ours and the
``transformers`` way) with the time of each stage."""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ..checkpoints import save_hf_pretrained
from ..inference.detectors import find_boxes, load_coco_detections, sanitize_boxes
from ..inference.engines import plain_config
from ..inference.engines.choice import SETTLE_SECONDS
from ..inference.io import iter_inputs, read_image
from ..inference.pipeline import PoseEstimator
from ..models.vitpose import ViTPose

__all__ = ["Sample", "StageClock", "Timing", "load_samples", "load_transformers_reference",
           "matmul_peak_gflops", "model_flops", "peak_rss_mb", "pipeline_end_to_end",
           "run_with_peak_rss", "time_interleaved", "transformers_end_to_end"]

log = logging.getLogger("vitpose.benchmark")


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


def sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_interleaved(fns: Mapping[str, Callable[[], Any]], items: int = 1, warmup: int = 1,
                     rounds: int = 5, min_seconds: float = 0.0, max_rounds: int = 200,
                     sync: Callable[[], None] | None = None,
                     settle: float = SETTLE_SECONDS) -> dict[str, Timing]:
    """Time several callables in interleaved rounds (each round calls each once, rotating order).

    Rounds continue until both `rounds` and `min_seconds` are reached (at most `max_rounds`).
    Interleaving makes a background load on the machine affect every variant alike. Before each
    call that follows another variant's, a pause of `settle` seconds (not timed) lets the
    previous variant's threads go idle (`vitpose.inference.engines.choice.SETTLE_SECONDS`: the
    variant after ONNX Runtime ran 25-35% slower without it).
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
            if settle > 0 and len(names) > 1:
                time.sleep(settle)
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
    sync = sync_for(device)
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
    clock = StageClock(sync_for(est.device))
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
    clock = StageClock(sync_for(device))
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

"""Choosing and building an engine: `build_engine` (one named backend) and `select_engine`
(``--backend auto``: the fastest engine of this machine that passes the accuracy gate).

The first result never waits for a calibration. ``auto`` first applies a rule (`plan_engine`):

* a choice remembered for this machine, software, model and dtype policy (by an earlier
  calibration, whatever its batch size and thread count) is built at once;
* otherwise the job runs what ``--backend torch`` runs with the same dtype policy (our eager
  torch path in the policy's dtype: float32, the exact path, or bf16 where the CPU computes it
  natively; no export, no compilation), unless the job is long enough for a calibration: the
  caller passes the number of crops the job will run (`crops`), and a job of at least
  `LONG_JOB_FACTOR` times what the calibration costs in crops of the safe engine
  (`calibration_cost_crops`: the export when the graph is not cached, the OpenVINO
  compilations, the gate) is calibrated *during* the job (`online.CalibratingEngine`): its
  first call runs on the safe engine at once, the candidates are built and gated before its
  second, then timed on its own calls, and the fastest runs the rest. A job of unknown length
  is not calibrated. ``calibrate=True`` (``vitpose bench``) calibrates before the job, with
  timed rounds on the gate crops, and so does a long job under ``torchrun`` (the other ranks
  find the choice); ``calibrate=False`` never calibrates.

A log line says what was decided and why (for a calibration during the job, a second one says
what it chose).

When it runs, it decides once per machine, software, model and dtype policy:

1. The candidates are the installed engines for the policy's dtype (on a bf16 CPU: torch bf16 and
   OpenVINO bf16) and the exact engines (torch, ONNX Runtime and OpenVINO in float32).
2. Accuracy gate, on the model's own weights, against our eager float32 on crops of the bundled
   sample image and their mirrors: float32 engines must be within `EXACT_REL_L2` (1e-5)
   relative L2; lower-precision engines must keep the heatmap arg-max of at least
   `MIN_ARGMAX_SAME` (99%) of the keypoints. Engines that fail are never chosen.
3. Speed. During a job: on the job's own calls, in turn, after a warm-up call of each; the
   fastest call of each engine counts, and engines 1.5x (`NEAR_TIE`) slower than the fastest
   after one timed call leave early. Before a job: at the estimator's typical call sizes
   (`calibration_rows`): a crop and its mirror (the call of a one-person `predict` with the
   flip test), in 5 interleaved rounds, then a
   full call of the estimator's batch (capped at `MAX_CALIBRATION_ROWS` rows) in 3
   interleaved rounds, for the engines within `NEAR_TIE` of the fastest at 2 rows only (the
   others are clearly slower and are not timed again). At each size the fastest round counts
   (the one least disturbed on a shared machine); an engine's score is the geometric mean of
   its seconds per crop over the sizes.
4. The fastest engine that passed wins (an exact engine when no lower-precision one passed,
   or when an exact one is faster).

The choice, with every measurement and the reason, is written to
``<cache folder>/engines/auto-<key>.json``; the key covers the CPU (model name and flags), the
versions of torch / onnxruntime / openvino, the model's config and weights, the dataset, the
dtype policy and the device (not the batch size or thread count: those change the timings
little, and a new calibration for each cost a minute). The next start reads it and builds only
the chosen engine. What the calibration loaded is released once it has chosen. Building and
gating the candidates of ViTPose-B takes about 10-30 s on a 2-core CPU (the first ONNX export
and OpenVINO compilation are cached too). int8 is never a candidate (`engines.int8` is an opt-in).
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import functools
import gc
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...distributed import get_world_size
from ...models.vitpose import ViTPose
from .base import (
    DTYPE_NAMES,
    Engine,
    EngineError,
    argmax_agreement,
    cache_dir,
    installed_version,
    rel_l2,
)
from .choice import RememberedChoice, fastest, time_calls
from .graph import model_key, onnx_file_for, onnx_parts_for, plain_config
from .online import CalibratingEngine
from .onnxruntime_engine import OnnxRuntimeEngine, onnxruntime_available
from .openvino_engine import OpenVinoEngine, openvino_available
from .plan import (
    TIMING_ROWS,
    Candidate,
    Plan,
    gflop_per_crop_of,
    plan_engine,
)
from .precision import DTYPES, cpu_features, optimize_for_inference, resolve_dtype
from .torch_engine import TorchEngine

__all__ = ["AS_CLOSE_AS_TORCH", "BACKENDS", "EXACT_REL_L2", "MAX_CALIBRATION_ROWS",
           "MIN_ARGMAX_SAME", "NEAR_TIE", "AutoChoice", "Measurement", "available_backends",
           "build_engine", "calibration_inputs", "calibration_rows", "candidates_for",
           "low_precision_verdict", "machine_fingerprint", "release_memory", "select_engine"]

log = logging.getLogger(__name__)

#: The engines of ``--backend``: the one home of these names.
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
#: The exact path: largest relative L2 error of a float32 engine against our eager float32.
EXACT_REL_L2 = 1e-5
#: Lower-precision engines must keep the heatmap arg-max of at least this share of keypoints,
MIN_ARGMAX_SAME = 0.99
#: or, where the torch path of the same dtype passed that test, be no farther from float32
#: (relative L2 of the heatmaps) than this many times the torch path's: on the gate's 136
#: keypoints one near-tie flip is 0.7%, so the arg-max share alone cannot rank engines that
#: are as accurate as autocast (docs/PERFORMANCE.md, "Engines and --backend auto").
AS_CLOSE_AS_TORCH = 1.5
#: The largest call the calibration times (rows): per-crop speed changes little beyond it, and
#: a larger call would make the first start slower.
MAX_CALIBRATION_ROWS = 8
#: Engines slower than this factor times the fastest at the smallest call size are not timed
#: at the larger ones (they cannot win; timing them would only lengthen the calibration).
NEAR_TIE = 1.5


def release_memory() -> None:
    """Give what a calibration loaded back: collect the engines dropped and return freed heap
    pages to the system (glibc's ``malloc_trim``, where present)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def available_backends() -> list[str]:
    """The engines whose runtime is installed (torch always)."""
    out = ["torch"]
    if onnxruntime_available():
        out.append("onnxruntime")
    if openvino_available():
        out.append("openvino")
    return out


def build_engine(backend: str, model: ViTPose, dataset: int | str | None = None,
                 dtype: str | torch.dtype = "auto", device: str | torch.device | None = None,
                 *, compile: bool = False, prepared: bool = False, threads: int | None = None,
                 onnx_path: str | os.PathLike | None = None, key: str | None = None,
                 tensorrt: bool = False) -> Engine:
    """One engine of a named backend for `model` (``'auto'`` is `select_engine`'s job).

    Args:
        backend: ``'torch'``, ``'onnxruntime'`` or ``'openvino'``.
        model: a float32 `ViTPose` (for torch, `prepared` says it went through
            `optimize_for_inference` for `dtype` already).
        dataset: dataset name or index baked into the engine.
        dtype: compute dtype (``'auto'`` allowed, resolved for `device`).
        device: default the model's device.
        compile: torch only: `torch.compile` the backbone.
        onnx_path: for ONNX Runtime / OpenVINO, an exported file (default: the cached export of
            `model`, see `onnx_file_for`).
        key: the model's cache key when already computed (`model_key`).
        tensorrt: ONNX Runtime on CUDA: the TensorRT provider first.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dt = resolve_dtype(dtype, device)
    if backend == "torch":
        if prepared or (dt == torch.float32 and not compile):
            return TorchEngine(model, dataset, dt, threads=threads)
        if compile:
            log.info("compiling the model with torch.compile (the first calls take a while)")
        return TorchEngine(model, dataset, dt, prepare=True, compile=compile, threads=threads)
    if compile:
        raise EngineError(f"--compile applies to the torch engine, not {backend}")
    if backend == "onnxruntime":
        if not onnxruntime_available():
            raise EngineError("the ONNX Runtime engine needs onnxruntime: "
                              "pip install 'vitpose[onnx]'")
        fp16 = dt == torch.float16 and tensorrt
        if dt != torch.float32 and not fp16:
            raise EngineError(f"the ONNX Runtime engine computes in float32 (fp16 only with "
                              f"TensorRT), not {DTYPE_NAMES[dt]}: use --dtype float32")
        if onnx_path is None:
            _announce_export(model, dataset, key)
        path = onnx_path or onnx_file_for(model, dataset, key=key)
        return OnnxRuntimeEngine(path, device=device, threads=threads, tensorrt=tensorrt,
                                 fp16=fp16)
    if backend == "openvino":
        if not openvino_available():
            raise EngineError("the OpenVINO engine needs openvino: pip install 'vitpose[openvino]'")
        if device.type != "cpu":
            raise EngineError("the OpenVINO engine runs on the CPU here (--device cpu)")
        if dt == torch.float16:
            raise EngineError("the OpenVINO CPU engine computes in float32 or bfloat16")
        if onnx_path is None:
            _announce_export(model, dataset, key)
        ov_cache = cache_dir() / "openvino"
        if not ov_cache.is_dir() or not any(ov_cache.iterdir()):
            log.info("compiling the model for OpenVINO (a few seconds; cached in %s)", ov_cache)
        path = onnx_path or onnx_file_for(model, dataset, key=key)
        index = model.dataset_index_of(dataset if dataset is not None else 0)
        # bf16 keeps the two ends and the LayerNorms float32, as autocast computes them
        parts = onnx_parts_for(model, dataset, key=key) if dt != torch.float32 else None
        return OpenVinoEngine(path, dt, threads=threads, cfg=plain_config(model.cfg, index),
                              parts=parts)
    raise EngineError(f"unknown backend '{backend}'; choose one of {list(BACKENDS)}")


def graph_cached(mkey: str) -> bool:
    """Whether the exported graph of the model with cache key `mkey` is in the cache folder
    (`onnx_file_for`'s file)."""
    return (cache_dir() / "graphs" / f"vitpose-{mkey}.onnx").is_file()


def _holds(folder: Path, pattern: str) -> bool:
    """Whether `folder` holds a file matching `pattern` (a missing folder holds none)."""
    try:
        return any(f.is_file() for f in folder.glob(pattern))
    except OSError:
        return False


def _remembered(fingerprint: Any, mkey: str, policy: str, target: torch.dtype,
                device: torch.device, backends: Sequence[str]) -> tuple[Path, RememberedChoice]:
    """The file of the remembered choice for this machine, model, policy and engines."""
    key = _choice_key(fingerprint, mkey, f"{policy}->{DTYPE_NAMES[target]}", device, backends)
    path = cache_dir() / "engines" / f"auto-{key}.json"
    return path, RememberedChoice(path, {"machine": fingerprint, "model_key": mkey})


def _announce_export(model: ViTPose, dataset: int | str | None, key: str | None) -> None:
    key = key or model_key(model, dataset)
    if not graph_cached(key):
        log.info("exporting the model to ONNX for this engine (once: cached in %s)",
                 cache_dir() / "graphs")


def candidates_for(dtype: torch.dtype, device: str | torch.device,
                   backends: Sequence[str] | None = None) -> list[Candidate]:
    """The engines ``auto`` considers for a compute dtype on `device`: those of `dtype`, then
    the exact float32 ones (torch first: it is the reference)."""
    device = torch.device(device)
    backends = list(backends) if backends is not None else available_backends()
    out: list[Candidate] = []
    if dtype != torch.float32:
        if "torch" in backends:
            out.append(Candidate("torch", dtype))
        if "openvino" in backends and device.type == "cpu" and dtype == torch.bfloat16:
            out.append(Candidate("openvino", dtype))
    for b in ("torch", "onnxruntime", "openvino"):
        if b in backends and (b != "openvino" or device.type == "cpu"):
            out.append(Candidate(b, torch.float32))
    return out


@dataclass
class Measurement:
    """What the calibration measured for one candidate."""

    engine: str
    dtype: str
    seconds_per_crop: float | None = None
    #: seconds per crop at each timed call size (rows; JSON keys are strings)
    seconds_per_crop_by_rows: dict[str, float] = field(default_factory=dict)
    #: why an accepted engine was not timed at every size (`note` says why one was rejected)
    timing_note: str = ""
    rel_l2: float | None = None
    argmax_same: float | None = None
    accepted: bool = False
    note: str = ""


@dataclass
class AutoChoice:
    """The engine ``auto`` chose and why."""

    engine: str
    policy: str
    reason: str
    measurements: list[Measurement] = field(default_factory=list)
    cached: bool = False
    cache_file: str | None = None
    calibration_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AutoChoice:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["measurements"] = [Measurement(**m) for m in d.get("measurements", [])]
        return cls(**d)


def machine_fingerprint() -> dict[str, Any]:
    """What makes timings differ between machines: CPU model and relevant flags, core count,
    threads, and the versions of the runtimes."""
    name, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    keep = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c")))
    versions = {"torch": torch.__version__,
                "onnxruntime": installed_version("onnxruntime", "onnxruntime",
                                                 "onnxruntime-gpu", "onnxruntime-openvino"),
                "openvino": installed_version("openvino")}
    return {"cpu": name, "flags": keep, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), **versions}


#: bumped when an engine computes differently (a remembered choice then no longer applies):
#: 2 = OpenVINO bf16 with float32 ends, calls split across streams; 3 = key without threads
#: and call sizes; 4 = OpenVINO bf16 (and int8) keep the LayerNorms float32
ENGINES_REVISION = 4


def _choice_key(fingerprint: Mapping[str, Any], mkey: str, policy: str, device: torch.device,
                backends: Sequence[str]) -> str:
    """The remembered choice's key: not the thread count (`default_threads` follows the load)
    nor the call sizes (a new calibration per batch size or thread count cost a minute)."""
    machine = {k: v for k, v in fingerprint.items() if k != "torch_threads"}
    text = json.dumps({"engines": ENGINES_REVISION, "machine": machine, "model": mkey,
                       "policy": policy, "device": str(device), "backends": sorted(backends)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def calibration_inputs(model: ViTPose, count: int = 4) -> torch.Tensor:
    """Normalised crops of the bundled sample image (a person; `count` boxes around them at
    several scales) and their mirrors: ``[2 * count, 3, H, W]`` float32 on the CPU."""
    from ...transforms import box_xywh_to_center_scale, crop_boxes
    from ..io import read_image
    image = read_image(Path(__file__).resolve().parents[2] / "assets" / "000000000785.jpg")
    ih, iw = image.shape[:2]
    h, w = model.input_size
    boxes = []
    for i in range(count):  # from the whole image down to its central part
        f = 1.0 - 0.15 * i
        bw, bh = iw * f, ih * f
        boxes.append([(iw - bw) / 2, (ih - bh) / 2, bw, bh])
    center, scale = box_xywh_to_center_scale(np.asarray(boxes, np.float32), (w, h), 1.25)
    crops, _ = crop_boxes(image, center, scale, (w, h), True)
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(model.pixel_mean).view(1, 3, 1, 1) * 255  # the model's own
    std = torch.tensor(model.pixel_std).view(1, 3, 1, 1) * 255
    x = (x - mean) / std
    return torch.cat([x, x.flip(3)]).contiguous()


def calibration_rows(batch_size: int | None = None, flip_test: bool = True) -> tuple[int, ...]:
    """The call sizes (rows) ``auto`` times: one person's call (a crop and, with the flip test,
    its mirror) and a full call of an estimator with `batch_size` crops per call, capped at
    `MAX_CALIBRATION_ROWS` (default: the cap)."""
    per = 2 if flip_test else 1
    full = MAX_CALIBRATION_ROWS if batch_size is None else per * max(1, int(batch_size))
    return tuple(sorted({per, max(per, min(full, MAX_CALIBRATION_ROWS))}))


def _rows_of(x: torch.Tensor, rows: int) -> torch.Tensor:
    """`rows` rows for a timed call: for 2 rows a crop and its mirror (`x` holds crops, then
    their mirrors), else the rows of `x`, repeated when needed."""
    if rows == 2 and len(x) >= 2 and len(x) % 2 == 0:
        return x[[0, len(x) // 2]]
    reps = -(-rows // len(x))
    return x.repeat(reps, 1, 1, 1)[:rows].contiguous()


def _calibrate_speed(engines: Mapping[str, Any], x: torch.Tensor, rows: Sequence[int],
                     rounds: int, timer: Callable[..., dict[str, float]] | None = None
                     ) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, str]]:
    """Time `engines` at each call size of `rows` (the smallest first, `rounds` interleaved
    rounds; the larger ones in 3 rounds, only for the engines within `NEAR_TIE` of the
    fastest at the smallest). Returns the score of each engine timed at every size (the
    geometric mean of its seconds per crop over the sizes; engines left out of the larger
    sizes have none: they cannot win), each engine's seconds per crop by size, and a note for
    those left out. `timer` replaces
    `_time_engines` (injected timings)."""
    timer = timer or _time_engines
    rows = sorted(set(rows))
    by_rows: dict[str, dict[str, float]] = {n: {} for n in engines}
    notes: dict[str, str] = {}
    active = dict(engines)
    for i, r in enumerate(rows):
        if not active:
            break
        t = timer(active, _rows_of(x, r), rounds if i == 0 else min(rounds, 3))
        for n, s in t.items():
            by_rows[n][str(r)] = s
        if i == 0 and len(rows) > 1:
            fastest = min(t.values())
            for n in list(active):
                if t[n] > NEAR_TIE * fastest:
                    notes[n] = (f"{t[n] / fastest:.2f}x the fastest at {r} rows: not timed at "
                                f"{', '.join(map(str, rows[1:]))} rows")
                    del active[n]
    score = {n: float(np.exp(np.mean(np.log(list(v.values())))))
             for n, v in by_rows.items() if n in active}
    return score, by_rows, notes


def _time_engines(engines: Mapping[str, Engine], x: torch.Tensor, rounds: int
                  ) -> dict[str, float]:
    """Seconds per crop of each engine on `x`: the fastest of interleaved rounds (on a shared
    machine the fastest call is the one least disturbed by other processes)."""
    seconds = time_calls({n: functools.partial(e, x) for n, e in engines.items()}, rounds)
    return {n: s / len(x) for n, s in seconds.items()}


def select_engine(model: ViTPose, dataset: int | str | None = None,
                  dtype: str | torch.dtype = "auto", device: str | torch.device | None = None,
                  *, backends: Sequence[str] | None = None, use_cache: bool = True,
                  rounds: int = 5,
                  timings: Mapping[str, float | Mapping[int, float]] | None = None,
                  inputs: torch.Tensor | None = None, threads: int | None = None,
                  rows: Sequence[int] | None = None, crops: int | None = None,
                  calibrate: bool | None = None,
                  features: frozenset[str] | set[str] | None = None) -> tuple[Engine, AutoChoice]:
    """``--backend auto``: a remembered choice, the safe engine, or the fastest engine for this
    machine, model and dtype policy found by a calibration when the job repays it (module
    docstring; `plan_engine`).

    Args:
        model: a float32 `ViTPose` (weights loaded; not modified).
        dataset: dataset name or index.
        dtype: the dtype policy (``'auto'``, ``'float32'`` = exact path, ``'bfloat16'``, ...).
        device: default the model's device.
        backends: the engines to consider (default: all installed).
        use_cache: read and write the remembered choice in the cache folder.
        rounds: timing rounds of the calibration at the smallest call size.
        timings: seconds per crop by candidate label (``'openvino/bfloat16'``), instead of
            timing: one number, or one per call size (``{2: ..., 8: ...}``, keys of `rows`);
            tests inject them; candidates missing from it are not considered. Implies
            ``calibrate=True`` unless given.
        inputs: calibration crops (default `calibration_inputs`).
        threads: threads of every engine (default: each runtime's own choice; see
            `engines.threads.default_threads`).
        rows: the call sizes to time (default `calibration_rows()`: a crop and its mirror,
            and a full call of `MAX_CALIBRATION_ROWS` rows); the estimator's builder passes
            those of its batch size and flip test.
        crops: the crops the job will run through the model, mirrors of the flip test
            included (about 2 x images x people per image; None: unknown): decides whether a
            calibration repays itself (`plan_engine`).
        calibrate: True: calibrate unless a choice is remembered (``vitpose bench`` passes
            ``use_cache=False`` too); False: never; None: the rule decides.
        features: the CPU's instruction sets for the rule (default `cpu_features`; tests
            inject them).

    Returns:
        the chosen engine and an `AutoChoice` (what was measured or decided, and why).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    target = resolve_dtype(dtype, device)
    policy = dtype if isinstance(dtype, str) else DTYPE_NAMES[dtype]
    backends = [b for b in (backends or available_backends()) if b in available_backends()]
    fingerprint = machine_fingerprint()
    rows = tuple(sorted(set(rows))) if rows else calibration_rows()
    # the model's cache key hashes every weight (~0.2 s for ViTPose-B): not computed where the
    # cache holds nothing it could find (a fresh cache; one-image jobs write nothing)
    lookup = use_cache and timings is None and _holds(cache_dir() / "engines", "auto-*.json")
    mkey = model_key(model, dataset) if lookup or _holds(cache_dir() / "graphs", "*.onnx") \
        else None
    record = None
    if lookup:
        path, remembered = _remembered(fingerprint, mkey, policy, target, device, backends)
        record = remembered.read()
    if record is not None:
        try:
            choice = AutoChoice.from_dict(record)
            backend, dname = choice.engine.split("/")
            engine = build_engine(backend, model, dataset, DTYPES[dname], device, key=mkey,
                                  threads=threads)
            choice.cached, choice.cache_file = True, str(path)
            log.info("engine %s (remembered in %s)", choice.engine, path)
            return engine, choice
        except (OSError, ValueError, KeyError, TypeError, EngineError) as e:
            log.warning("ignoring the remembered engine choice %s: %s", path, e)
    t0 = time.perf_counter()
    cands = candidates_for(target, device, backends)
    if timings is not None:
        cands = [c for c in cands if c.label in timings]
    if not cands:
        raise EngineError(f"no engine to choose from for dtype {policy} on {device}")
    if calibrate is None and timings is not None:
        calibrate = True
    if not calibrate:
        n_threads = threads or torch.get_num_threads()
        plan = plan_engine(crops=crops, gflop_per_crop=gflop_per_crop_of(model), target=target,
                           candidates=cands, threads=n_threads,
                           features=cpu_features() if features is None else features,
                           graph_cached=mkey is not None and graph_cached(mkey), device=device)
        if calibrate is False and plan.calibrate:
            plain = f"torch/{DTYPE_NAMES[target]}"
            plan = Plan(False, plain, f"calibration turned off: the {plain} path runs",
                        plan.seconds_per_crop, plan.calibration_seconds)
        if not plan.calibrate:
            log.info("engine %s: %s", plan.engine, plan.reason)
            engine = TorchEngine(model, dataset, DTYPES[plan.engine.split("/")[1]],
                                 threads=threads)
            return engine, AutoChoice(plan.engine, policy, plan.reason,
                                      calibration_seconds=0.0)
    mkey = mkey or model_key(model, dataset)
    path, remembered = _remembered(fingerprint, mkey, policy, target, device, backends)
    if not calibrate:
        if get_world_size() == 1:
            return _calibrating_engine(model, dataset, device, target, policy, cands, mkey,
                                       threads, inputs, remembered if use_cache else None, path,
                                       plan)
        # several processes (torchrun): one calibration before the job, whose choice the
        # other ranks find (they are started after rank 0 built its engine)
        log.info("choosing the engine for this machine: calibrating %d engines before the job "
                 "(once: the choice is remembered in %s)", len(cands), path.parent)
    elif timings is None:
        log.info("choosing the engine for this machine: calibrating %d engines "
                 "(the choice is remembered in %s)", len(cands), path.parent)
    engine, choice = _calibrate(model, dataset, device, target, policy, cands, mkey, rows,
                                rounds, timings, inputs, threads, t0)
    if use_cache and timings is None and choice.measurements and \
            choice.measurements[0].note != "non-finite output":
        if remembered.write({**choice.as_dict(), "rows": list(rows)}):
            choice.cache_file = str(path)
    release_memory()  # what the calibration loaded (the other engines, weight copies)
    return engine, choice


def _calibrating_engine(model: ViTPose, dataset: int | str | None, device: torch.device,
                        target: torch.dtype, policy: str, cands: Sequence[Candidate], mkey: str,
                        threads: int | None, inputs: torch.Tensor | None,
                        remembered: RememberedChoice | None, path: Path, plan: Plan
                        ) -> tuple[Engine, AutoChoice]:
    """The calibration during the job (`online.CalibratingEngine`): the safe engine at once; the
    candidates built and gated before the job's second call; the fastest on the job's calls
    kept, remembered and reported in the returned `AutoChoice` (updated in place)."""
    safe_label = "torch/float32"
    reference = TorchEngine(model, dataset, torch.float32, threads=threads)
    choice = AutoChoice(safe_label, policy, plan.reason + " (calibration under way)")
    measures: dict[str, Measurement] = {}

    def prepare() -> dict[str, Engine]:
        log.info("choosing the engine for this machine during the job: building and checking "
                 "%d engines (about %.0f s; once: the choice is remembered in %s)", len(cands),
                 plan.calibration_seconds, path.parent)
        x = (inputs if inputs is not None else calibration_inputs(model)).to(device)
        engines, found, finite = _gate(model, dataset, device, cands, mkey, threads, x,
                                       reference)
        measures.update(found)
        if not finite:
            choice.reason = _NON_FINITE
            measures.clear()
            measures[safe_label] = Measurement(safe_label, "float32", note="non-finite output")
            log.warning("engine %s: %s", safe_label, _NON_FINITE)
            return {safe_label: reference}
        return engines

    def decide(samples: dict[str, dict[int, float]], overhead: float, calls: int) -> str:
        speed = _scores(samples)
        for k, v in samples.items():
            if k in measures:
                measures[k].seconds_per_crop_by_rows = {str(r): s for r, s in sorted(v.items())}
                measures[k].seconds_per_crop = speed.get(k)
        choice.measurements = list(measures.values())
        choice.calibration_seconds = round(overhead, 2)
        if not speed or any(m.note == "non-finite output" for m in measures.values()):
            choice.engine = safe_label
            return safe_label
        best = fastest(speed)
        lowp = any(m.accepted and m.dtype != "float32" for m in measures.values())
        choice.engine = best
        choice.reason = (_reason(best, speed, measures, target, lowp)
                         + f" (timed on {calls} calls of the job; building and checking the "
                         f"engines took {overhead:.1f} s)")
        log.info("engine %s: %s", best, choice.reason)
        if remembered is not None and remembered.write(
                {**choice.as_dict(), "rows": sorted({int(r) for v in samples.values()
                                                     for r in v})}):
            choice.cache_file = str(path)
        return best

    log.info("engine %s first: %s", safe_label, plan.reason)
    engine = CalibratingEngine(reference, safe_label, prepare, decide, near_tie=NEAR_TIE,
                               chunk=TIMING_ROWS, release=release_memory)
    return engine, choice


def _scores(samples: Mapping[str, Mapping[int, float]]) -> dict[str, float]:
    """Each engine's score from its seconds per crop by call size: the geometric mean over the
    sizes every engine was timed at (the same calls for all), else its fastest size."""
    timed = {k: v for k, v in samples.items() if v}
    if not timed:
        return {}
    common = set.intersection(*(set(v) for v in timed.values()))
    out = {}
    for k, v in timed.items():
        sizes = common or set(v)
        vals = [v[r] for r in sizes] if common else [min(v.values())]
        out[k] = float(np.exp(np.mean(np.log(vals))))
    return out


_NON_FINITE = ("the model's own float32 output is not finite on the calibration crops, so no "
               "engine can be compared with it: the exact torch/float32 path runs")


def _gate(model: ViTPose, dataset: int | str | None, device: torch.device,
          cands: Sequence[Candidate], mkey: str, threads: int | None, x: torch.Tensor,
          reference: TorchEngine) -> tuple[dict[str, Engine], dict[str, Measurement], bool]:
    """Build each candidate and run the accuracy gate on `x` against `reference` (our eager
    float32): float32 engines within `EXACT_REL_L2`, lower-precision ones keeping
    `MIN_ARGMAX_SAME` of the arg-max. Returns the engines that passed, a measurement of each
    candidate and whether the reference output was finite (if not, nothing is built)."""
    ref = reference(x).float().cpu()
    if not bool(torch.isfinite(ref).all()):
        return {}, {}, False
    engines: dict[str, Engine] = {}
    measures: dict[str, Measurement] = {}
    prepared: dict[torch.dtype, ViTPose] = {}
    for c in cands:
        m = Measurement(c.label, DTYPE_NAMES[c.dtype])
        measures[c.label] = m
        try:
            if c.backend == "torch" and c.dtype == torch.float32:
                engine: Engine = reference
            elif c.backend == "torch":
                if c.dtype not in prepared:
                    prepared[c.dtype] = optimize_for_inference(copy.deepcopy(model), c.dtype)
                engine = TorchEngine(prepared[c.dtype], dataset, c.dtype)
            else:
                engine = build_engine(c.backend, model, dataset, c.dtype, device, key=mkey,
                                      threads=threads)
            out = ref if engine is reference else engine(x).float().cpu()
        except EngineError as e:
            m.note = f"unavailable: {e}"
            continue
        m.rel_l2 = rel_l2(out, ref)
        m.argmax_same = argmax_agreement(out, ref)[0]
        if c.dtype == torch.float32:
            m.accepted = m.rel_l2 <= EXACT_REL_L2
            if not m.accepted:
                m.note = f"relative error {m.rel_l2:.1e} > {EXACT_REL_L2:.0e}"
        else:
            base = measures.get(Candidate("torch", c.dtype).label) if c.backend != "torch" \
                else None
            low_precision_verdict(m, base)
        if m.accepted:
            engines[c.label] = engine
    prepared.clear()
    return engines, measures, True


def low_precision_verdict(m: Measurement, torch_path: Measurement | None) -> None:
    """Accept or refuse the lower-precision engine measured in `m` (its ``rel_l2`` and
    ``argmax_same`` against float32 set), in place: it keeps `MIN_ARGMAX_SAME` of the arg-max,
    or `torch_path` (the torch engine of the same dtype on the same crops) passed that test and
    `m` is within `AS_CLOSE_AS_TORCH` times its relative error."""
    assert m.rel_l2 is not None and m.argmax_same is not None
    m.accepted = m.argmax_same >= MIN_ARGMAX_SAME
    if m.accepted:
        return
    same = f"same arg-max {100 * m.argmax_same:.1f}% < {100 * MIN_ARGMAX_SAME:.0f}%"
    if torch_path is not None and torch_path.accepted and torch_path.rel_l2 is not None and \
            m.rel_l2 <= AS_CLOSE_AS_TORCH * torch_path.rel_l2:
        m.accepted = True
        m.note = (f"{same}, but as close to float32 as {torch_path.engine} (relative error "
                  f"{m.rel_l2:.1e} against {torch_path.rel_l2:.1e})")
        return
    m.note = f"{same} on these weights"
    if torch_path is not None and torch_path.accepted and torch_path.rel_l2 is not None:
        m.note += (f", relative error {m.rel_l2:.1e} > {AS_CLOSE_AS_TORCH}x "
                   f"{torch_path.engine}'s {torch_path.rel_l2:.1e}")


def _calibrate(model: ViTPose, dataset: int | str | None, device: torch.device,
               target: torch.dtype, policy: str, cands: Sequence[Candidate], mkey: str,
               rows: Sequence[int], rounds: int,
               timings: Mapping[str, float | Mapping[int, float]] | None,
               inputs: torch.Tensor | None, threads: int | None, t0: float
               ) -> tuple[Engine, AutoChoice]:
    """The gate and the timing of `cands`; the fastest that passes."""
    x = (inputs if inputs is not None else calibration_inputs(model)).to(device)
    reference = TorchEngine(model, dataset, torch.float32, threads=threads)
    engines, measures, finite = _gate(model, dataset, device, cands, mkey, threads, x, reference)
    if not finite:
        # The gate compares every engine with this output; NaN or infinity in it makes every
        # comparison fail (or, for an arg-max, pass by accident, depending on the CPU's dtype).
        # Such a model is judged by nobody: the exact path runs, and the caller's non-finite
        # checks report the keypoints it cannot trust, as with --backend torch.
        log.warning("engine torch/float32: %s", _NON_FINITE)
        choice = AutoChoice("torch/float32", policy, _NON_FINITE,
                            [Measurement("torch/float32", "float32", note="non-finite output")],
                            calibration_seconds=round(time.perf_counter() - t0, 2))
        return reference, choice
    timer = None
    if timings is not None:
        def timer(active: Mapping[str, Any], xr: torch.Tensor, _rounds: int) -> dict[str, float]:
            return {k: float(t[len(xr)] if isinstance(t := timings[k], Mapping) else t)
                    for k in active}
    speed, by_rows, notes = (_calibrate_speed(engines, x, rows, rounds, timer) if engines
                             else ({}, {}, {}))
    for k, v in by_rows.items():
        measures[k].seconds_per_crop_by_rows = v
        measures[k].seconds_per_crop = speed.get(k, v[min(v, key=int)] if v else None)
        if k in notes:
            measures[k].timing_note = notes[k]
    lowp = [k for k in engines if measures[k].dtype != "float32"]
    pool = list(speed)
    if not pool:
        raise EngineError("no engine passed the accuracy gate (not even the float32 ones): "
                          + "; ".join(f"{m.engine}: {m.note}" for m in measures.values()))
    best = fastest({k: speed[k] for k in pool})
    reason = _reason(best, speed, measures, target, bool(lowp))
    choice = AutoChoice(best, policy, reason, list(measures.values()),
                        calibration_seconds=round(time.perf_counter() - t0, 2))
    log.info("engine %s: %s", best, reason)
    engine = engines.pop(best)
    engines.clear()  # release the others (and their weight copies)
    return engine, choice


def _reason(best: str, speed: Mapping[str, float], measures: Mapping[str, Measurement],
            target: torch.dtype, lowp_passed: bool) -> str:
    ms = {k: 1e3 * v for k, v in speed.items()}
    others = sorted((k for k in ms if k != best), key=lambda k: ms[k])
    parts = [f"{best} is the fastest engine that passes the accuracy gate "
             f"({ms[best]:.1f} ms/crop"
             + (f"; next {others[0]} {ms[others[0]]:.1f} ms/crop" if others else "") + ")"]
    if best in measures and measures[best].accepted and measures[best].note:
        parts.append(f"it passed with {measures[best].note}")  # the gate's second clause
    if target != torch.float32 and not lowp_passed:
        parts.append(f"no {DTYPE_NAMES[target]} engine kept {100 * MIN_ARGMAX_SAME:.0f}% of the "
                     "arg-max on these weights, so the exact float32 path runs")
    rejected = [f"{m.engine} ({m.note})" for m in measures.values() if not m.accepted]
    if rejected:
        parts.append("not chosen: " + ", ".join(rejected))
    slow = [f"{m.engine} ({m.timing_note})" for m in measures.values()
            if m.accepted and m.engine not in speed]
    if slow:
        parts.append("slower: " + ", ".join(slow))
    return "; ".join(parts)

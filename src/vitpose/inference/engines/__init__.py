"""Inference engines: one small interface, normalised crops ``[N, 3, H, W]`` -> heatmaps
``[N, K, h, w]``, with several implementations.

| engine | module | precisions | needs |
| --- | --- | --- | --- |
| `TorchEngine` | `torch_engine` | float32, bfloat16, float16 (autocast); eager or compiled | torch |
| `OnnxRuntimeEngine` | `onnxruntime_engine` | float32 (fp16 with TensorRT); CPU, CUDA, TensorRT | onnx |
| `OpenVinoEngine` | `openvino_engine` | float32, bfloat16; compiled-model cache on disk | openvino |
| `Int8Engine` | `int8` | int8 (opt-in, never chosen by ``auto``; with its certificate) | openvino, nncf |

`build_engine` builds one by name; `select_engine` is ``--backend auto`` (a remembered choice,
else the rule of `plan`: the safe torch float32 engine, or for a long job a calibration with the
accuracy gate during the job, `online`; the choice remembered in the cache folder). `int8` builds
the opt-in quantized engine and its certificate; `threads.default_threads` is the default thread
count (what the machine has free). `PoseEstimator` runs any engine; the flip test,
decoding and rescoring are the same for all. `precision` prepares PyTorch models (the compute
dtype of ``auto``, weights cast once); `graph` writes and caches the ONNX graph the other
runtimes load; `runtime` creates ONNX Runtime sessions and OpenVINO compiled models for any graph
(these engines and the learned detectors, ``--det-engine``).
"""

from .auto import (
    BACKENDS,
    EXACT_REL_L2,
    MAX_CALIBRATION_ROWS,
    MIN_ARGMAX_SAME,
    NEAR_TIE,
    AutoChoice,
    Measurement,
    available_backends,
    build_engine,
    calibration_inputs,
    calibration_rows,
    candidates_for,
    graph_cached,
    machine_fingerprint,
    release_memory,
    select_engine,
)
from .base import DTYPE_NAMES, Engine, EngineError, argmax_agreement, cache_dir, rel_l2
from .graph import (
    PART_NAMES,
    model_key,
    onnx_file_for,
    onnx_parts_for,
    plain_config,
    plain_model_for,
    write_onnx,
    write_onnx_parts,
)
from .int8 import INT8_VARIANTS, Int8Certificate, Int8Engine, int8_engine, load_int8
from .online import CalibratingEngine
from .onnxruntime_engine import OnnxRuntimeEngine, onnxruntime_available
from .openvino_engine import OpenVinoEngine, openvino_available, openvino_config
from .plan import (
    GATE_ROWS,
    LONG_JOB_FACTOR,
    TIMING_ROWS,
    Candidate,
    Plan,
    calibration_cost_crops,
    estimate_seconds_per_crop,
    gflop_per_crop_of,
    plan_engine,
)
from .precision import (
    DTYPE_CHOICES,
    DTYPES,
    INT8,
    cpu_features,
    cpu_supports_bf16,
    optimize_for_inference,
    resolve_dtype,
)
from .runtime import compile_openvino, ort_session
from .threads import cgroup_cpu_quota, default_threads, usable_cpus
from .torch_engine import TorchEngine

__all__ = [
    "BACKENDS", "DTYPES", "DTYPE_CHOICES", "DTYPE_NAMES", "EXACT_REL_L2", "GATE_ROWS", "INT8",
    "LONG_JOB_FACTOR", "TIMING_ROWS", "CalibratingEngine", "calibration_cost_crops",
    "Plan", "cgroup_cpu_quota", "cpu_features", "default_threads", "estimate_seconds_per_crop",
    "INT8_VARIANTS", "Int8Certificate", "Int8Engine", "int8_engine", "load_int8",
    "gflop_per_crop_of", "graph_cached", "plan_engine", "release_memory", "usable_cpus",
    "MAX_CALIBRATION_ROWS", "MIN_ARGMAX_SAME",
    "NEAR_TIE", "PART_NAMES", "AutoChoice",
    "Candidate", "Engine", "EngineError", "Measurement", "OnnxRuntimeEngine", "OpenVinoEngine",
    "TorchEngine", "argmax_agreement", "available_backends", "build_engine", "cache_dir",
    "calibration_inputs", "calibration_rows", "candidates_for", "compile_openvino",
    "cpu_supports_bf16", "machine_fingerprint", "model_key", "onnx_file_for",
    "onnx_parts_for", "onnxruntime_available", "openvino_available", "openvino_config",
    "optimize_for_inference",
    "ort_session", "plain_config", "plain_model_for", "rel_l2", "resolve_dtype", "select_engine",
    "write_onnx", "write_onnx_parts",
]

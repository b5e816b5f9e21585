"""What the engines share with any other graph run by ONNX Runtime or OpenVINO (the pose
engines and the learned detectors): session creation with thread settings, and OpenVINO
compilation with the on-disk compiled-model cache and the precision hint.

The runtimes are imported when called; a missing one is an `EngineError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .base import DTYPE_NAMES, EngineError, cache_dir
from .ovcore import shared_core

__all__ = ["ORT_MISSING", "OV_MISSING", "compile_openvino", "openvino_config", "ort_session"]

ORT_MISSING = "the ONNX Runtime engine needs onnxruntime: pip install 'vitpose[onnx]'"
OV_MISSING = "the OpenVINO engine needs openvino: pip install 'vitpose[openvino]'"
_PRECISION = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


def ort_session(source: str | os.PathLike | bytes, *, threads: int | None = None,
                providers: list[Any] | None = None, spinning: bool = True,
                quiet: bool = False, what: str | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of a file (or the bytes of a graph) with all graph
    optimisations.

    Args:
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        providers: execution providers (default: the CPU).
        spinning: let idle threads busy-wait between runs (False leaves the cores to other
            work in between, e.g. the pose model after the detector).
        quiet: only errors in ONNX Runtime's log.
        what: the graph's name in the error message (default the path).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise EngineError(ORT_MISSING) from None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    if quiet:
        opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if isinstance(source, (str, os.PathLike)):
        source = str(source)
    try:
        return ort.InferenceSession(source, opts,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        name = what or (source if isinstance(source, str) else "the graph")
        raise EngineError(f"ONNX Runtime cannot load {name}: {e}") from None


def openvino_config(dtype: torch.dtype, threads: int | None = None,
                    cache: str | os.PathLike | None = None, tuned: bool = True,
                    streams: int | None = None) -> dict[str, Any]:
    """The ``compile_model`` properties of an engine.

    ``tuned`` adds our settings (the compiled-model cache and a performance hint: latency, one
    stream over all cores, or with ``streams`` > 1 throughput, that many streams sharing the
    threads, for calls split across streams); without it only the precision is set, as a user
    of OpenVINO's defaults would (the peer of `vitpose bench`).
    """
    if dtype not in _PRECISION:
        raise EngineError(f"OpenVINO cannot compute in {dtype}")
    cfg: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _PRECISION[dtype]}
    if tuned:
        if streams and streams > 1:
            cfg["PERFORMANCE_HINT"] = "THROUGHPUT"
            cfg["NUM_STREAMS"] = int(streams)
        else:
            cfg["PERFORMANCE_HINT"] = "LATENCY"
        if cache is not None:
            cfg["CACHE_DIR"] = str(cache)
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    return cfg


def compile_openvino(path: str | os.PathLike, dtype: torch.dtype = torch.float32, *,
                     device: str = "CPU", threads: int | None = None,
                     cache: str | os.PathLike | None = None, tuned: bool = True,
                     use_cache: bool = True, core: Any = None, streams: int | None = None
                     ) -> tuple[Any, dict[str, Any]]:
    """A graph file (``.onnx`` or IR ``.xml``) compiled by OpenVINO: ``(compiled_model,
    properties)``. With `tuned`, compiled models are cached on disk (`cache`, default
    ``<cache folder>/openvino``; not with ``use_cache=False``, e.g. for temporary files) so that
    the next start of the same graph loads instead of compiling."""
    try:
        import openvino  # noqa: F401 - the missing runtime is an EngineError here
    except ImportError:
        raise EngineError(OV_MISSING) from None
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"model file {path} does not exist")
    cache = (cache or cache_dir() / "openvino") if use_cache else None
    properties = openvino_config(dtype, threads, cache, tuned, streams)
    core = core or shared_core()  # one Core per process: see ovcore.py
    try:
        # compiling from the path lets OpenVINO find a cached blob without reading the graph
        compiled = core.compile_model(str(path), device, properties)
    except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with its message
        raise EngineError(f"OpenVINO cannot compile {path} for {device} "
                          f"({DTYPE_NAMES[dtype]}): {e}") from None
    return compiled, properties

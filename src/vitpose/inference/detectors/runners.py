"""How a learned detector's network runs: PyTorch, or its ONNX export on ONNX Runtime or
OpenVINO, through the package's one runtime stack (`vitpose.inference.engines`):

* the export, once per detector and input size, cached under ``<cache folder>/detectors``
  (`engines.graph.fixed_onnx`, `engines.base.cache_dir`);
* the ONNX Runtime session and the OpenVINO compiled model (`engines.runtime`: the pose
  engines' thread, spinning and compiled-model-cache settings);
* ``engine="auto"`` with both runtimes installed: both are timed (`engines.choice.time_calls`),
  the faster kept (`choose_detector_engine`) and the choice remembered beside the export for
  this machine and these runtimes (`engines.choice.RememberedChoice`).

A runner maps a ``[B, 3, H, W]`` float32 batch to ``(logits [B, Q, C], pred_boxes [B, Q, 4])``
NumPy arrays and says its ``name``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..engines import cache_dir, machine_fingerprint, onnxruntime_available, openvino_available
from ..engines.choice import RememberedChoice, fastest, time_calls
from ..engines.graph import fixed_onnx

__all__ = ["AUTO_DETECTOR_ENGINES", "DETECTOR_CALIBRATION_ROUNDS", "DETECTOR_ENGINES",
           "DETECTOR_TIE", "ENGINE_TITLES", "OpenVinoRunner", "OrtRunner", "TorchRunner",
           "available_detector_engines", "calibrated_runner", "check_detector_engine",
           "choose_detector_engine", "detector_engine_order", "detector_export_path",
           "export_detector", "first_runner"]

logger = logging.getLogger(__name__)

#: Engines a learned detector runs on.
DETECTOR_ENGINES = ("auto", "onnxruntime", "openvino", "torch")
#: The runtimes ``engine="auto"`` chooses between on the CPU (fixed input size), the faster
#: one by a short calibration remembered beside the cached export (`choose_detector_engine`);
#: this order breaks ties and is the order tried. PyTorch when none is installed.
AUTO_DETECTOR_ENGINES = ("openvino", "onnxruntime")
#: Engines within this fraction of the fastest tie (the first of `AUTO_DETECTOR_ENGINES` wins).
DETECTOR_TIE = 0.03
#: Interleaved timing rounds of that calibration (the fastest round of each engine counts).
DETECTOR_CALIBRATION_ROUNDS = 5
#: How messages name the engines.
ENGINE_TITLES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "torch": "PyTorch"}


def check_detector_engine(engine: str) -> None:
    """An `InputError` unless `engine` is one of `DETECTOR_ENGINES`."""
    if engine not in DETECTOR_ENGINES:
        raise InputError(f"unknown detector engine {engine!r}; choose one of "
                         f"{', '.join(DETECTOR_ENGINES)}")


def detector_engine_order(engine: str, fixed_size: bool, device: Any) -> list[str]:
    """The exported-graph engines to try (an empty list: PyTorch).

    A named engine is that engine. ``auto`` on the CPU with a fixed input size is the installed
    runtimes of `AUTO_DETECTOR_ENGINES`, in that order (with two, a calibration picks the
    faster: `calibrated_runner`); elsewhere PyTorch.
    """
    if engine == "torch":
        return []
    if engine != "auto":
        if engine == "openvino" and not openvino_available():
            raise InputError("the openvino detector engine needs openvino: "
                             "pip install 'vitpose[openvino]'")
        if engine == "openvino" and getattr(device, "type", "cpu") != "cpu":
            raise InputError("the openvino detector engine runs on the CPU (--device cpu)")
        return [engine]
    if not fixed_size or getattr(device, "type", "cpu") != "cpu":
        return []
    have = {"onnxruntime": onnxruntime_available(), "openvino": openvino_available()}
    return [name for name in AUTO_DETECTOR_ENGINES if have[name]]


def available_detector_engines(device: str = "cpu") -> list[str]:
    """The detector engines that can run on `device` here (torch always)."""
    out = ["torch"]
    if str(device).startswith("cpu"):
        out += [n for n, ok in (("onnxruntime", onnxruntime_available()),
                                ("openvino", openvino_available())) if ok]
    return out


class TorchRunner:
    """Runs the detector graph with PyTorch (any input size, any device)."""

    name = "torch"

    def __init__(self, graph: Any, device: Any) -> None:
        self.graph = graph.to(device)
        self.device = device

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            logits, boxes = self.graph(torch.from_numpy(batch).to(self.device))
        return logits.float().cpu().numpy(), boxes.float().cpu().numpy()


def export_detector(graph: Any, input_hw: tuple[int, int], path: Path | None) -> bytes | Path:
    """The ONNX graph of the detector for a fixed input size (`engines.graph.fixed_onnx`): the
    cached file `path` when it exists, else exported (and written to `path` when given, else
    returned as bytes)."""
    import torch

    exported = path is not None and not path.is_file()
    source = fixed_onnx(graph, torch.zeros((1, 3, *input_hw), dtype=torch.float32), path,
                        input_names=("pixel_values",), output_names=("logits", "pred_boxes"))
    if exported:
        logger.info("exported the detector to %s", path)
    return source


class OrtRunner:
    """Runs the detector graph with ONNX Runtime (CPU), exported once for a fixed input size
    (the session settings are the pose engines', `engines.runtime.ort_session`).

    The export is cached in ``path`` (when given) so that later runs start at once.
    """

    name = "onnxruntime"

    def __init__(self, graph: Any, input_hw: tuple[int, int], path: Path | None) -> None:
        import torch

        from ..engines.runtime import ort_session

        source = export_detector(graph, input_hw, path)
        self.path = path
        # no busy-waiting between runs: the pose model needs the cores in between
        self.session = ort_session(source, threads=max(1, torch.get_num_threads()),
                                   spinning=False, quiet=True, what="the detector")

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [self.session.run(None, {"pixel_values": np.ascontiguousarray(batch[i:i + 1])})
                for i in range(len(batch))]
        return (np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]))


class OpenVinoRunner:
    """Runs the detector graph with OpenVINO (CPU, float32), compiled from the cached ONNX
    export with the pose engines' settings (`engines.runtime.compile_openvino`: latency hint,
    compiled-model cache on disk)."""

    name = "openvino"

    def __init__(self, graph: Any, input_hw: tuple[int, int], path: Path | None) -> None:
        import torch

        from ..engines.runtime import compile_openvino

        source = export_detector(graph, input_hw, path)
        self.path = path
        threads = max(1, torch.get_num_threads())
        if isinstance(source, Path):
            self.compiled, _ = compile_openvino(source, torch.float32, threads=threads)
        else:  # not cacheable (e.g. random weights): compiled from a temporary file
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "detector.onnx"
                file.write_bytes(source)
                self.compiled, _ = compile_openvino(file, torch.float32, threads=threads,
                                                    use_cache=False)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [self.request.infer({0: np.ascontiguousarray(batch[i:i + 1])})
                for i in range(len(batch))]
        return (np.concatenate([np.asarray(o[0], np.float32) for o in outs]),
                np.concatenate([np.asarray(o[1], np.float32) for o in outs]))


def detector_export_path(model_id: str, model: Any, input_hw: tuple[int, int],
                         onnx_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the ONNX export of a hub/folder detector is cached (None: not cacheable):
    ``<onnx_dir or cache folder/detectors>/<name>-<H>x<W>-<key>.onnx``, the key covering the
    hub id, hub commit (or the weight files of a folder), input size and the
    torch/transformers versions."""
    import torch
    import transformers

    parts = [model_id, str(getattr(model.config, "_commit_hash", None)), str(input_hw),
             transformers.__version__, torch.__version__]
    local = Path(model_id)
    if local.is_dir():
        parts += [f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(local.glob("*.safetensors"))]
        parts += [f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(local.glob("*.bin"))]
    elif parts[1] == "None":
        return None  # neither a hub snapshot nor a folder: no stable key
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    base = Path(onnx_dir) if onnx_dir is not None else cache_dir() / "detectors"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", local.name if local.is_dir() else model_id)
    return base / f"{safe}-{input_hw[0]}x{input_hw[1]}-{key}.onnx"


def _build_runner(name: str, graph: Any, hw: tuple[int, int], path: Path | None) -> Any:
    return (OpenVinoRunner if name == "openvino" else OrtRunner)(graph, hw, path)


def first_runner(graph: Any, hw: tuple[int, int], path: Path | None, names: Sequence[str],
                 model_id: str, strict: bool) -> Any:
    """The first of the `names` engines that runs the graph (None: none does, PyTorch runs
    it). ``strict``: an engine that fails is an error (a named engine), else a warning."""
    for name in names:
        try:
            return _build_runner(name, graph, hw, path)
        except Exception as exc:  # noqa: BLE001 - an exporter/runtime gap: torch still works
            if strict:
                raise InputError(f"the detector {model_id!r} could not be run with "
                                 f"{ENGINE_TITLES[name]}: {exc}") from exc
            logger.warning("the detector %s does not run with %s (%s)", model_id,
                           ENGINE_TITLES[name], exc)
    return None


def choose_detector_engine(seconds: Mapping[str, float],
                           order: Sequence[str] = AUTO_DETECTOR_ENGINES) -> str:
    """What ``--det-engine auto`` keeps, given seconds per frame of each candidate engine:
    the fastest; one within `DETECTOR_TIE` of it that comes first in `order` wins a tie (a
    difference below the noise of a timing does not flip the choice between runs)."""
    if not seconds:
        raise ValueError("no detector engine was timed")
    return fastest(seconds, order, DETECTOR_TIE)


def _time_runners(runners: Mapping[str, Any], hw: tuple[int, int],
                  rounds: int = DETECTOR_CALIBRATION_ROUNDS) -> dict[str, float]:
    """Seconds per frame of each runner on one random input (`engines.choice.time_calls`)."""
    batch = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    return time_calls({name: functools.partial(runner, batch)
                       for name, runner in runners.items()}, rounds)


def _calibration_fingerprint(names: Sequence[str]) -> dict[str, Any]:
    """What makes the choice differ: the machine, threads and runtime versions, the
    candidates."""
    return {**machine_fingerprint(), "candidates": list(names)}


def calibrated_runner(graph: Any, hw: tuple[int, int], path: Path | None,
                      names: Sequence[str], model_id: str) -> Any:
    """``--det-engine auto`` among several installed runtimes: the choice remembered for this
    export, machine and runtimes, else a short calibration (`_time_runners`,
    `choose_detector_engine`), remembered beside the cached export
    (``<export>.auto-engine.json``; a detector without a cached export measures each time)."""
    record = None if path is None else path.with_name(path.stem + ".auto-engine.json")
    memory = RememberedChoice(record, _calibration_fingerprint(names),
                              what="the detector engine choice")
    remembered = (memory.read() or {}).get("engine")
    if remembered in names:
        ordered = [remembered, *[n for n in names if n != remembered]]
        return first_runner(graph, hw, path, ordered, model_id, strict=False)
    runners: dict[str, Any] = {}
    for name in names:
        runner = first_runner(graph, hw, path, [name], model_id, strict=False)
        if runner is not None:
            runners[name] = runner
    if len(runners) < 2:
        return next(iter(runners.values()), None)
    seconds = _time_runners(runners, hw)
    engine = choose_detector_engine(seconds, names)
    logger.info("detector engine auto: %s (%s ms per frame)", ENGINE_TITLES[engine],
                ", ".join(f"{ENGINE_TITLES[k]} {1e3 * v:.1f}" for k, v in seconds.items()))
    memory.write({"engine": engine,
                  "ms_per_frame": {k: round(1e3 * v, 3) for k, v in seconds.items()}})
    return runners[engine]

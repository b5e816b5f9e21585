"""The OpenVINO engine: an exported graph compiled by OpenVINO for the CPU, in float32 or bf16.

Needs ``openvino`` (``pip install 'vitpose[openvino]'``), imported when an engine is built. The
compiled model is cached on disk (OpenVINO's ``CACHE_DIR``, under the vitpose cache folder), so
the second start of the same graph and settings loads it instead of compiling (about 0.2 s
instead of 2 s for ViTPose-B).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...models.vitpose import ViTPoseConfig
from .base import Engine, EngineError
from .ovcore import shared_core
from .precision import resolve_dtype
from .runtime import OV_MISSING, compile_openvino, openvino_config

__all__ = ["OpenVinoEngine", "openvino_available", "openvino_config"]


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoEngine(Engine):
    """A file written by `vitpose export` (or `onnx_file_for`) compiled by OpenVINO.

    Args:
        path: the ``.onnx`` file (with vitpose metadata), or OpenVINO IR (``.xml``).
        dtype: ``float32`` (exact) or ``bfloat16`` (OpenVINO's bf16 inference precision: every
            matrix product in bf16; needs a CPU with bf16, else OpenVINO computes in fp32).
        device: OpenVINO device name (``'CPU'``).
        threads: inference threads (default: OpenVINO's choice).
        cfg: the model's `ViTPoseConfig` when known (else read from the file's metadata).
        tuned: our settings (latency hint, compiled-model cache, calls split across
            streams); False = OpenVINO's defaults, one request per call.
        cache: the compiled-model cache folder (default ``<cache folder>/openvino``).
        streams: with `tuned`, calls of several rows are split into this many parts that run
            at once, each on its own OpenVINO stream (a throughput-hint compiled model sharing
            the threads); one-row calls run on a latency-hint model over all threads. Default:
            2 where there are at least 2 threads, else 1. See docs/PERFORMANCE.md ("Streams").
    """

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, dtype: str | torch.dtype = torch.float32,
                 device: str = "CPU", threads: int | None = None,
                 cfg: ViTPoseConfig | None = None, tuned: bool = True,
                 cache: str | os.PathLike | None = None, streams: int | None = None) -> None:
        try:
            import openvino  # noqa: F401 - the missing runtime is an EngineError here
        except ImportError:
            raise EngineError(OV_MISSING) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise EngineError(f"model file {self.path} does not exist")
        self.dtype = resolve_dtype(dtype, "cpu")
        self.device = torch.device("cpu")
        self.ov_device = device
        core = shared_core()  # one Core per process: see ovcore.py
        if cfg is None:
            cfg = _config_from_file(core, self.path)
        self.cfg = cfg
        self.streams = _default_streams(threads) if streams is None else max(1, int(streams))
        if not tuned:
            self.streams = 1
        self._compile = lambda n: compile_openvino(
            self.path, self.dtype, device=device, threads=threads, cache=cache, tuned=tuned,
            core=core, streams=n)
        self.compiled_model, self.properties = self._compile(1)
        self.request = self.compiled_model.create_infer_request()
        self._queue: Any = None  # the split-call requests, compiled on the first such call

    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 ``[B, 3, H, W]`` -> float32 heatmaps ``[B, K, h, w]`` (numpy)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        if self.streams > 1 and len(x) > 1:
            return self._run_split(x)
        return np.asarray(self.request.infer({0: x}, share_inputs=True)[0], np.float32)

    def _run_split(self, x: np.ndarray) -> np.ndarray:
        """Rows split into up to `streams` contiguous parts inferred at once (the same values
        as one call: each row is computed independently)."""
        if self._queue is None:
            import openvino as ov
            compiled, properties = self._compile(self.streams)
            self._queue = ov.AsyncInferQueue(compiled, self.streams)
            self._queue.set_callback(_keep_output)
            self.properties = {**self.properties, "split": properties}
        parts = np.array_split(np.arange(len(x)), min(self.streams, len(x)))
        outs: list[Any] = [None] * len(parts)
        for i, rows in enumerate(parts):
            self._queue.start_async({0: x[rows[0]:rows[-1] + 1]}, (outs, i), share_inputs=True)
        self._queue.wait_all()
        return np.concatenate(outs)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(images.detach().float().cpu().numpy()))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "openvino_device": self.ov_device,
                "streams": self.streams,
                "properties": {k: str(v) for k, v in self.properties.items()},
                "file": str(self.path)}


def _default_streams(threads: int | None) -> int:
    """Two streams where there are two threads or more: on the 2-core machines of
    docs/PERFORMANCE.md two one-thread streams run a split call faster than one two-thread
    stream (fewer synchronisations, and robust to a core taken by other work)."""
    n = threads or os.cpu_count() or 1
    return 2 if n >= 2 else 1


def _keep_output(request: Any, slot: tuple[list[Any], int]) -> None:
    outs, i = slot
    outs[i] = np.array(request.get_output_tensor(0).data, np.float32)  # a copy: the request's
    # output buffer is reused by its next inference


def _config_from_file(core: Any, path: Path) -> ViTPoseConfig:
    model = core.read_model(str(path))
    try:
        text = model.get_rt_info(["framework", "vitpose_config"]).astype(str)
    except Exception:  # noqa: BLE001 - no such metadata
        raise EngineError(f"{path} was not written by `vitpose export` (no vitpose metadata); "
                          "export it again with vitpose") from None
    return ViTPoseConfig.from_dict(json.loads(text))

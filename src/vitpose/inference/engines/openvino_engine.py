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
        tuned: our settings (latency hint, compiled-model cache); False = OpenVINO's defaults.
        cache: the compiled-model cache folder (default ``<cache folder>/openvino``).
    """

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, dtype: str | torch.dtype = torch.float32,
                 device: str = "CPU", threads: int | None = None,
                 cfg: ViTPoseConfig | None = None, tuned: bool = True,
                 cache: str | os.PathLike | None = None) -> None:
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
        self.compiled_model, self.properties = compile_openvino(
            self.path, self.dtype, device=device, threads=threads, cache=cache, tuned=tuned,
            core=core)
        self.request = self.compiled_model.create_infer_request()

    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 ``[B, 3, H, W]`` -> float32 heatmaps ``[B, K, h, w]`` (numpy)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        return np.asarray(self.request.infer({0: x}, share_inputs=True)[0], np.float32)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(images.detach().float().cpu().numpy()))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "openvino_device": self.ov_device,
                "properties": {k: str(v) for k, v in self.properties.items()},
                "file": str(self.path)}


def _config_from_file(core: Any, path: Path) -> ViTPoseConfig:
    model = core.read_model(str(path))
    try:
        text = model.get_rt_info(["framework", "vitpose_config"]).astype(str)
    except Exception:  # noqa: BLE001 - no such metadata
        raise EngineError(f"{path} was not written by `vitpose export` (no vitpose metadata); "
                          "export it again with vitpose") from None
    return ViTPoseConfig.from_dict(json.loads(text))

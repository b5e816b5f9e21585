"""The ONNX Runtime engine: an exported graph on the CPU, CUDA or TensorRT execution provider.

Needs ``onnxruntime`` (``pip install 'vitpose[onnx]'``; ``onnxruntime-gpu`` for CUDA and
TensorRT), imported when an engine is built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...models.vitpose import ViTPoseConfig
from .base import Engine, EngineError, cache_dir, installed
from .graph import INPUT_NAME, OUTPUT_NAME
from .runtime import ORT_MISSING, ort_session

__all__ = ["OnnxRuntimeEngine", "onnxruntime_available", "providers_for"]


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed (not imported here: see `installed`)."""
    return installed("onnxruntime")


def providers_for(device: str | torch.device, available: list[str], tensorrt: bool = False,
                  fp16: bool = False, cache: str | os.PathLike | None = None
                  ) -> list[str | tuple[str, dict[str, Any]]]:
    """Execution providers for `device`, in ONNX Runtime's order of preference.

    On CUDA: TensorRT (when asked and present; its engines are cached under `cache`, fp16 when
    asked), then CUDA, then CPU as the fallback of unsupported nodes. On the CPU: CPU only.
    """
    device = torch.device(device)
    chosen: list[str | tuple[str, dict[str, Any]]] = []
    if device.type == "cuda":
        index = device.index or 0
        if tensorrt and "TensorrtExecutionProvider" in available:
            opts: dict[str, Any] = {"device_id": index, "trt_fp16_enable": bool(fp16)}
            if cache is not None:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache))
            chosen.append(("TensorrtExecutionProvider", opts))
        if "CUDAExecutionProvider" in available:
            chosen.append(("CUDAExecutionProvider", {"device_id": index}))
        if not chosen:
            raise EngineError("ONNX Runtime has no CUDA provider here (install onnxruntime-gpu "
                              "with a matching CUDA), or run on the CPU")
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxRuntimeEngine(Engine):
    """A file written by `vitpose export` (or `onnx_file_for`) run with ONNX Runtime.

    Args:
        path: the ``.onnx`` file (with vitpose metadata).
        device: ``'cpu'`` or a CUDA device (CUDA/TensorRT execution providers).
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        tensorrt: on CUDA, put the TensorRT provider first (engines cached in the cache folder).
        fp16: with TensorRT, let it compute in fp16 (then `dtype` is float16).
        providers: explicit provider list (overrides `device`, `tensorrt`).

    Attributes:
        cfg: the `ViTPoseConfig` of the exported (plain) model, from the file's metadata.
        dataset: the dataset baked in.
        input_hw: model input ``(H, W)``.
        providers: the providers the session uses.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu",
                 threads: int | None = None, tensorrt: bool = False, fp16: bool = False,
                 providers: list[Any] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineError(ORT_MISSING) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise EngineError(f"ONNX file {self.path} does not exist")
        self.device = torch.device(device)
        if providers is None:
            providers = providers_for(self.device, ort.get_available_providers(), tensorrt,
                                      fp16, cache_dir() / "tensorrt")
        self.session = ort_session(self.path, threads=threads, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "vitpose_config" not in meta:
            raise EngineError(f"{self.path} was not written by `vitpose export` (no vitpose "
                              "metadata); export it again with vitpose")
        self.cfg = ViTPoseConfig.from_dict(json.loads(meta["vitpose_config"]))
        self.dataset = meta.get("dataset", self.cfg.datasets[0])
        self.input_hw = tuple(json.loads(meta["input_hw"])) if "input_hw" in meta \
            else self.cfg.img_size
        self.providers = self.session.get_providers()
        trt = "TensorrtExecutionProvider" in self.providers
        self.dtype = torch.float16 if trt and fp16 else torch.float32
        if self.device.type == "cuda" and not self.uses_cuda:
            self.device = torch.device("cpu")

    @property
    def uses_cuda(self) -> bool:
        return any(p in self.providers for p in ("CUDAExecutionProvider",
                                                 "TensorrtExecutionProvider"))

    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 ``[B, 3, H, W]`` -> float32 heatmaps ``[B, K, h, w]`` (numpy)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.from_numpy(self.run(images.detach().float().cpu().numpy()))
        return out.to(self.device) if self.device.type != "cpu" else out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": list(self.providers), "file": str(self.path)}

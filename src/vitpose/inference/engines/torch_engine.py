"""The PyTorch engine: eager or `torch.compile`, float32 / bfloat16 / float16 (autocast)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ...models.vitpose import ViTPose
from .base import Engine, EngineError
from .precision import optimize_for_inference, resolve_dtype

__all__ = ["TorchEngine"]


class TorchEngine(Engine):
    """Our `ViTPose` in PyTorch: ``head(forward_features(x, dataset))`` under autocast.

    Args:
        model: a `ViTPose`. For a lower-precision `dtype` it should have been prepared by
            `optimize_for_inference` (weights cast once); ``prepare=True`` does that on a copy.
        dataset: dataset name or index (head and ViTPose+ expert); default the first.
        dtype: compute dtype (``'auto'`` allowed); float32 runs without autocast.
        prepare: run `optimize_for_inference(copy, dtype, compile)` on a copy of `model`.
        compile: with ``prepare``, `torch.compile` the backbone (with inductor freezing).
        threads: torch's intra-op threads (``torch.set_num_threads``: for the whole process);
            default: leave torch's setting (see `engines.threads.default_threads`).
    """

    backend = "torch"

    def __init__(self, model: ViTPose, dataset: int | str | None = None,
                 dtype: str | torch.dtype = torch.float32, *, prepare: bool = False,
                 compile: bool = False, threads: int | None = None) -> None:
        device = next(model.parameters()).device
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.dtype = resolve_dtype(dtype, device)
        if compile and not prepare:
            raise EngineError("compile=True needs prepare=True (the backbone is compiled on a "
                              "prepared copy)")
        if prepare:
            model = optimize_for_inference(copy.deepcopy(model), self.dtype, compile=compile)
        self.model = model.eval()
        self.device = device
        self.compiled = compile or hasattr(model.backbone, "_orig_mod")
        self.dataset_index = model.dataset_index_of(dataset if dataset is not None else 0)
        self.head = model.head_for(self.dataset_index)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=not self.exact):
            return self.head(self.model.forward_features(x, self.dataset_index)).float()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads": torch.get_num_threads()}

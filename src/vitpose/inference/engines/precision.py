"""Preparing a PyTorch model for fast inference: the compute dtype and the weight cast.

* `resolve_dtype` picks the compute dtype for ``"auto"``: bf16 on CPUs with native bf16
  (AVX512-BF16/AMX) and on GPUs from Ampere on, fp16 on older GPUs, else float32.
* `optimize_for_inference` casts the matrix-multiply weights of a model to that dtype once, so
  that autocast no longer converts every weight on every call, and optionally wraps the
  backbone in `torch.compile`.
"""

from __future__ import annotations

import os
from functools import cache

import torch
from torch import nn

from ...models.precision import float32_layers
from ...models.vitpose import ViTPose

__all__ = ["DTYPES", "DTYPE_CHOICES", "INT8", "cpu_features", "cpu_supports_bf16",
           "optimize_for_inference", "resolve_dtype"]

#: The compute dtypes of the engines, by name: the one home of these names (command lines take
#: `DTYPE_CHOICES`).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: int8: post-training quantization, an opt-in with a certificate (`engines.int8`); never a
#: compute dtype of torch, never chosen by ``auto``.
INT8 = "int8"
#: What ``--dtype`` accepts where an engine is built (``int8`` only where a command offers it).
DTYPE_CHOICES = ("auto", *DTYPES)

#: The CPU flags the engine choice looks at (``/proc/cpuinfo`` names).
_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
             "avx_vnni")


@cache
def cpu_features() -> frozenset[str]:
    """The instruction sets of this CPU that decide which engine and dtype are fast: among
    AVX2, FMA, AVX-512 (F, VNNI, BF16), AMX (BF16, INT8) and AVX-VNNI (``/proc/cpuinfo``
    names; empty where unknown)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return frozenset(f for f in _FEATURES if f in flags)
    except OSError:
        pass
    return frozenset()


@cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            flags = ""
            if os.path.exists("/proc/cpuinfo"):
                with open("/proc/cpuinfo") as fh:
                    flags = fh.read()
            # oneDNN also "supports" bf16 on plain AVX512 by emulation, which is slower than fp32.
            return not flags or "avx512_bf16" in flags or "amx_bf16" in flags
    except (AttributeError, RuntimeError, OSError):
        pass
    return False


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """``'auto'`` -> the fastest accurate-enough compute dtype for `device`; names -> dtypes.

    ``auto`` is bf16 on CPUs with native bf16 (AVX512-BF16/AMX) and fp32 on other CPUs; on CUDA
    it is bf16 where supported (Ampere and newer) and fp16 otherwise.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got '{dtype}'")
        return DTYPES[dtype]
    device = torch.device(device)
    if device.type == "cuda":
        # native bf16 from Ampere (compute capability 8) on; torch.cuda.is_bf16_supported()
        # also counts emulation, which is slow, and looks at the current device only
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return torch.float32


def optimize_for_inference(model: ViTPose, dtype: str | torch.dtype = torch.float32,
                           compile: bool = False) -> ViTPose:
    """Prepare `model` (in place) for `PoseEstimator(model, dtype=dtype)`.

    For a lower-precision `dtype` the weights of every Linear and convolution are cast to it
    once. LayerNorm, BatchNorm and the positional embedding stay float32, as autocast computes
    them, and so do the patch embedding and the heads' final layers, which run outside autocast
    (`vitpose.models.precision`). The output therefore equals plain autocast, while the per-call
    weight conversion (about a third of a bf16 forward of ViTPose-B at batch 1 on CPU) is gone.
    The model must then always run under autocast with that dtype (as `PoseEstimator` does);
    do not train it or call it in float32 afterwards.

    Args:
        model: a `ViTPose` (put in eval mode).
        dtype: the estimator's dtype (``'auto'`` allowed, resolved for the model's device).
        compile: wrap the backbone in `torch.compile` and turn on inductor's weight freezing
            for the process (the first calls compile for seconds; inference only).

    Returns:
        the same model.
    """
    model.eval()
    device = next(model.parameters()).device
    dtype = resolve_dtype(dtype, device)
    if dtype != torch.float32:
        # the patch embedding and the heatmap layers run outside autocast (`models.precision`)
        keep = {id(m) for m in float32_layers(model)}
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and id(m) not in keep:
                m.to(dtype)
    if compile:
        # Inductor's freezing: weights become constants of the graph, pre-packed for oneDNN on
        # CPU (bf16 ViTPose-B at batch 1 on a 2-core Sapphire Rapids: ~1.5x faster than eager;
        # without freezing ~1.1x). It is read from the global config when the graph compiles,
        # at the first call (``torch.compile(options={"freezing": True})`` does not enable it),
        # so it is switched on for the whole process: fine for inference-only processes.
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
        model.backbone = torch.compile(model.backbone)
    return model

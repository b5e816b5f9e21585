"""Compatibility: the preparation of PyTorch models for inference lives in
`vitpose.inference.engines.precision` (with the engines that use it)."""

from .engines.precision import DTYPES, cpu_supports_bf16, optimize_for_inference, resolve_dtype

__all__ = ["DTYPES", "cpu_supports_bf16", "optimize_for_inference", "resolve_dtype"]

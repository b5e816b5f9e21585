"""The engine interface, the cache folder and the accuracy measures shared by all engines."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import VitPoseError
from .precision import DTYPES, INT8

__all__ = ["DTYPE_NAMES", "Engine", "EngineError", "argmax_agreement", "cache_dir",
           "installed", "installed_version", "rel_l2"]

#: torch dtype -> name; ``torch.int8`` names the quantized engines (`engines.int8`)
DTYPE_NAMES = {**{v: k for k, v in DTYPES.items()}, torch.int8: INT8}


class EngineError(VitPoseError):
    """An engine cannot be built or run (missing runtime, bad file, unsupported setting)."""


class Engine:
    """One way of running a model: normalised crops ``[N, 3, H, W]`` -> heatmaps ``[N, K, h, w]``.

    ``engine(images)`` takes float32 images (any device) and returns float32 heatmaps on
    `device`. The flip test, decoding and everything else stay in `PoseEstimator`; an engine
    replaces only the model call.

    Attributes:
        backend: ``'torch'``, ``'onnxruntime'`` or ``'openvino'``.
        dtype: the compute precision (``torch.float32`` is the exact path).
        device: where the heatmaps are returned (and where inputs are best put).
        compiled: `torch.compile` (torch engines only).
    """

    backend: str = "?"
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")
    compiled: bool = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def exact(self) -> bool:
        """Whether this engine computes in float32 (the exact path)."""
        return self.dtype == torch.float32

    @property
    def label(self) -> str:
        """``backend/dtype[+compile]``, e.g. ``openvino/bfloat16``."""
        return f"{self.backend}/{DTYPE_NAMES[self.dtype]}" + ("+compile" if self.compiled else "")

    def describe(self) -> dict[str, Any]:
        """Facts about the engine for reports (backend, dtype, device, provider...)."""
        return {"engine": self.label, "device": str(self.device)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} on {self.device}>"


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (a runtime's import costs a
    fraction of a second that a one-image job should not pay)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_version(module: str, *dists: str) -> str | None:
    """The version of `module` (the imported module's, else the installed distribution's: any
    of `dists`, default the module's name), without importing it; None when absent."""
    if not installed(module):
        return None
    if sys.modules.get(module) is not None:
        return getattr(sys.modules[module], "__version__", None)
    from importlib import metadata
    for dist in dists or (module,):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        return __import__(module).__version__
    except (ImportError, AttributeError):
        return None


def cache_dir() -> Path:
    """The vitpose cache folder: ``$VITPOSE_CACHE``, else ``$XDG_CACHE_HOME/vitpose``, else
    ``~/.cache/vitpose``. Engines keep exported graphs, compiled models and the choices of
    ``--backend auto`` here."""
    if os.environ.get("VITPOSE_CACHE"):
        return Path(os.environ["VITPOSE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vitpose"


def _as_f64(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, np.float64)


def rel_l2(a: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor) -> float:
    """``|a - ref| / |ref|`` in float64 (0 when both are 0)."""
    a, ref = _as_f64(a), _as_f64(ref)
    denom = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(a - ref))
    return num / denom if denom > 0 else num


def argmax_agreement(out: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor
                     ) -> tuple[float, float]:
    """Shares of keypoints whose heatmap arg-max is the same as in `ref`, and within one
    heatmap pixel of it (heatmaps ``[N, K, h, w]``)."""
    out, ref = _as_f64(out), _as_f64(ref)
    w = ref.shape[-1]
    a = out.reshape(*out.shape[:2], -1).argmax(-1)
    b = ref.reshape(*ref.shape[:2], -1).argmax(-1)
    if a.size == 0:
        return 1.0, 1.0
    same = float((a == b).mean())
    near = float(((np.abs(a // w - b // w) <= 1) & (np.abs(a % w - b % w) <= 1)).mean())
    return same, near

"""Mixed-precision policy: the two ends of the network stay float32 under autocast.

Under bf16 (or fp16) autocast every matrix product rounds its inputs to 8 (11) significant
bits. Two of those roundings cost far more accuracy than the others and almost no time to avoid:

* the patch embedding, whose inputs are the normalised pixels: rounding them throws away part
  of the 8-bit image before the network has seen it;
* the layer that produces the heatmaps: rounding its output creates ties and flips between
  neighbouring pixels near a flat-topped maximum, i.e. moves the arg-max that decoding reads.

Together they are under 1% of the FLOPs of ViTPose-B. The modules that own such a layer name it
in ``FLOAT32_CHILDREN`` and call it through `outside_autocast`; `vitpose.inference.
precision.optimize_for_inference` leaves them float32 when it casts the other weights. Measured on
a trained ViTPose-B (docs/PERFORMANCE.md): relative L2 of bf16 heatmaps 6.3e-3 -> 2.4e-3,
keypoints that keep the fp32 arg-max 92.3% -> 99.0%, at the same speed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["autocast_on", "outside_autocast", "float32_layers"]


def autocast_on(device_type: str) -> bool:
    """Whether autocast is on for `device_type` (False for types without autocast, e.g. meta)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


def outside_autocast(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     dtype: torch.dtype) -> torch.Tensor:
    """``layer(x)`` computed in `dtype` (the layer's weight dtype) with autocast off.

    Without autocast this is plain ``layer(x)``: a model cast to half precision by hand
    (``model.half()``) keeps computing in half precision.
    """
    if not autocast_on(x.device.type):
        return layer(x)
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.to(dtype))


def float32_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of `model` that run outside autocast (``FLOAT32_CHILDREN`` of its modules)."""
    return [getattr(m, name) for m in model.modules()
            for name in getattr(type(m), "FLOAT32_CHILDREN", ())]

"""Export: a model to one ONNX file, validated against PyTorch.

`export_onnx` writes one graph ``images [B, 3, H, W] -> heatmaps [B, K, H/4, W/4]`` with a
dynamic batch dimension (`vitpose.inference.engines.graph.write_onnx`). For ViTPose+ and
multi-task models the dataset is chosen at export time and baked in: the MoE experts of that
dataset are folded into ``fc2`` (the exact plain model of that dataset) and only its head is
kept. The export is checked with ONNX Runtime against the PyTorch model on two batch sizes
(relative L2 error below ``tolerance``, 1e-4 by default), and the model facts (config, dataset,
input size) are stored as ONNX metadata.

Running such a file is the job of the inference engines (`vitpose.inference.engines`:
`OnnxRuntimeEngine`, `OpenVinoEngine`); preparing PyTorch models for fast inference
(`optimize_for_inference`, `resolve_dtype`) lives there too. The names below that come from
there are re-exported for compatibility.

ONNX export needs the ``onnx`` package and validation ``onnxruntime`` (``pip install
'vitpose[onnx]'``); both are imported lazily.

`export_int8` writes the opt-in int8 engine (`vitpose.inference.engines.int8`: NNCF's static
quantization of the OpenVINO trunk, calibrated on crops of the user's images) to a folder with
its certificate; `load_int8` runs it (``pip install 'vitpose[int8]'``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .errors import VitPoseError
from .inference.engines import (
    DTYPES,
    EngineError,
    OnnxRuntimeEngine,
    cpu_supports_bf16,
    onnxruntime_available,
    optimize_for_inference,
    plain_config,
    plain_model_for,
    rel_l2,
    resolve_dtype,
    write_onnx,
)
from .models.vitpose import ViTPose

__all__ = [
    "DTYPES",
    "ExportError",
    "export_int8",
    "OnnxExport",
    "cpu_supports_bf16",
    "export_onnx",
    "onnxruntime_available",
    "optimize_for_inference",
    "plain_config",
    "plain_model_for",
    "rel_l2",
    "resolve_dtype",
    "validate_onnx",
]

log = logging.getLogger(__name__)


class ExportError(VitPoseError):
    """Export failed, or the exported model does not reproduce the PyTorch output."""


@dataclasses.dataclass
class OnnxExport:
    """What `export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        dataset: the dataset baked in.
        input_shape: ``[B, 3, H, W]`` with ``B`` dynamic (written as -1).
        num_keypoints: K.
        max_rel_error: worst relative L2 error of ONNX Runtime against PyTorch over the checked
            batch sizes (None when validation was skipped).
        checked_batch_sizes: the batch sizes validated.
    """

    path: Path
    dataset: str
    input_shape: tuple[int, int, int, int]
    num_keypoints: int
    max_rel_error: float | None = None
    checked_batch_sizes: tuple[int, ...] = ()


def export_onnx(model: ViTPose, path: str | os.PathLike, dataset: int | str | None = None,
                opset: int = 17, validate: bool = True, tolerance: float = 1e-4,
                check_batch_sizes: tuple[int, ...] = (1, 3)) -> OnnxExport:
    """Export `model` for `dataset` to ONNX with a dynamic batch dimension.

    Args:
        model: a `ViTPose` (any device; exported from a float32 CPU copy).
        path: output ``.onnx`` file (parent folders are created; written atomically).
        dataset: the dataset (name or index) whose experts and head are baked in; default the
            model's first.
        opset: ONNX opset.
        validate: run the file with ONNX Runtime on `check_batch_sizes` and compare with PyTorch.
        tolerance: largest accepted relative L2 error ``|ort - torch| / |torch|``.
        check_batch_sizes: batch sizes of the validation (two different sizes prove the batch
            dimension is dynamic).

    Returns:
        an `OnnxExport`.

    Raises:
        ExportError: the ``onnx`` package is missing, or validation fails.
    """
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    name = model.datasets[index]
    on_cpu_f32 = all(p.dtype == torch.float32 and p.device.type == "cpu"
                     for p in model.parameters())
    path = Path(path)
    try:
        plain = write_onnx(model, path, index, opset=opset)
    except EngineError as e:
        raise ExportError(str(e)) from None
    # the reference of the validation: the caller's model itself when it is a float32 CPU model
    # (so the folding of ViTPose+ experts is checked too), else the float32 plain copy
    reference = (lambda x: model.head_for(index)(model.forward_features(x, index))) \
        if on_cpu_f32 else (lambda x: plain.keypoint_head(plain.backbone(x)))
    h, w = plain.input_size
    result = OnnxExport(path, name, (-1, 3, h, w), plain.cfg.num_keypoints)
    if validate:
        err = validate_onnx(path, reference, check_batch_sizes)
        result.max_rel_error = err
        result.checked_batch_sizes = tuple(check_batch_sizes)
        if not err <= tolerance:
            raise ExportError(f"ONNX Runtime output differs from PyTorch by {err:.2e} relative "
                              f"(tolerance {tolerance:.0e}); the file {path} is not trustworthy")
        log.info("exported %s (dataset %s): ONNX Runtime matches PyTorch to %.1e (batch sizes %s)",
                 path, name, err, list(check_batch_sizes))
    return result


def validate_onnx(path: str | os.PathLike, model: Callable[[torch.Tensor], torch.Tensor],
                  batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Worst relative L2 error of ONNX Runtime against ``model(images)`` over `batch_sizes`.

    `model` maps float32 CPU images to heatmaps (a plain `ViTPose` in eval mode, or any
    callable), e.g. ``lambda x: m.head_for(d)(m.forward_features(x, d))`` for a ViTPose+ `m`.
    """
    try:
        runner = OnnxRuntimeEngine(path)
    except EngineError as e:
        raise ExportError(str(e)) from None
    h, w = runner.input_hw
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batch_sizes:
        x = torch.randn(b, 3, h, w, generator=g)
        with torch.no_grad():
            ref = model(x)
        out = runner(x)
        if tuple(out.shape) != tuple(ref.shape):
            raise ExportError(f"ONNX output shape {tuple(out.shape)} != PyTorch {tuple(ref.shape)} "
                              f"at batch size {b}")
        worst = max(worst, rel_l2(out, ref))
    return worst


def export_int8(model: ViTPose, folder: str | os.PathLike, dataset: int | str | None = None, *,
                images: list[str | os.PathLike] | None = None,
                calib: str | os.PathLike | None = None, variant: str | None = None,
                threads: int | None = None) -> Any:
    """Quantize `model` to int8 into `folder` (three graphs, ``certificate.json``,
    ``int8.json``), calibrated on crops of `images` or of the images in `calib` (else the
    bundled sample image, with a warning), certified on held-out crops of the same images.
    Returns the `Int8Engine` (its ``certificate`` says what int8 costs)."""
    from .inference.engines.int8 import (
        DEFAULT_VARIANT,
        calibration_crops,
        quantize_int8,
        split_crops,
    )
    crops, source = calibration_crops(model, images=images, calib=calib)
    calibration, held_out = split_crops(crops)
    return quantize_int8(model, dataset, calibration, held_out, folder,
                         variant=variant or DEFAULT_VARIANT, threads=threads, source=source)

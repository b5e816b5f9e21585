"""Deployment: ONNX export (validated against PyTorch) and an ONNX Runtime backend.

* `export_onnx` writes one graph ``images [B, 3, H, W] -> heatmaps [B, K, H/4, W/4]`` with a
  dynamic batch dimension. For ViTPose+ and multi-task models the dataset is chosen at export
  time and baked in: the MoE experts of that dataset are folded into ``fc2`` (`densify_moe`, the
  exact plain model of that dataset) and only its head is kept. The export is checked against
  the PyTorch model on two batch sizes (relative L2 error below ``tolerance``, 1e-4 by default)
  and the model facts (config, dataset, input size) are stored as ONNX metadata.
* `OnnxPoseModel` runs such a file with ONNX Runtime; `OnnxPoseEstimator` is a `PoseEstimator`
  whose model calls go to ONNX Runtime (same crops, flip test, decoding and rescoring).
* Preparing PyTorch models for fast inference (`optimize_for_inference`, `resolve_dtype`)
  lives in `vitpose.inference.precision`; the names are re-exported here for compatibility.

ONNX export needs the ``onnx`` package and validation ``onnxruntime`` (``pip install
'vitpose[onnx]'``); both are imported lazily.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoints import densify_moe
from .errors import VitPoseError
from .inference.pipeline import IMAGENET_MEAN, IMAGENET_STD, PoseEstimator, TestSettings
from .inference.precision import DTYPES, cpu_supports_bf16, optimize_for_inference, resolve_dtype
from .models.vitpose import ViTPose, ViTPoseConfig
from .transforms import flip_back_heatmaps_torch

__all__ = [
    "DTYPES",
    "ExportError",
    "OnnxExport",
    "OnnxPoseEstimator",
    "OnnxPoseModel",
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

INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"


class ExportError(VitPoseError):
    """Export failed, or the exported model does not reproduce the PyTorch output."""


# --------------------------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------------------------

def plain_config(cfg: ViTPoseConfig, dataset_index: int = 0) -> ViTPoseConfig:
    """Config of the plain single-head model of one dataset (see `plain_model_for`)."""
    name = cfg.datasets[dataset_index]
    head = next((h for h in cfg.heads if h.dataset == name), None)
    if head is None:
        raise ExportError(f"the model has no head for dataset '{name}'")
    return dataclasses.replace(cfg, num_experts=1, part_features=0, datasets=(name,),
                               heads=(head,), use_checkpoint=False, drop_path_rate=0.0)


def plain_model_for(model: ViTPose, dataset: int | str | None = None) -> ViTPose:
    """The single-dataset plain ViTPose computing `model`'s heatmaps for `dataset`.

    ViTPose+ experts of that dataset are folded into ``fc2`` and only its head is kept; for a
    single-dataset model the model itself is returned.
    """
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    head = model.head_for(index)
    if not model.cfg.is_moe and len(model.heads) == 1:
        return model
    cfg = plain_config(model.cfg, index)
    sd = model.state_dict()
    if model.cfg.is_moe:
        # densify_moe picks the head by its slot in the checkpoint, which for ViTPose+ equals the
        # dataset index (one head per dataset).
        slot = model.heads.index(head)
        sd = densify_moe(sd, index)
        if slot != index:  # pragma: no cover - heads never skip datasets in released files
            raise ExportError("cannot bake a dataset whose head slot differs from its expert")
    else:
        prefix = "keypoint_head." if head is model.keypoint_head else \
            f"associate_keypoint_heads.{model.heads.index(head) - 1}."
        sd = {**{k: v for k, v in sd.items() if k.startswith("backbone.")},
              **{"keypoint_head." + k[len(prefix):]: v for k, v in sd.items()
                 if k.startswith(prefix)}}
    plain = ViTPose(cfg).to(next(model.parameters()).device)
    plain.load_state_dict(sd, strict=True)
    return plain.eval()


class _HeatmapGraph(nn.Module):
    """images -> heatmaps of one plain model (no dataset routing left in the graph)."""

    def __init__(self, model: ViTPose) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.keypoint_head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


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
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'vitpose[onnx]'") \
            from None
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    name = model.datasets[index]
    on_cpu_f32 = all(p.dtype == torch.float32 and p.device.type == "cpu"
                     for p in model.parameters())
    plain = plain_model_for(model, index)
    if not on_cpu_f32:
        plain = copy.deepcopy(plain)  # never move or upcast the caller's model
    graph = _HeatmapGraph(plain).float().cpu().eval()
    # the reference of the validation: the caller's model itself when it is a float32 CPU model
    # (so the folding of ViTPose+ experts is checked too), else the float32 copy
    reference = (lambda x: model.head_for(index)(model.forward_features(x, index))) \
        if on_cpu_f32 else graph
    h, w = plain.input_size
    example = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks, legacy-exporter notice
        torch.onnx.export(graph, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          do_constant_folding=True)
    proto = onnx.load(str(tmp))
    meta = {"vitpose_config": json.dumps(plain.cfg.to_dict()), "dataset": name,
            "source_dataset_index": str(index), "input_hw": json.dumps([h, w]),
            "num_keypoints": str(plain.cfg.num_keypoints), "producer": "vitpose"}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
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


def rel_l2(a: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor) -> float:
    """``|a - ref| / |ref|`` in float64 (0 when both are 0)."""
    a = np.asarray(a.detach().float().cpu() if isinstance(a, torch.Tensor) else a, np.float64)
    ref = np.asarray(ref.detach().float().cpu() if isinstance(ref, torch.Tensor) else ref,
                     np.float64)
    denom = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(a - ref))
    return num / denom if denom > 0 else num


def validate_onnx(path: str | os.PathLike, model: Callable[[torch.Tensor], torch.Tensor],
                  batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Worst relative L2 error of ONNX Runtime against ``model(images)`` over `batch_sizes`.

    `model` maps float32 CPU images to heatmaps (a plain `ViTPose` in eval mode, or any
    callable), e.g. ``lambda x: m.head_for(d)(m.forward_features(x, d))`` for a ViTPose+ `m`.
    """
    runner = OnnxPoseModel(path)
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


# --------------------------------------------------------------------------------------------
# ONNX Runtime backend
# --------------------------------------------------------------------------------------------

def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxPoseModel:
    """An exported ViTPose run with ONNX Runtime: ``model(images) -> heatmaps``.

    Args:
        path: a file written by `export_onnx`.
        providers: ONNX Runtime execution providers; default CUDA when available, then CPU.
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).

    Attributes:
        cfg: the `ViTPoseConfig` of the exported (plain) model, from the file's metadata.
        dataset: the dataset baked in.
        input_hw: model input ``(H, W)``.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("the ONNX Runtime backend needs onnxruntime: "
                              "pip install 'vitpose[onnx]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"ONNX file {self.path} does not exist")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ExportError(f"ONNX Runtime cannot load {self.path}: {e}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "vitpose_config" not in meta:
            raise ExportError(f"{self.path} was not written by `vitpose export` (no vitpose "
                              "metadata); export it again with vitpose")
        self.cfg = ViTPoseConfig.from_dict(json.loads(meta["vitpose_config"]))
        self.dataset = meta.get("dataset", self.cfg.datasets[0])
        self.input_hw = tuple(json.loads(meta["input_hw"])) if "input_hw" in meta \
            else self.cfg.img_size
        self.providers = self.session.get_providers()

    @property
    def uses_cuda(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 ``[B, 3, H, W]`` -> float32 heatmaps ``[B, K, h, w]`` (numpy)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Tensor in, CPU float32 tensor out."""
        return torch.from_numpy(self.run(images.detach().float().cpu().numpy()))


class OnnxPoseEstimator(PoseEstimator):
    """`PoseEstimator` whose model calls run in ONNX Runtime (CPU tensors in and out).

    Crops, flip test (the image and its mirror go through the session in one call), decoding
    and rescoring are the shared `PoseEstimator` code.

    Args:
        model: an ``.onnx`` path or an `OnnxPoseModel`.
        settings: test-time settings; default the baked-in dataset's official regime.
        meta: keypoint metadata; default from the registry by dataset name.
        batch_size: crops per session call (a flip test doubles the rows of a call).
        threads: ONNX Runtime intra-op threads when `model` is a path.
    """

    def __init__(self, model: str | os.PathLike | OnnxPoseModel,
                 settings: TestSettings | None = None, meta: Any = None, batch_size: int = 32,
                 threads: int | None = None) -> None:
        runner = model if isinstance(model, OnnxPoseModel) else OnnxPoseModel(model,
                                                                                threads=threads)
        with torch.device("meta"):  # facts only (head width, input size); no weights allocated
            skeleton = ViTPose(runner.cfg)
        super().__init__(skeleton, dataset=0, settings=settings, meta=meta,
                         batch_size=batch_size)
        self.runner = runner
        self.device = torch.device("cpu")
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255

    def with_settings(self, **changes: Any) -> OnnxPoseEstimator:
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.settings = dataclasses.replace(self.settings, **changes)
        return other

    def forward_heatmaps(self, inputs: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, len(inputs), self.batch_size):
            x = inputs[start:start + self.batch_size].float().cpu()
            if self.settings.flip_test:
                both = self.runner(torch.cat([x, x.flip(3)]))
                hm, hm_f = both[:len(x)], both[len(x):]
                hm = (hm + flip_back_heatmaps_torch(hm_f, self._flip_pairs,
                                                    shift=self.settings.shift_heatmap)) * 0.5
            else:
                hm = self.runner(x)
            outs.append(hm)
        if not outs:
            h, w = self.model.cfg.heatmap_size
            return torch.zeros((0, self.head.out_channels, h, w))
        return torch.cat(outs)

"""The inference graph of one dataset and its ONNX file, as the ONNX Runtime and OpenVINO
engines (and `vitpose export`) need it.

* `plain_model_for` gives the single-dataset plain ViTPose that computes a model's heatmaps for
  one dataset: ViTPose+ experts folded into ``fc2`` (`densify_moe`), only that dataset's head.
* `write_onnx` writes ``images [B, 3, H, W] -> heatmaps [B, K, H/4, W/4]`` with a dynamic batch
  dimension and the model facts (config, dataset, input size) as ONNX metadata.
* `onnx_file_for` keeps one such file per (weights, dataset) in the cache folder, so that an
  engine built a second time for the same weights starts without exporting again.
* `write_onnx_parts` / `onnx_parts_for` write (and cache) the same graph as three chained files,
  split where `models.precision` keeps float32 (the OpenVINO bf16 engine runs the two ends in
  float32).
* `fixed_onnx` exports any other module for one fixed input shape (the learned detectors),
  cached in a file when given one.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...checkpoints import densify_moe
from ...fileio import atomic_write_bytes
from ...models.vitpose import ViTPose, ViTPoseConfig
from .base import EngineError, cache_dir

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "PART_NAMES", "HeatmapGraph", "fixed_onnx", "model_key",
           "onnx_file_for", "onnx_parts_for", "plain_config", "plain_model_for", "write_onnx",
           "write_onnx_parts"]

INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"


def plain_config(cfg: ViTPoseConfig, dataset_index: int = 0) -> ViTPoseConfig:
    """Config of the plain single-head model of one dataset (see `plain_model_for`)."""
    name = cfg.datasets[dataset_index]
    head = next((h for h in cfg.heads if h.dataset == name), None)
    if head is None:
        raise EngineError(f"the model has no head for dataset '{name}'")
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
            raise EngineError("cannot bake a dataset whose head slot differs from its expert")
    else:
        prefix = "keypoint_head." if head is model.keypoint_head else \
            f"associate_keypoint_heads.{model.heads.index(head) - 1}."
        sd = {**{k: v for k, v in sd.items() if k.startswith("backbone.")},
              **{"keypoint_head." + k[len(prefix):]: v for k, v in sd.items()
                 if k.startswith(prefix)}}
    plain = ViTPose(cfg).to(next(model.parameters()).device)
    plain.load_state_dict(sd, strict=True)
    return plain.eval()


class HeatmapGraph(nn.Module):
    """images -> heatmaps of one plain model (no dataset routing left in the graph)."""

    def __init__(self, model: ViTPose) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.keypoint_head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def _is_cpu_f32(model: nn.Module) -> bool:
    return all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())


def write_onnx(model: ViTPose, path: str | os.PathLike, dataset: int | str | None = None,
               opset: int = 17) -> ViTPose:
    """Write the ONNX graph of `model` for `dataset` (atomically) and return the plain model
    it was traced from (float32, CPU). Needs the ``onnx`` package."""
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    plain = _plain_f32(model, index)
    h, w = plain.input_size
    example = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    _export(HeatmapGraph(plain).eval(), example, path, INPUT_NAME, OUTPUT_NAME,
            _metadata(model, plain, index), opset)
    return plain


def _plain_f32(model: ViTPose, index: int) -> ViTPose:
    plain = plain_model_for(model, index)
    if not _is_cpu_f32(plain):
        plain = copy.deepcopy(plain).float().cpu()  # never move or upcast the caller's model
    return plain


def _metadata(model: ViTPose, plain: ViTPose, index: int) -> dict[str, str]:
    h, w = plain.input_size
    return {"vitpose_config": json.dumps(plain.cfg.to_dict()), "dataset": model.datasets[index],
            "source_dataset_index": str(index), "input_hw": json.dumps([h, w]),
            "num_keypoints": str(plain.cfg.num_keypoints), "producer": "vitpose"}


#: ONNX files are protobuf messages, limited to 2 GiB: larger graphs (ViTPose-H and G) keep
#: their weights in a ``<file>.data`` beside the ``.onnx`` (ONNX's external data)
EXTERNAL_DATA_BYTES = 1_500_000_000


def _export(module: nn.Module, example: torch.Tensor, path: str | os.PathLike, input_name: str,
            output_name: str, meta: dict[str, str], opset: int = 17) -> None:
    """Trace `module` to an ONNX file with a dynamic batch and `meta` as metadata, written
    atomically (in a temporary folder beside it, then renamed into place: the weights file
    first, so that an ``.onnx`` that exists is complete)."""
    try:
        import onnx
    except ImportError:
        raise EngineError("ONNX graphs need the onnx package: pip install 'vitpose[onnx]'") \
            from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write(onnx, module, example, path, input_name, output_name, meta, opset)
    except (OSError, RuntimeError, ValueError, onnx.checker.ValidationError) as e:
        raise EngineError(f"cannot write the ONNX graph {path}: {e}") from None


def _write(onnx: Any, module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
           output_name: str, meta: dict[str, str], opset: int) -> None:
    external = sum(t.numel() * t.element_size() for t in module.state_dict().values()) > \
        EXTERNAL_DATA_BYTES
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp_dir:
        # under 2 GiB the exporter's graph stays in memory (the weights are written once, not
        # traced to a file, read back and written again); larger graphs: a file per weight
        traced: Any = io.BytesIO() if not external else Path(tmp_dir) / "traced" / "graph.onnx"
        if external:
            traced.parent.mkdir()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings on shape checks, exporter notices
            torch.onnx.export(module, (example,), traced if not external else str(traced),
                              dynamo=False, opset_version=opset, input_names=[input_name],
                              output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                              do_constant_folding=True)
        if external:
            proto = onnx.load(str(traced))  # with the weights, wherever the exporter put them
        else:
            proto = onnx.load_from_string(traced.getvalue())
            del traced
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        out = Path(tmp_dir) / path.name
        data = f"{path.name}.data"
        if external:
            onnx.save_model(proto, str(out), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data, size_threshold=1024)
        else:
            onnx.save_model(proto, str(out))
        del proto
        onnx.checker.check_model(str(out))  # by path: works past 2 GiB
        if external:
            os.replace(Path(tmp_dir) / data, path.parent / data)
        os.replace(out, path)


class _Stem(nn.Module):
    """images -> tokens (patch and position embedding)."""

    def __init__(self, model: ViTPose) -> None:
        super().__init__()
        self.backbone = model.backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(images)


class _Trunk(nn.Module):
    """tokens -> the input of the head's final layer (blocks, last norm, head body)."""

    def __init__(self, model: ViTPose) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.keypoint_head

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head.body(self.backbone.encode(tokens, 0))


class _Final(nn.Module):
    """the head's final layer -> heatmaps."""

    def __init__(self, model: ViTPose) -> None:
        super().__init__()
        self.head = model.keypoint_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.final(x)


#: the parts of `write_onnx_parts`, in order
PART_NAMES = ("stem", "trunk", "final")


def write_onnx_parts(model: ViTPose, paths: Sequence[str | os.PathLike],
                     dataset: int | str | None = None, opset: int = 17) -> None:
    """Write the graph of `model` for `dataset` as three ONNX files chained by their single
    input and output: ``stem`` (images -> tokens), ``trunk`` (tokens -> the input of the
    heatmap layer) and ``final`` (-> heatmaps). The split lies where `models.precision` keeps
    float32 under autocast (the patch embedding and the heatmap layer), so that a runtime with
    one precision per graph can do the same (the OpenVINO bf16 engine)."""
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    plain = _plain_f32(model, index)
    meta = _metadata(model, plain, index)
    h, w = plain.input_size
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    stem, trunk, final = _Stem(plain).eval(), _Trunk(plain).eval(), _Final(plain).eval()
    with torch.no_grad():
        tokens = stem(x)
        body = trunk(tokens)
    for module, example, path, name in zip((stem, trunk, final), (x, tokens, body), paths,
                                           PART_NAMES, strict=True):
        _export(module, example, path, "input", "output", {**meta, "part": name}, opset)


def model_key(model: ViTPose, dataset: int | str | None = None) -> str:
    """A short hash of the model's config, weights and dataset: the cache key of its graphs."""
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    h.update(f"dataset={index}".encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        h.update(str(t.dtype).encode())
        if t.numel():
            h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy())  # no copy
    return h.hexdigest()[:20]


def onnx_file_for(model: ViTPose, dataset: int | str | None = None,
                  folder: str | os.PathLike | None = None, key: str | None = None) -> Path:
    """The cached ONNX file of `model` for `dataset` (exported on first use).

    The graph is float32 whatever the model's compute dtype: weights cast by
    `optimize_for_inference` are exported as float32 again (which is exact: bf16 and fp16
    values are float32 values)."""
    folder = Path(folder) if folder is not None else cache_dir() / "graphs"
    key = key or model_key(model, dataset)
    path = folder / f"vitpose-{key}.onnx"
    if not path.is_file():
        write_onnx(model, path, dataset)
    return path


def onnx_parts_for(model: ViTPose, dataset: int | str | None = None,
                   folder: str | os.PathLike | None = None, key: str | None = None
                   ) -> tuple[Path, Path, Path]:
    """The cached three-part graph of `model` for `dataset` (`write_onnx_parts`), exported on
    first use beside `onnx_file_for`'s file."""
    folder = Path(folder) if folder is not None else cache_dir() / "graphs"
    key = key or model_key(model, dataset)
    paths = tuple(folder / f"vitpose-{key}.{name}.onnx" for name in PART_NAMES)
    if not all(p.is_file() for p in paths):
        write_onnx_parts(model, paths, dataset)
    return paths  # type: ignore[return-value]


def fixed_onnx(module: nn.Module, example: torch.Tensor, path: str | os.PathLike | None = None,
               *, input_names: Sequence[str], output_names: Sequence[str], opset: int = 17
               ) -> bytes | Path:
    """The ONNX graph of `module` for the fixed input shape of `example` (the TorchScript
    exporter; graphs under 2 GiB, no ``onnx`` package needed).

    With `path`: the file when it exists (exported before), else exported and written there
    atomically, and the path returned. Without: the graph's bytes (a source without a stable
    cache key).
    """
    if path is not None and Path(path).is_file():
        return Path(path)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks, exporter notices
        torch.onnx.export(module.cpu(), (example.cpu(),), buffer, dynamo=False,
                          opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names))
    if path is None:
        return buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue(), fsync=False)

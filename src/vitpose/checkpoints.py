"""Every checkpoint format of ViTPose, read safely and mapped onto one canonical naming.

Formats (vitpose-reference §5, §6):

* **official** `.pth` of the original project: ``{'state_dict': {...}, 'meta': {...}}`` with
  ``backbone.*``, ``keypoint_head.*`` and (multi-task / ViTPose+) ``associate_keypoint_heads.*``.
  This is also our own naming, so it needs no remapping. Files written by the original
  ``tools/model_split.py`` are official files with leftover expert / associate tensors.
* **hf**: a Hugging Face ``transformers`` VitPose checkpoint (``config.json`` + safetensors), keys
  ``backbone.embeddings.*``, ``backbone.encoder.layer.*``, ``head.*``.
* **mae**: a backbone-only MAE pre-training checkpoint (``model`` container, timm naming, class
  token, 14x14 or 16x16 grid) used to initialise training.

Loading is safe (``torch.load(weights_only=True)`` or safetensors) and strict: any missing,
unexpected or mis-shaped tensor raises `CheckpointError` naming them; nothing is half-loaded.
The model classes never see a foreign key name (timm's ``checkpoint_filter_fn`` idea).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import CheckpointError, InputError
from .fileio import atomic_open, atomic_write_json, read_json
from .models.vitpose import (
    PLUS_DATASETS,
    HeadConfig,
    ViTPose,
    ViTPoseConfig,
    default_datasets,
    num_heads_for_width,
    released_num_heads,
)

__all__ = [
    "read_checkpoint", "unwrap_state_dict", "detect_format", "hf_to_official", "official_to_hf",
    "check_recorded_config", "infer_config", "load_state_dict_strict", "load_local_weights",
    "load_pretrained_backbone",
    "mae_to_backbone", "densify_moe", "split_vitpose_plus", "save_checkpoint",
    "save_hf_pretrained", "read_hf_config", "to_canonical", "prepare_state_dict",
    "recorded_config", "checkpoint_config", "truncate_to_hf_output", "with_datasets",
    "canonical_state_dict",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file safely (no arbitrary pickles).

    Args:
        path: a ``.pth``/``.pt``/``.bin`` (torch) or ``.safetensors`` file, or a folder holding a
            Hugging Face checkpoint (``model.safetensors`` or ``pytorch_model.bin``).

    Returns:
        the file's top-level object (a dict); for a HF folder also ``'__hf_config__'`` (the parsed
        ``config.json``) when present.
    """
    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (p / name).is_file():
                obj = read_checkpoint(p / name)
                cfg = read_hf_config(p)
                if cfg is not None:
                    obj = {"state_dict": unwrap_state_dict(obj), "__hf_config__": cfg}
                return obj
        raise CheckpointError(f"{p} is a folder without model.safetensors or pytorch_model.bin")
    if not p.is_file():
        raise CheckpointError(f"checkpoint file not found: {p}" + (
            "" if p.exists() else " (hub ids and variant names: vitpose.load_weights)"))
    try:
        with open(p, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise CheckpointError(f"cannot read {p}: permission denied") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {p}: {e.strerror or e}") from None
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return dict(load_file(str(p), device="cpu"))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{p} is not a readable safetensors file ({e}); "
                                  "is it truncated or of another format?") from None
    try:
        obj = _torch_load(p)
    except PermissionError:
        raise CheckpointError(f"cannot read {p}: permission denied") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        text = str(e)
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if unsafe:  # a real pickle of Python objects: never executed
            raise CheckpointError(
                f"{p} holds a Python object ({unsafe.group(1)}) besides tensors; it is refused "
                "because loading it would run code from the file. If you trust the file, re-save "
                "its tensors only, e.g. torch.save({'state_dict': model.state_dict()}, path)"
            ) from None
        # torch's own advice (weights_only=False) is wrong for a damaged or foreign file
        detail = re.search(r"WeightsUnpickler error: ?\s*(\S[^\n]*)", text)
        msg = detail.group(1).strip() if detail else (
            text.strip().splitlines()[0] if text.strip() and "weights_only" not in text
            else type(e).__name__)
        raise CheckpointError(f"{p} is not a readable PyTorch checkpoint ({msg[:120]}); "
                              "is it truncated or not a checkpoint at all?") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def _torch_load(p: Path) -> Any:
    """``torch.load`` of tensors only, memory-mapped where the file allows it (the zip format
    of every ``torch.save`` since PyTorch 1.6): nothing is read until used, so a training
    checkpoint's optimiser state (two thirds of its gigabyte) is never read to build a model,
    and tensors assigned to a model share the page cache instead of being copied. Files of the
    legacy format are read as a whole."""
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e) and "zipfile" not in str(e):
            raise
    return torch.load(str(p), map_location="cpu", weights_only=True)


def read_hf_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """Parsed ``config.json`` of a Hugging Face checkpoint folder (None if there is none)."""
    f = Path(folder) / "config.json"
    if not f.is_file():
        return None
    try:
        cfg = read_json(f, "transformers config")
    except InputError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{f} holds a JSON {type(cfg).__name__}, not a transformers "
                              "model config (an object with 'backbone_config', ...)")
    return cfg


def unwrap_state_dict(obj: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """Take the tensors out of a container (``state_dict``/``model``/``module``), strip
    ``module.`` / ``_orig_mod.`` prefixes, and check that every value is a tensor."""
    for key in ("state_dict", "model", "module"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            if k in ("meta", "optimizer", "__hf_config__"):
                continue
            raise CheckpointError(f"entry '{k}' is a {type(v).__name__}, not a tensor: "
                                  "this is not a model state dict")
        if v.layout != torch.strided or v.is_quantized:
            raise CheckpointError(f"entry '{k}' is a {str(v.layout).replace('torch.', '')} "
                                  f"{'quantized ' if v.is_quantized else ''}tensor; model "
                                  "weights are dense tensors (re-save it with .to_dense())")
        k = re.sub(r"^(module\.|_orig_mod\.)+", "", k)
        out[k] = v
    if not out:
        raise CheckpointError("the checkpoint holds no tensors")
    return out


def detect_format(sd: Mapping[str, torch.Tensor]) -> str:
    """'official' (also ours), 'hf' or 'mae' (backbone only), from telltale keys."""
    keys = list(sd)
    if any(k.startswith(("backbone.embeddings.", "backbone.encoder.", "head.")) for k in keys):
        return "hf"
    if any(k.startswith(("backbone.blocks.", "keypoint_head.", "backbone.patch_embed.")) for k in keys):
        return "official"
    if any(k.startswith(("blocks.", "patch_embed.")) for k in keys):
        return "mae"
    raise CheckpointError("unrecognised checkpoint layout: expected ViTPose keys (backbone.blocks.*, "
                          "keypoint_head.*), Hugging Face VitPose keys (backbone.embeddings.*, "
                          f"head.*) or MAE keys (blocks.*); first keys are {keys[:5]}")


# --------------------------------------------------------------------------------------------
# Hugging Face <-> official naming (vitpose-reference §6.3)
# --------------------------------------------------------------------------------------------

_HF_HEAD = {"deconv1": "deconv_layers.0", "batchnorm1": "deconv_layers.1",
            "deconv2": "deconv_layers.3", "batchnorm2": "deconv_layers.4", "conv": "final_layer"}
_HF_LAYER = {"layernorm_before": "norm1", "layernorm_after": "norm2",
             "attention.output.dense": "attn.proj", "mlp": "mlp"}


def hf_to_official(sd: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename a transformers VitPose state dict to the official naming (q, k, v re-fused)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k == "backbone.embeddings.position_embeddings":
            out["backbone.pos_embed"] = v
        elif k.startswith("backbone.embeddings.patch_embeddings.projection."):
            out["backbone.patch_embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("backbone.layernorm."):
            out["backbone.last_norm." + k.rsplit(".", 1)[1]] = v
        elif m := re.fullmatch(r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\."
                               r"(query|key|value)\.(weight|bias)", k):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
            out[f"backbone.blocks.{m.group(1)}.attn.qkv.{m.group(3)}"] = v  # placeholder (order)
        elif m := re.fullmatch(r"backbone\.encoder\.layer\.(\d+)\.(.+)", k):
            rest = m.group(2)
            for hf, ours in _HF_LAYER.items():
                if rest.startswith(hf + "."):
                    out[f"backbone.blocks.{m.group(1)}.{ours}{rest[len(hf):]}"] = v
                    break
            else:
                raise CheckpointError(f"unexpected Hugging Face key '{k}'")
        elif m := re.fullmatch(r"head\.(\w+)\.(.+)", k):
            if m.group(1) not in _HF_HEAD:
                raise CheckpointError(f"unexpected Hugging Face head key '{k}'")
            out[f"keypoint_head.{_HF_HEAD[m.group(1)]}.{m.group(2)}"] = v
        else:
            raise CheckpointError(f"unexpected Hugging Face key '{k}'")
    for (i, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointError(f"layer {i}: attention {kind} is missing one of query/key/value")
        out[f"backbone.blocks.{i}.attn.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], 0)
    return out


def official_to_hf(sd: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename an official/our state dict to the transformers VitPose naming (qkv split).

    Associate heads have no place in the transformers layout and are dropped (with a log line).
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    inv_layer = {v: k for k, v in _HF_LAYER.items()}
    inv_head = {v: k for k, v in _HF_HEAD.items()}
    dropped = []
    for k, v in sd.items():
        if k == "backbone.pos_embed":
            out["backbone.embeddings.position_embeddings"] = v
        elif k.startswith("backbone.patch_embed.proj."):
            out["backbone.embeddings.patch_embeddings.projection." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("backbone.last_norm."):
            out["backbone.layernorm." + k.rsplit(".", 1)[1]] = v
        elif m := re.fullmatch(r"backbone\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", k):
            for name, part in zip(("query", "key", "value"), v.chunk(3, 0)):
                out[f"backbone.encoder.layer.{m.group(1)}.attention.attention.{name}.{m.group(2)}"] = \
                    part.clone()
        elif m := re.fullmatch(r"backbone\.blocks\.(\d+)\.(norm1|norm2|attn\.proj|mlp)\.(.+)", k):
            out[f"backbone.encoder.layer.{m.group(1)}.{inv_layer[m.group(2)]}.{m.group(3)}"] = v
        elif m := re.fullmatch(r"keypoint_head\.(deconv_layers\.\d|final_layer)\.(.+)", k):
            out[f"head.{inv_head[m.group(1)]}.{m.group(2)}"] = v
        elif k.startswith("associate_keypoint_heads.") or k == "backbone.cls_token":
            dropped.append(k)
        else:
            raise CheckpointError(f"key '{k}' has no Hugging Face equivalent")
    if dropped:
        log.info("dropped %d tensors with no transformers equivalent (associate heads)", len(dropped))
    return out


def _normalise_official(sd: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Official quirks: drop the unused ``backbone.cls_token``; ``associate_heads`` alias."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in sd.items():
        if k == "backbone.cls_token":
            continue
        out[re.sub(r"^associate_heads\.", "associate_keypoint_heads.", k)] = v
    return out


def to_canonical(sd: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Any full-model format (official or HF) -> the official/our naming."""
    fmt = detect_format(sd)
    if fmt == "mae":
        raise CheckpointError("this is a backbone-only (MAE) checkpoint; use it as "
                              "`pretrained` for training (load_pretrained_backbone), not as weights")
    return _normalise_official(hf_to_official(sd) if fmt == "hf" else sd)


# --------------------------------------------------------------------------------------------
# Architecture from tensors
# --------------------------------------------------------------------------------------------

def _head_config(sd: Mapping[str, torch.Tensor], prefix: str, dataset: str) -> HeadConfig:
    final = sd[f"{prefix}.final_layer.weight"]
    deconv = sorted({int(m.group(1)) for k in sd
                     if (m := re.fullmatch(re.escape(prefix) + r"\.deconv_layers\.(\d+)\.weight", k))
                     and sd[k].ndim == 4})
    if deconv:
        filters = tuple(int(sd[f"{prefix}.deconv_layers.{i}.weight"].shape[1]) for i in deconv)
        kernels = tuple(int(sd[f"{prefix}.deconv_layers.{i}.weight"].shape[2]) for i in deconv)
        return HeadConfig(dataset, int(final.shape[0]), len(deconv), filters, kernels,
                          int(final.shape[-1]), 0)
    # no deconvolution: the simple decoder (3x3 conv after x4 upsampling)
    return HeadConfig(dataset, int(final.shape[0]), 0, (), (), int(final.shape[-1]),
                      4 if final.shape[-1] == 3 else 0)


def _int_pair(value: Any, name: str) -> tuple[int, int]:
    def whole(v: Any) -> int:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(v)  # 64.5, "64", true: refused, never rounded
        return v

    try:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            pair = (whole(value[0]), whole(value[1]))
        elif isinstance(value, (list, tuple)) and len(value) == 1:
            pair = (whole(value[0]),) * 2
        else:
            pair = (whole(value),) * 2
    except (TypeError, ValueError):
        pair = (0, 0)
    if pair[0] < 1 or pair[1] < 1:
        raise CheckpointError(f"config.json: {name} must be a positive size or (H, W) pair, got "
                              f"{value!r}"[:200])
    return pair


#: The LayerNorm eps written in the released transformers configs (transformers' default); the
#: official code and weights use 1e-6 (docs/FIDELITY.md "LayerNorm eps").
HF_RELEASED_LAYER_NORM_EPS = 1e-12
#: The LayerNorm eps of the official code.
OFFICIAL_LAYER_NORM_EPS = 1e-6


def hf_layer_norm_eps(value: float) -> float:
    """The eps our model uses for a transformers config's ``layer_norm_eps``.

    The released transformers files say 1e-12 although the weights were trained (and the
    official code runs) with 1e-6: that value, and an absent field (transformers' default is
    the same 1e-12), give 1e-6. Any other value is a deliberate choice of whoever wrote the
    file and is honoured, so the model computes what transformers computes with it.
    """
    return OFFICIAL_LAYER_NORM_EPS if value == HF_RELEASED_LAYER_NORM_EPS else float(value)


def _config_int(cfg: Mapping[str, Any], key: str, default: int) -> int:
    """An integer field of config.json: ``6.5``, ``"6"``, ``true`` are refused, not rounded."""
    value = cfg.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"config.json: {key} must be an integer, got {value!r}"[:200])
    return value


def _config_number(cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise CheckpointError(f"config.json: {key} must be a positive number, got {value!r}"[:200])
    return float(value)


#: More blocks than any ViT (ViTPose-G has 48): a config.json beyond it is not believed.
_MAX_DEPTH = 1024


class _HFArch:
    """The architecture fields of a transformers VitPose ``config.json`` (their documented
    defaults where a field is absent), validated; see `infer_config`."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"config.json holds a {type(cfg).__name__}, not a transformers "
                                  "model config")
        if cfg.get("model_type", "vitpose") != "vitpose":
            raise CheckpointError(f"config.json describes a '{cfg.get('model_type')}' model, not "
                                  "a transformers VitPose model")
        bb = cfg.get("backbone_config")
        if bb is None:  # transformers' own default backbone (its out_indices is [4])
            bb = {"out_indices": [4]}
        if not isinstance(bb, Mapping):
            raise CheckpointError("config.json: backbone_config must be an object, got a "
                                  f"{type(bb).__name__}")
        if bb.get("model_type", "vitpose_backbone") != "vitpose_backbone":
            raise CheckpointError(f"config.json: the backbone is '{bb.get('model_type')}', not "
                                  "vitpose_backbone")
        if str(bb.get("hidden_act", "gelu")) != "gelu":
            raise CheckpointError(f"config.json: hidden_act '{bb.get('hidden_act')}' is not "
                                  "supported (ViTPose uses exact GELU)")
        if cfg.get("backbone") not in (None, "") or cfg.get("use_timm_backbone") or \
                cfg.get("use_pretrained_backbone"):
            raise CheckpointError("config.json names an external backbone; only the VitPose "
                                  "backbone is supported")
        self.hidden = _config_int(bb, "hidden_size", 768)
        self.depth = _config_int(bb, "num_hidden_layers", 12)
        self.num_heads = _config_int(bb, "num_attention_heads", 12)
        self.mlp_ratio = _config_number(bb, "mlp_ratio", 4)
        self.num_experts = _config_int(bb, "num_experts", 1)
        self.part_features = _config_int(bb, "part_features", 256)
        self.channels = _config_int(bb, "num_channels", 3)
        self.scale_factor = _config_int(cfg, "scale_factor", 4)
        self.layer_norm_eps = hf_layer_norm_eps(_config_number(bb, "layer_norm_eps", 1e-12))
        self.qkv_bias = bool(bb.get("qkv_bias", True))
        self.simple = bool(cfg.get("use_simple_decoder", True))
        self.img_size = _int_pair(bb.get("image_size", (256, 192)), "image_size")
        patch = _int_pair(bb.get("patch_size", (16, 16)), "patch_size")
        if patch[0] != patch[1]:
            raise CheckpointError(f"config.json: patch_size {list(patch)} is not square; only "
                                  "square patches are supported")
        self.patch = patch[0]
        if self.num_heads < 1 or self.hidden % self.num_heads:
            raise CheckpointError(f"config.json: num_attention_heads {self.num_heads} does not "
                                  f"divide hidden_size {self.hidden}")
        if not 1 <= self.depth <= _MAX_DEPTH:
            raise CheckpointError(f"config.json: num_hidden_layers is {self.depth} (a ViTPose "
                                  f"backbone has 1 to {_MAX_DEPTH})")
        labels = cfg.get("id2label")
        self.num_labels = len(labels) if isinstance(labels, Mapping) and labels else \
            cfg.get("num_labels")
        self.out_stage = self._out_stage(bb)

    def _out_stage(self, bb: Mapping[str, Any]) -> int:
        """The block whose output (after the final LayerNorm) feeds the head: transformers'
        pose model takes the last of the backbone's ``out_features``."""
        stages = ["stem"] + [f"stage{i}" for i in range(1, self.depth + 1)]
        indices = bb.get("out_indices")
        features = bb.get("out_features")
        try:
            if indices:
                picked = [int(i) for i in indices]
                if any(not -len(stages) <= i < len(stages) for i in picked):
                    raise ValueError("out of range")
                picked = [i % len(stages) for i in picked]
            elif features:
                picked = [stages.index(str(f)) for f in features]
            else:
                return self.depth
        except (TypeError, ValueError):
            raise CheckpointError(f"config.json: out_indices {indices!r} / out_features "
                                  f"{features!r} name no stage of a {self.depth}-block backbone"
                                  ) from None
        stage = max(picked)
        if stage < 1:
            raise CheckpointError("config.json: the pose head reads the patch embedding "
                                  "('stem', out_indices [0]); this model is not supported")
        return stage


def truncate_to_hf_output(sd: Mapping[str, torch.Tensor], hf_config: Mapping[str, Any]
                          ) -> OrderedDict[str, torch.Tensor]:
    """Drop the blocks after the one a transformers config's ``out_indices`` reads.

    transformers' pose model applies the final LayerNorm to the output of block
    ``out_indices[-1]`` (its default config says 4 of 12); the blocks after it never touch the
    heatmaps, so the exact equivalent is a backbone of that depth.
    """
    arch = _HFArch(hf_config)
    out = OrderedDict()
    dropped = 0
    for k, v in sd.items():
        m = re.match(r"backbone\.blocks\.(\d+)\.", k)
        if m and int(m.group(1)) >= arch.out_stage:
            dropped += 1
            continue
        out[k] = v
    if dropped:
        log.info("config.json reads features after block %d of %d (out_indices): the later "
                 "blocks are unused and dropped", arch.out_stage, arch.depth)
    return out


def canonical_state_dict(obj: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """The weights a checkpoint holds, as our model computes with them: unwrapped, with the
    official names (`to_canonical`) and, for a transformers file, only the blocks its
    ``out_indices`` reads (`truncate_to_hf_output`).

    Args:
        obj: what `read_checkpoint` returned (or an in-memory state dict).
    """
    hf_config = obj.get("__hf_config__") if isinstance(obj, Mapping) else None
    sd = to_canonical(unwrap_state_dict(obj))
    if hf_config is not None:
        sd = truncate_to_hf_output(sd, hf_config)
    return sd


def infer_config(sd: Mapping[str, torch.Tensor], hf_config: Mapping[str, Any] | None = None,
                 datasets: Sequence[str] | None = None, num_heads: int | None = None,
                 expert_mode: str = "keep") -> ViTPoseConfig:
    """Infer the architecture of a canonical (official-named) state dict from tensor shapes.

    Args:
        sd: canonical state dict (see `to_canonical`); for a transformers file, truncated by
            `truncate_to_hf_output`.
        hf_config: the transformers ``config.json`` if any. Every architecture field is honoured
            (heads, ``out_indices``, image and patch size, MLP ratio, qkv bias, experts,
            decoder) or the file is refused; a field that contradicts the tensors is an error.
            LayerNorm eps is 1e-6 (the official value) for the 1e-12 the released transformers
            files carry (a porting artefact, see the README); another value is honoured
            (`hf_layer_norm_eps`).
        datasets: dataset names per index, overriding the guess from the heads.
        num_heads: attention heads (not in official weights); default from `hf_config`, else
            the released variant of this width and depth (S/B 12, L/H 16), else 64-channel heads.
        expert_mode: ``'keep'`` builds a ViTPose+ MoE model if experts are present with a reduced
            fc2; ``'dense'`` builds the plain model that `densify_moe` produces.

    Returns:
        the `ViTPoseConfig` whose `ViTPose` has exactly these keys and shapes.
    """
    try:
        pos = sd["backbone.pos_embed"]
        proj = sd["backbone.patch_embed.proj.weight"]
        fc1 = sd["backbone.blocks.0.mlp.fc1.weight"]
        fc2 = sd["backbone.blocks.0.mlp.fc2.weight"]
        final = sd["keypoint_head.final_layer.weight"]
    except KeyError as e:
        raise CheckpointError(f"the checkpoint has no {e} tensor: not a ViTPose model") from None
    embed_dim = int(pos.shape[-1])
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"backbone\.blocks\.(\d+)\.", k)))
    patch = int(proj.shape[-1])
    mlp_ratio = int(fc1.shape[0]) / embed_dim
    qkv_bias = "backbone.blocks.0.attn.qkv.bias" in sd
    experts = sorted({int(m.group(1)) for k in sd
                      if (m := re.match(r"backbone\.blocks\.0\.mlp\.experts\.(\d+)\.weight$", k))})
    moe = bool(experts) and int(fc2.shape[0]) < embed_dim and expert_mode == "keep"
    part = int(embed_dim - fc2.shape[0]) if moe else 0
    has_deconv = any(k.startswith("keypoint_head.deconv_layers.") for k in sd)
    n_tokens = int(pos.shape[1]) - 1
    img_size = None
    heads_n = num_heads
    if hf_config is not None:
        hf = _HFArch(hf_config)
        problems = [f"{name} {a} (config) vs {b} (weights)" for name, a, b in (
            ("hidden_size", hf.hidden, embed_dim), ("num_hidden_layers", hf.out_stage, depth),
            ("patch_size", hf.patch, patch), ("num_channels", hf.channels, int(proj.shape[1])),
            ("mlp_ratio", round(hf.mlp_ratio, 4), round(mlp_ratio, 4)),
            ("qkv_bias", hf.qkv_bias, qkv_bias),
            ("num_experts", hf.num_experts, len(experts) if experts else 1),
            ("use_simple_decoder", hf.simple, not has_deconv),
            ("num_labels", hf.num_labels if hf.num_labels is not None else int(final.shape[0]),
             int(final.shape[0])),
        ) if a != b]
        if moe and hf.part_features != part:
            problems.append(f"part_features {hf.part_features} (config) vs {part} (weights)")
        if problems:
            raise CheckpointError("config.json contradicts the weights beside it: "
                                  + "; ".join(problems))
        if hf.simple and hf.scale_factor != 4:
            raise CheckpointError(f"config.json: scale_factor {hf.scale_factor} is not "
                                  "supported (the simple decoder upsamples by 4)")
        if num_heads is not None and num_heads != hf.num_heads:
            raise CheckpointError(f"num_heads={num_heads} contradicts config.json "
                                  f"(num_attention_heads {hf.num_heads})")
        heads_n = hf.num_heads
        img_size = hf.img_size
    if heads_n is None:
        heads_n = released_num_heads(embed_dim, depth, mlp_ratio, patch)
    if heads_n is None:
        heads_n = num_heads_for_width(embed_dim)
        log.warning("the checkpoint does not record its attention heads and no released variant "
                    "has width %d and %d blocks: assuming %d heads (pass num_heads if that is "
                    "wrong)", embed_dim, depth, heads_n)
    if heads_n < 1 or embed_dim % heads_n:
        raise CheckpointError(f"num_heads={heads_n} does not divide the width {embed_dim}")
    # official value; a transformers config's own value only when it is not the 1e-12 that the
    # released files carry (`hf_layer_norm_eps`, docs/FIDELITY.md)
    eps = hf.layer_norm_eps if hf_config is not None else OFFICIAL_LAYER_NORM_EPS
    if img_size is None:
        img_size = _guess_img_size(n_tokens, patch)
    grid = ((img_size[0] + 4 - patch) // patch + 1) * ((img_size[1] + 4 - patch) // patch + 1)
    if grid != n_tokens:
        raise CheckpointError(f"pos_embed has {n_tokens} patch tokens, which does not match an "
                              f"input of {img_size} with patch {patch}")
    n_assoc = 1 + max((int(m.group(1)) for k in sd
                       if (m := re.match(r"associate_keypoint_heads\.(\d+)\.", k))), default=-1)
    head_prefixes = ["keypoint_head"] + [f"associate_keypoint_heads.{i}" for i in range(n_assoc)]
    try:
        ks = [int(sd[f"{p}.final_layer.weight"].shape[0]) for p in head_prefixes]
    except KeyError as e:
        raise CheckpointError(f"the checkpoint has no {e} tensor: a head is incomplete") from None
    n_experts = len(experts) if moe else 1
    names = tuple(datasets) if datasets else default_datasets(ks, n_experts)
    if len(names) < len(ks):
        raise CheckpointError(f"{len(ks)} heads but only {len(names)} dataset names {names}")
    if moe and len(names) < n_experts:
        names = tuple(names) + tuple(PLUS_DATASETS[len(names):n_experts])
    heads = tuple(_head_config(sd, p, names[i]) for i, p in enumerate(head_prefixes))
    try:
        return ViTPoseConfig(img_size=img_size, patch_size=patch, embed_dim=embed_dim, depth=depth,
                             num_heads=heads_n, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                             layer_norm_eps=eps, num_experts=n_experts, part_features=part,
                             datasets=names, heads=heads)
    except ValueError as e:
        raise CheckpointError(f"the checkpoint does not describe a valid model ({e})") from None


def recorded_config(obj: Mapping[str, Any]) -> ViTPoseConfig | None:
    """The `ViTPoseConfig` that `save_checkpoint` (and training) store in
    ``meta['vitpose_config']``, validated; None if the file records none."""
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    text = meta.get("vitpose_config") if isinstance(meta, Mapping) else None
    if text is None:
        return None
    try:
        return ViTPoseConfig.from_dict(json.loads(text) if isinstance(text, str) else text)
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"the checkpoint's recorded model config (meta.vitpose_config) is "
                              f"invalid: {e}") from None


def checkpoint_config(obj: Mapping[str, Any], *, num_heads: int | None = None,
                      datasets: Sequence[str] | None = None, source: str = "the checkpoint"
                      ) -> tuple[ViTPoseConfig, OrderedDict[str, torch.Tensor]]:
    """The architecture a checkpoint holds, and its canonical state dict.

    The file decides: our recorded config (``meta.vitpose_config``), else the transformers
    ``config.json`` (every architecture field honoured, `infer_config`), else the official keys'
    shapes, with the head count of the released variant of that shape.

    Args:
        obj: what `read_checkpoint` returned.
        num_heads: attention heads for an official file of a width no released variant has; an
            error if it contradicts what the file records.
        datasets: dataset names per index, replacing the recorded or guessed ones.
        source: the file's name, for messages.
    """
    hf_config = obj.get("__hf_config__") if isinstance(obj, Mapping) else None
    sd = canonical_state_dict(obj)
    cfg = recorded_config(obj)
    if cfg is None:
        cfg = infer_config(sd, hf_config=hf_config, num_heads=num_heads)
    else:
        check_recorded_config(cfg, sd, source)
    if num_heads is not None and num_heads != cfg.num_heads:
        raise CheckpointError(f"num_heads={num_heads} contradicts {source}, whose recorded "
                              f"config has {cfg.num_heads} heads")
    if datasets is not None:
        cfg = with_datasets(cfg, datasets)
    return cfg, sd


def _block_count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    return 1 + max((int(m.group(1)) for k in sd if (m := re.match(pattern, k))), default=-1)


def check_recorded_config(cfg: ViTPoseConfig, sd: Mapping[str, torch.Tensor],
                          source: str = "the checkpoint") -> None:
    """Refuse a recorded config (``meta.vitpose_config``) that does not describe the tensors
    beside it, before anything is built from it.

    The recorded config is a few bytes of text that anyone can edit; building from it trusts
    it with memory (``depth`` 10**6 or a width of 10**6 would take all of it). So the counts
    that decide how many modules exist (blocks, heads, experts) must equal what the tensors
    hold, the widths must equal the tensors' shapes, and then the model is laid out on the
    ``meta`` device (no memory) and every shape compared.

    Raises:
        CheckpointError: one line naming the first field that contradicts the weights.
    """
    def refuse(what: str) -> None:
        raise CheckpointError(f"{source}: the recorded model config (meta.vitpose_config) "
                              f"contradicts its weights: {what}")

    pos = sd.get("backbone.pos_embed")
    if pos is None or pos.dim() != 3:
        refuse("the weights have no backbone.pos_embed [1, tokens, width] tensor")
    width = int(pos.shape[-1])
    depth = _block_count(sd, r"backbone\.blocks\.(\d+)\.")
    heads = 1 + _block_count(sd, r"associate_keypoint_heads\.(\d+)\.")
    experts = _block_count(sd, r"backbone\.blocks\.0\.mlp\.experts\.(\d+)\.")
    counts = [("embed_dim", cfg.embed_dim, width), ("depth", cfg.depth, depth),
              ("heads", len(cfg.heads), heads)]
    if cfg.is_moe:
        counts.append(("num_experts", cfg.num_experts, experts))
    for name, recorded, held in counts:
        if recorded != held:
            refuse(f"{name} {recorded} (recorded) vs {held} (weights)")
    if cfg.num_heads > cfg.embed_dim or cfg.embed_dim % cfg.num_heads:
        refuse(f"num_heads {cfg.num_heads} does not divide the width {cfg.embed_dim}")
    # the widths the shapes decide; a recorded one out of all proportion would be allocated
    # below only on the meta device, but the check names the field rather than a tensor
    fc1 = sd.get("backbone.blocks.0.mlp.fc1.weight")
    if fc1 is not None and round(cfg.mlp_ratio * cfg.embed_dim) != int(fc1.shape[0]):
        refuse(f"mlp_ratio {cfg.mlp_ratio:.6g} (recorded) vs "
               f"{int(fc1.shape[0]) / width:.6g} (weights)")
    with torch.device("meta"):
        try:
            expected = ViTPose(cfg).state_dict()
        except (ValueError, RuntimeError) as e:
            refuse(str(e)[:200])
    for k, v in expected.items():
        if k in sd and tuple(sd[k].shape) != tuple(v.shape):
            refuse(f"{k} is {tuple(sd[k].shape)} in the weights, {tuple(v.shape)} by the "
                   "recorded config")


def with_datasets(cfg: ViTPoseConfig, datasets: Sequence[str]) -> ViTPoseConfig:
    """`cfg` with dataset names replaced by index (experts and heads)."""
    names = tuple(datasets)
    needed = max(cfg.num_experts if cfg.is_moe else 1, len(cfg.heads))
    if len(names) < needed:
        raise CheckpointError(f"{len(names)} dataset name(s) {list(names)} for a model with "
                              f"{needed} tasks; give one name per task")
    try:
        return dataclasses.replace(cfg, datasets=names, heads=tuple(
            dataclasses.replace(h, dataset=names[i]) for i, h in enumerate(cfg.heads)))
    except ValueError as e:
        raise CheckpointError(f"invalid dataset names {list(names)}: {e}") from None


def _guess_img_size(n_tokens: int, patch: int) -> tuple[int, int]:
    # Released models: 256x192 (16x12 tokens) and ViTPose-G's 576x432 (36x27); else 4:3 portrait.
    for hw in ((256, 192), (576, 432), (128, 96), (64, 48), (256, 256), (384, 288)):
        g = ((hw[0] + 4 - patch) // patch + 1) * ((hw[1] + 4 - patch) // patch + 1)
        if g == n_tokens:
            return hw
    w = int(round(math.sqrt(n_tokens * 3 / 4)))
    if n_tokens % w == 0:
        return (n_tokens // w) * patch, w * patch
    raise CheckpointError(f"cannot infer the input size from {n_tokens} position tokens; "
                          "pass img_size explicitly")


# --------------------------------------------------------------------------------------------
# ViTPose+ surgery
# --------------------------------------------------------------------------------------------

def densify_moe(sd: Mapping[str, torch.Tensor], dataset_index: int
                ) -> OrderedDict[str, torch.Tensor]:
    """ViTPose+ state dict -> the exact plain ViTPose of one dataset (reference §1.11-1.12).

    fc2 becomes ``cat([fc2, experts[d]])`` in every block, the dataset's head becomes
    ``keypoint_head``, and every other expert and head is removed (unlike the original
    ``model_split.py``, which leaves the experts in place).
    """
    sd = _normalise_official(sd)
    has_experts = any(".mlp.experts." in k for k in sd)
    head_prefix = "keypoint_head" if dataset_index == 0 else \
        f"associate_keypoint_heads.{dataset_index - 1}"
    if not any(k.startswith(head_prefix + ".") for k in sd):
        raise CheckpointError(f"the checkpoint has no head for dataset index {dataset_index} "
                              f"({head_prefix}.*)")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in sd.items():
        if ".mlp.experts." in k or k.startswith(("associate_keypoint_heads.", "keypoint_head.")):
            continue
        m = re.fullmatch(r"(backbone\.blocks\.\d+\.mlp)\.fc2\.(weight|bias)", k)
        if m and has_experts:
            expert = sd.get(f"{m.group(1)}.experts.{dataset_index}.{m.group(2)}")
            if expert is None:
                raise CheckpointError(f"the checkpoint has no expert {dataset_index} in {m.group(1)}")
            v = torch.cat([v, expert], 0)
        out[k] = v
    for k, v in sd.items():
        if k.startswith(head_prefix + "."):
            out["keypoint_head." + k[len(head_prefix) + 1:]] = v
    return out


def split_vitpose_plus(sd: Mapping[str, torch.Tensor], datasets: Sequence[str] = PLUS_DATASETS
                       ) -> dict[str, OrderedDict[str, torch.Tensor]]:
    """One plain per-dataset state dict per ViTPose+ task (the `vitpose split` tool)."""
    sd = _normalise_official(sd)
    if not any(".mlp.experts." in k for k in sd):
        raise CheckpointError("this checkpoint has no MoE experts: it is not a ViTPose+ "
                              "multi-task checkpoint, nothing to split")
    return {name: densify_moe(sd, i) for i, name in enumerate(datasets)}


# --------------------------------------------------------------------------------------------
# MAE pre-trained backbones (reference §5)
# --------------------------------------------------------------------------------------------

def resize_pos_embed(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     num_extra: int = 1) -> torch.Tensor:
    """Bicubically resize the patch part of a ``[1, extra + h*w, C]`` positional embedding.

    Both grids are explicit (MAE's 14x14 is not ViTPose's 16x12), the extra (class-token) slot
    is kept as is, and the resize always runs, as in the official loader.
    """
    extra, grid = pos[:, :num_extra], pos[:, num_extra:]
    c = grid.shape[-1]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise CheckpointError(f"pos_embed has {grid.shape[1]} patch tokens, not {old_grid}")
    grid = grid.reshape(1, old_grid[0], old_grid[1], c).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], c).to(pos.dtype)
    return torch.cat([extra, grid], 1)


def mae_to_backbone(sd: Mapping[str, torch.Tensor], model: ViTPose,
                    patch_resize: str = "pad") -> tuple[OrderedDict[str, torch.Tensor], list[str]]:
    """Map an MAE (timm-named) state dict onto ``model.backbone`` parameter names.

    Returns:
        ``(backbone state dict, ignored keys)``; ignored are the class token, MAE's final norm,
        the decoder and mask token. ``last_norm`` keeps its default init, as in the official code.
    """
    bb = model.backbone
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    ignored = []
    hint = ("model.pretrained takes an MAE (ImageNet) backbone; to start from a pose checkpoint "
            "(ViTPose, ViTPose+, transformers or one of ours) set model.weights instead")
    pose_heads = ("keypoint_head.", "associate_keypoint_heads.", "head.conv", "head.deconv")
    if any(k.startswith(pose_heads) for k in sd):  # (MAE's fine-tuned files have a plain head.)
        raise CheckpointError(f"this checkpoint has keypoint heads, so it is not an MAE backbone: "
                              f"{hint}")
    sd = {re.sub(r"^(encoder\.|backbone\.)", "", k): v for k, v in sd.items()}
    for k, v in sd.items():
        if k.startswith(("blocks.", "patch_embed.")) or k == "pos_embed":
            out[k] = v
        else:
            ignored.append(k)
    if "pos_embed" not in out:
        raise CheckpointError("the MAE checkpoint has no pos_embed")
    n = out["pos_embed"].shape[1] - 1
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise CheckpointError(f"MAE pos_embed has {n} patch tokens, not a square grid: {hint}")
    out["pos_embed"] = resize_pos_embed(out["pos_embed"], (side, side), bb.grid_size)
    w = out.get("patch_embed.proj.weight")
    target = bb.patch_embed.proj.weight.shape[-1]
    if w is not None and w.shape[-1] != target:
        if patch_resize == "pad":  # official default: symmetric zero padding (MAE ViT-H: 14 -> 16)
            d = target - w.shape[-1]
            w = F.pad(w, (d // 2, d - d // 2, d // 2, d - d // 2))
        else:
            w = F.interpolate(w.float(), size=(target, target), mode=patch_resize,
                              align_corners=False).to(w.dtype)
        out["patch_embed.proj.weight"] = w
    if model.cfg.is_moe:  # ViTPose+: experts start as the last P rows of the MAE fc2
        p = model.cfg.part_features
        for i in range(model.cfg.depth):
            for kind in ("weight", "bias"):
                full = out.pop(f"blocks.{i}.mlp.fc2.{kind}", None)
                if full is None:
                    continue
                out[f"blocks.{i}.mlp.fc2.{kind}"] = full[:-p].clone()
                for e in range(model.cfg.num_experts):
                    out[f"blocks.{i}.mlp.experts.{e}.{kind}"] = full[-p:].clone()
    return out, ignored


def load_pretrained_backbone(model: ViTPose, source: str | os.PathLike | Mapping[str, Any],
                             patch_resize: str = "pad") -> list[str]:
    """Initialise ``model.backbone`` from an MAE checkpoint (or any backbone-only file).

    Strict for the backbone except ``last_norm`` (not in MAE, kept at its default init).

    Returns:
        the ignored checkpoint keys (logged).
    """
    obj = read_checkpoint(source) if not isinstance(source, Mapping) else source
    sd = unwrap_state_dict(obj)
    if any(k.startswith(("keypoint_head.", "associate_keypoint_heads.", "head."))
           for k in sd):
        name = str(source) if not isinstance(source, Mapping) else "the state dict"
        raise CheckpointError(
            f"{name} is a full pose checkpoint (it has heatmap heads), not an MAE backbone: to "
            "start from it (ViTPose, ViTPose+, transformers or one of ours) set model.weights="
            "<file> instead of model.pretrained (its backbone is loaded, heads that do not fit "
            "start fresh)")
    if detect_format(sd) != "mae":
        canonical = to_canonical(sd)
        sd = OrderedDict((k[len("backbone."):], v) for k, v in canonical.items()
                         if k.startswith("backbone."))
    mapped, ignored = mae_to_backbone(sd, model, patch_resize)
    expected = model.backbone.state_dict()
    allowed_missing = {k for k in expected if k.startswith("last_norm.")}
    _check_keys(expected, mapped, str(source) if not isinstance(source, Mapping) else "state dict",
                allowed_missing=allowed_missing)
    model.backbone.load_state_dict(mapped, strict=False)
    if ignored:
        log.info("pretrained backbone: ignored %d keys not used by ViTPose (%s%s)", len(ignored),
                 ", ".join(ignored[:5]), ", ..." if len(ignored) > 5 else "")
    return ignored


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------

def _fmt(keys: Sequence[str], limit: int = 12) -> str:
    keys = list(keys)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _check_keys(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                source: str, allowed_missing: set[str] = frozenset()) -> None:
    missing = [k for k in expected if k not in given and k not in allowed_missing]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    dtypes = [f"{k}: {str(given[k].dtype).replace('torch.', '')}" for k in expected
              if k in given and not _dtype_fits(given[k].dtype, expected[k].dtype)]
    if dtypes and not (missing or unexpected or shapes):
        raise CheckpointError(
            f"checkpoint {source} holds {len(dtypes)} tensor(s) of a type that cannot be the "
            f"model's floating-point weights ({_fmt(dtypes, 4)}); was it converted or "
            "quantised? Weights are float32, float16 or bfloat16 tensors")
    if missing or unexpected or shapes:
        parts = [f"checkpoint {source} does not fit the model:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if shapes:
            parts.append(f"  shape mismatches ({len(shapes)}): {_fmt(shapes, 6)}")
        parts.append("  (is it another model size, decoder or keypoint count? "
                     "vitpose.load_model(path) builds the right model from the file)")
        raise CheckpointError("\n".join(parts))


def _dtype_fits(given: torch.dtype, expected: torch.dtype) -> bool:
    """Whether a checkpoint tensor of ``given`` dtype may be copied into a parameter or buffer
    of ``expected`` dtype without losing its meaning: floats into floats (any precision);
    integers into integers (BatchNorm's counter). Integer, boolean or complex tensors into
    float weights would be truncated or converted silently."""
    if expected.is_floating_point:
        return given.is_floating_point
    if expected.is_complex:
        return given.is_complex
    return not given.is_floating_point and not given.is_complex


def load_state_dict_strict(model: torch.nn.Module, sd: Mapping[str, torch.Tensor],
                           source: str = "state dict", assign: bool = False) -> None:
    """Load all tensors or none: missing, unexpected and mis-shaped keys raise `CheckpointError`.

    With `assign`, the tensors become the model's parameters (cast to each parameter's dtype
    where they differ) instead of being copied into them: for a model laid out on the ``meta``
    device, which then costs no initialisation and no second copy of the weights.
    """
    own = model.state_dict()
    _check_keys(own, sd, source)
    if assign:
        seen: set[int] = set()
        fitted = {}
        for k, v in sd.items():
            v = v if v.dtype == own[k].dtype else v.to(own[k].dtype)
            fitted[k] = v.clone() if id(v) in seen else v  # never two parameters tied
            seen.add(id(v))
        sd = fitted
    model.load_state_dict(sd, strict=True, assign=assign)


def prepare_state_dict(sd: Mapping[str, torch.Tensor], model: ViTPose,
                       dataset: int | str | None = None) -> OrderedDict[str, torch.Tensor]:
    """Canonical state dict fitted to `model`'s layout: densify a ViTPose+ file for a plain model,
    drop the leftovers of the original ``model_split.py`` (unused experts and associate heads),
    and pick the head of `dataset` for a single-head model."""
    sd = to_canonical(sd)
    has_experts = any(".mlp.experts." in k for k in sd)
    fc2 = sd.get("backbone.blocks.0.mlp.fc2.weight")
    reduced_fc2 = fc2 is not None and int(fc2.shape[0]) < int(sd["backbone.pos_embed"].shape[-1])
    n_model_heads = len(model.heads)
    if not model.cfg.is_moe and has_experts and reduced_fc2:
        index = 0 if dataset is None else _dataset_index(dataset, sd)
        sd = densify_moe(sd, index)
    elif not model.cfg.is_moe and has_experts:
        # a split file of the original tool: full fc2, leftover experts
        log.info("ignoring leftover expert tensors of a split ViTPose+ checkpoint")
        sd = OrderedDict((k, v) for k, v in sd.items() if ".mlp.experts." not in k)
    if n_model_heads == 1 and any(k.startswith("associate_keypoint_heads.") for k in sd):
        index = 0 if dataset is None else _dataset_index(dataset, sd)
        if index:
            sd = densify_moe(sd, index) if not model.cfg.is_moe else _pick_head(sd, index)
        else:
            log.info("ignoring the associate heads of the checkpoint (model has one head)")
            sd = OrderedDict((k, v) for k, v in sd.items()
                             if not k.startswith("associate_keypoint_heads."))
    return sd


def _pick_head(sd: Mapping[str, torch.Tensor], index: int) -> OrderedDict[str, torch.Tensor]:
    prefix = f"associate_keypoint_heads.{index - 1}."
    out = OrderedDict((k, v) for k, v in sd.items()
                      if not k.startswith(("associate_keypoint_heads.", "keypoint_head.")))
    out.update((("keypoint_head." + k[len(prefix):], v) for k, v in sd.items()
                if k.startswith(prefix)))
    return out


def _dataset_index(dataset: int | str, sd: Mapping[str, torch.Tensor]) -> int:
    if isinstance(dataset, int):
        return dataset
    name = dataset.lower().replace("-", "_")
    name = {"coco_wholebody": "wholebody"}.get(name, name)
    n_assoc = 1 + max((int(m.group(1)) for k in sd
                       if (m := re.match(r"associate_keypoint_heads\.(\d+)\.", k))), default=-1)
    ks = [int(sd["keypoint_head.final_layer.weight"].shape[0])] + [
        int(sd[f"associate_keypoint_heads.{i}.final_layer.weight"].shape[0]) for i in range(n_assoc)]
    n_experts = len({k.split(".experts.")[1].split(".")[0] for k in sd if ".mlp.experts." in k})
    names = default_datasets(ks, max(n_experts, 1))
    if name not in names:
        raise CheckpointError(f"dataset '{dataset}' is not in this checkpoint (it has {list(names)})")
    return names.index(name)


def load_local_weights(model: ViTPose, source: str | os.PathLike | Mapping[str, Any],
                 dataset: int | str | None = None) -> ViTPose:
    """Load weights into `model` strictly, whatever their format.

    Args:
        model: a `ViTPose` of the matching architecture.
        source: a file or folder path (official ``.pth``, our checkpoint, transformers folder,
            ``.safetensors``) or an in-memory state dict. Hub ids and variant names are
            resolved by `vitpose.load_weights` (`vitpose.hub.load_weights`), which calls this.
        dataset: for a ViTPose+ or multi-task checkpoint loaded into a single-dataset model, the
            dataset (name or index) whose expert and head to use; default dataset 0.

    Returns:
        `model`, for chaining.

    Raises:
        CheckpointError: unreadable file, unknown format, or any key/shape mismatch (nothing is
            loaded then).
    """
    if isinstance(source, Mapping):
        name, obj = "state dict", source
    else:
        path = Path(os.path.expanduser(str(source)))
        name, obj = str(path), read_checkpoint(path)
    sd = prepare_state_dict(canonical_state_dict(obj), model, dataset)
    load_state_dict_strict(model, sd, name)
    return model


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def save_checkpoint(model: ViTPose, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
                    ) -> Path:
    """Write ``{'state_dict', 'meta'}`` in the official layout (loadable by the original code
    and by `load_local_weights`); ``meta['vitpose_config']`` records our config. Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"state_dict": OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items()),
           "meta": {"vitpose_config": json.dumps(model.cfg.to_dict()), **(meta or {})}}
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return path


def hf_config_dict(cfg: ViTPoseConfig) -> dict[str, Any]:
    """The transformers ``config.json`` content describing `cfg` (main head only)."""
    head = cfg.heads[0]
    if head.decoder == "classic" and head.deconv_filters != (256, 256):
        raise CheckpointError("the transformers classic decoder has 256 deconvolution filters; "
                              f"this model has {head.deconv_filters}")
    return {
        "model_type": "vitpose",
        "architectures": ["VitPoseForPoseEstimation"],
        "use_simple_decoder": head.decoder == "simple",
        "scale_factor": 4,
        "num_labels": head.num_keypoints,
        "backbone_config": {
            "model_type": "vitpose_backbone",
            "image_size": list(cfg.img_size),
            "patch_size": [cfg.patch_size, cfg.patch_size],
            "hidden_size": cfg.embed_dim,
            "num_hidden_layers": cfg.depth,
            "num_attention_heads": cfg.num_heads,
            "mlp_ratio": int(cfg.mlp_ratio) if float(cfg.mlp_ratio).is_integer() else cfg.mlp_ratio,
            "num_experts": cfg.num_experts,
            "part_features": cfg.part_features if cfg.is_moe else 256,
            "layer_norm_eps": cfg.layer_norm_eps,
            "qkv_bias": cfg.qkv_bias,
            "out_indices": [cfg.depth],
        },
    }


def save_hf_pretrained(model: ViTPose, folder: str | os.PathLike) -> Path:
    """Write `model` in the transformers layout (``config.json`` + ``model.safetensors``), for
    users who publish to the Hugging Face hub. Only the main head is kept (the layout has one)."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = official_to_hf(model.state_dict())
    save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_json(folder / "config.json", hf_config_dict(model.cfg), indent=2)
    return folder

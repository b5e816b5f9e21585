"""Released ViTPose weights: where they live, how they are fetched and cached, `load_model`.

Models never download anything; this module does, and only here. Weights published on the
Hugging Face hub (the transformers port's ``usyd-community/*`` repositories and the mirror of the
original ``.pth`` files) are downloaded on first use into the Hugging Face cache. Weights that
exist only on the original project's OneDrive are listed with their link: download them in a
browser and pass the file path.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoints import (
    infer_config,
    load_state_dict_strict,
    prepare_state_dict,
    read_checkpoint,
    to_canonical,
    unwrap_state_dict,
)
from .errors import CheckpointError, DownloadError
from .models.vitpose import ViTPose, ViTPoseConfig, _variant_from_name, apply_overrides, canonical_name

__all__ = ["ReleasedWeights", "RELEASED_WEIGHTS", "resolve_weights", "load_model",
           "released_weights_for"]

log = logging.getLogger(__name__)

#: Mirror of the original `.pth` files used by the transformers conversion (all heads included).
_ORIGINAL_MIRROR = "nielsr/vitpose-original-checkpoints"


@dataclass(frozen=True)
class ReleasedWeights:
    """One released checkpoint.

    Attributes:
        variant: the `VARIANTS` name it fits.
        hf_repo: Hugging Face repository in the transformers layout (main head only), or None.
        original: ``"repo/filename"`` of the original `.pth` on the hub (all heads), or None.
        onedrive: the original project's OneDrive link (manual download), or None.
        datasets: what it was trained on (README wording).
        coco_ap: COCO val AP from the original README.
    """

    variant: str
    hf_repo: str | None = None
    original: str | None = None
    onedrive: str | None = None
    datasets: str = "COCO"
    coco_ap: float | None = None


_OD = "https://1drv.ms/u/s!AimBgYV7JjTlg"
RELEASED_WEIGHTS: dict[str, ReleasedWeights] = {
    "vitpose-s": ReleasedWeights("vitpose-s", onedrive=_OD + "ccifT1XlGRatxg3vw?e=9wz7BY", coco_ap=73.8),
    "vitpose-b": ReleasedWeights("vitpose-b", "usyd-community/vitpose-base",
                                 f"{_ORIGINAL_MIRROR}/vitpose-b.pth",
                                 _OD + "SMjp1_NrV3VRSmK?e=Q1uZKs", coco_ap=75.8),
    "vitpose-l": ReleasedWeights("vitpose-l", onedrive=_OD + "Sd9k_kuktPtiP4F?e=K7DGYT", coco_ap=78.3),
    "vitpose-h": ReleasedWeights("vitpose-h", onedrive=_OD + "ShLMI-kkmvNfF_h?e=dEhGHe", coco_ap=79.1),
    "vitpose-s-simple": ReleasedWeights("vitpose-s-simple", onedrive=_OD + "ccgb_50jIgiYkHvdw?e=D7RbH2",
                                        coco_ap=73.5),
    "vitpose-b-simple": ReleasedWeights("vitpose-b-simple", "usyd-community/vitpose-base-simple",
                                        f"{_ORIGINAL_MIRROR}/vitpose-b-simple.pth",
                                        _OD + "SRPKrD5PmDRiv0R?e=jifvOe", coco_ap=75.5),
    "vitpose-l-simple": ReleasedWeights("vitpose-l-simple", onedrive=_OD + "SVS6DP2LmKwZ3sm?e=MmCvDT",
                                        coco_ap=78.2),
    "vitpose-h-simple": ReleasedWeights("vitpose-h-simple", onedrive=_OD + "SbHyN2mjh2n2LyG?e=y0FgMK",
                                        coco_ap=78.9),
    "vitpose-b-multi": ReleasedWeights("vitpose-b-multi", "usyd-community/vitpose-base-coco-aic-mpii",
                                       f"{_ORIGINAL_MIRROR}/vitpose_base_coco_aic_mpii.pth",
                                       _OD + "cccwaTZ8xCFFM3Sjg?e=chmiK5", "COCO+AIC+MPII", 77.1),
    "vitpose-l-multi": ReleasedWeights("vitpose-l-multi", onedrive=_OD + "ccdOLQqSo6E87GfMw?e=TEurgW",
                                       datasets="COCO+AIC+MPII", coco_ap=78.7),
    "vitpose-h-multi": ReleasedWeights("vitpose-h-multi", onedrive=_OD + "ccmHofkmfJDQDukVw?e=gRK224",
                                       datasets="COCO+AIC+MPII", coco_ap=79.5),
    **{f"vitpose-plus-{s}": ReleasedWeights(
        f"vitpose-plus-{s}", f"usyd-community/vitpose-plus-{size}",
        f"{_ORIGINAL_MIRROR}/vitpose+_{size}.pth", _OD + link,
        "COCO+AIC+MPII+AP10K+APT36K+WholeBody", ap)
       for s, size, link, ap in (("s", "small", "ccrwORr61gT9E4n8g?e=kz9sz5", 75.8),
                                 ("b", "base", "cckRZk1bIAuRa_E1w?e=ylDB2G", 77.0),
                                 ("l", "large", "ccs1SNFUGSTsmRJ8w?e=a9zKwZ", 78.6),
                                 ("h", "huge", "ccoXv8rCUgVe7oD9Q?e=ZBw6gR", 79.4))},
}


def released_weights_for(variant: str) -> ReleasedWeights:
    """The released checkpoint of a variant name, with a clear error if there is none."""
    key = canonical_name(variant) or variant
    if key not in RELEASED_WEIGHTS:
        if key == "vitpose-g":
            raise DownloadError("ViTPose-G was never released (no config or weights exist); "
                                "train it yourself or pass --weights PATH")
        raise DownloadError(f"no released weights are known for '{variant}'; pass a checkpoint "
                            "path with --weights / weights=")
    return RELEASED_WEIGHTS[key]


def _offline_advice(what: str, entry: ReleasedWeights | None = None) -> str:
    extra = f" (original link: {entry.onedrive})" if entry and entry.onedrive else ""
    return (f"could not download {what}. If this machine is offline, download the checkpoint on "
            f"another machine{extra} and pass its path with --weights PATH (Python: weights=PATH); "
            "files already in the Hugging Face cache are used with HF_HUB_OFFLINE=1.")


def _hf_download(repo: str, filename: str | None = None) -> Path:
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:  # pragma: no cover - it is a dependency
        raise DownloadError("huggingface_hub is not installed; pass a local file with --weights")
    try:
        if filename:
            return Path(hf_hub_download(repo, filename))
        return Path(snapshot_download(repo, allow_patterns=["config.json", "*.safetensors"]))
    except Exception as e:  # noqa: BLE001 - hub errors have many types (offline, 404, auth)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DownloadError(_offline_advice(f"'{repo}{'/' + filename if filename else ''}' "
                                            f"from the Hugging Face hub ({reason})")) from None


def resolve_weights(spec: str, prefer_original: bool = False) -> Path:
    """Turn a weights spec into a local path, downloading on first use.

    Args:
        spec: a local file/folder, a Hugging Face repo id (``usyd-community/vitpose-base``), a
            ``repo/filename.pth`` on the hub, or a variant name with released weights.
        prefer_original: for a variant name, fetch the original `.pth` (all heads) instead of
            the transformers repository (main head only).
    """
    p = Path(os.path.expanduser(spec))
    if p.exists():
        return p
    if spec.startswith(("/", ".", "~", "\\")) or (len(spec) > 1 and spec[1] == ":"):
        raise CheckpointError(f"checkpoint file not found: {spec}")
    if spec.startswith(("http://", "https://")):
        if "1drv.ms" in spec or "onedrive" in spec:
            raise DownloadError("OneDrive share links cannot be downloaded automatically: open "
                                f"{spec} in a browser, save the file and pass its path")
        raise DownloadError(f"only local paths and Hugging Face ids are supported, got {spec}")
    if canonical_name(spec):
        entry = released_weights_for(spec)
        if prefer_original and entry.original:
            repo, filename = entry.original.rsplit("/", 1)
            return _hf_download(repo, filename)
        if entry.hf_repo:
            return _hf_download(entry.hf_repo)
        if entry.original:
            repo, filename = entry.original.rsplit("/", 1)
            return _hf_download(repo, filename)
        raise DownloadError(f"the weights of '{spec}' are published on the original project's "
                            f"OneDrive only: open {entry.onedrive} in a browser, save the .pth and "
                            "pass it with --weights PATH")
    parts = spec.split("/")
    if len(parts) == 2:
        return _hf_download(spec)
    if len(parts) >= 3 and parts[-1].endswith((".pth", ".pt", ".bin", ".safetensors")):
        return _hf_download("/".join(parts[:-1]), parts[-1])
    raise CheckpointError(f"weights '{spec}' are neither an existing file nor a hub id")


def _saved_config(obj: Any) -> ViTPoseConfig | None:
    """The `ViTPoseConfig` that `save_checkpoint` stores in ``meta['vitpose_config']``."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    text = meta.get("vitpose_config") if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return ViTPoseConfig.from_dict(json.loads(text))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's recorded model config is invalid ({e})") from None


def load_model(name_or_path: str = "vitpose-b-simple", weights: str | None = None,
               device: str | torch.device = "cpu", dataset: str | int | None = None,
               num_heads: int | None = None, **overrides: Any) -> ViTPose:
    """Build a model and load its weights in one call, in eval mode on `device`.

    Args:
        name_or_path: a variant name (``"vitpose-b-simple"``; its released weights are fetched on
            first use), a checkpoint path, or a hub id. With a path or id the architecture is
            inferred from the checkpoint (width, depth, decoder, heads, ViTPose+ experts).
        weights: weights to load instead of the variant's released ones (path or hub id).
        device: where to put the model.
        dataset: for ViTPose+ / multi-task checkpoints, the dataset whose head must exist (its
            original `.pth` with all heads is fetched for non-COCO datasets).
        num_heads: attention heads if the checkpoint is not of a released width.
        **overrides: `ViTPoseConfig` fields (e.g. ``datasets=``) applied after inference.
    """
    variant = None
    spec = weights
    if weights is None:
        is_path = Path(os.path.expanduser(name_or_path)).exists()
        if not is_path and "/" not in name_or_path:
            variant = name_or_path
            _variant_from_name(variant)  # unknown names fail here with the list of variants
            needs_all_heads = dataset not in (None, 0, "coco")
            spec = str(resolve_weights(variant, prefer_original=needs_all_heads))
        else:
            spec = name_or_path
    else:
        variant = name_or_path if not Path(name_or_path).exists() else None
    path = resolve_weights(spec)
    obj = read_checkpoint(path)
    hf_config = obj.get("__hf_config__") if isinstance(obj, dict) else None
    sd = to_canonical(unwrap_state_dict(obj))
    saved = _saved_config(obj)
    if saved is not None and num_heads is None:
        cfg = saved  # our own checkpoints record their exact architecture
    else:
        if variant is not None and num_heads is None:
            num_heads = _variant_from_name(variant).num_heads
        cfg = infer_config(sd, hf_config=hf_config, num_heads=num_heads)
    if overrides:
        cfg = apply_overrides(cfg, **overrides)
    model = ViTPose(cfg)
    load_state_dict_strict(model, prepare_state_dict(sd, model), str(path))
    if dataset is not None:
        model.head_for(dataset)  # fails clearly if the checkpoint lacks that dataset's head
    log.info("loaded %s (%s decoder, %d keypoints%s) from %s", variant or "model", cfg.decoder,
             cfg.num_keypoints, f", {cfg.num_experts} experts" if cfg.is_moe else "", path)
    return model.eval().to(device)

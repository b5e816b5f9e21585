"""Model construction from an experiment config: the one home shared by training, `vitpose test`
and evaluation (heads from the datasets' metadata, starting weights, fine-tuning heads)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from vitpose.checkpoints import (
    canonical_state_dict,
    load_pretrained_backbone,
    load_state_dict_strict,
    prepare_state_dict,
    read_checkpoint,
)
from vitpose.dataset_meta import DatasetMeta, get_dataset_meta, load_dataset_meta
from vitpose.errors import ConfigError
from vitpose.models.vitpose import VARIANTS, ViTPose, canonical_name, list_models, replace_config
from vitpose.training.config import CONFIG_DIR, DataConfig, DatasetConfig, ExperimentConfig

__all__ = ["resolve_dataset_meta", "build_model_from_config", "load_initial_weights"]

log = logging.getLogger(__name__)


def resolve_dataset_meta(name: str, data: DataConfig | None = None) -> DatasetMeta:
    """Keypoint metadata of a dataset entry: a built-in name or a metadata file.

    A ``.yaml`` / ``.yml`` / ``.json`` name is looked up as given (relative to the working
    folder), then under ``data.root``, then among the packaged ``configs/datasets/`` files.

    Raises:
        ConfigError: unknown name, missing or invalid metadata file.
    """
    if name.lower().endswith((".yaml", ".yml", ".json")):
        candidates = [Path(name).expanduser()]
        if data is not None:
            candidates.append(data.resolve(name))
        candidates.append(CONFIG_DIR / "datasets" / name)
        for path in candidates:
            if path is not None and path.is_file():
                try:
                    return load_dataset_meta(path)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
        raise ConfigError(
            f"keypoint-metadata file '{name}' not found (looked in the working folder, under "
            f"data.root and among the packaged configs/datasets/)"
        )
    try:
        return get_dataset_meta(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _entries(cfg: ExperimentConfig) -> list[tuple[str, DatasetConfig]]:
    return [(f"data.train.{i}", d) for i, d in enumerate(cfg.data.train)] + [
        (f"data.val.{i}", d) for i, d in enumerate(cfg.data.val)
    ]


def _model_config(cfg: ExperimentConfig):
    """The ``ViTPoseConfig`` described by ``cfg.model`` (and the datasets' keypoint counts)."""
    mc = cfg.model
    key = canonical_name(mc.variant)
    if key is None:
        raise ConfigError(
            f"model.variant: unknown variant '{mc.variant}'; choose one of "
            f"{', '.join(list_models())}"
        )
    base = VARIANTS[key]
    overrides: dict[str, Any] = {"img_size": tuple(mc.img_size or cfg.data.image_size)}
    for name in ("embed_dim", "depth", "num_heads", "drop_path_rate"):
        value = getattr(mc, name)
        if value is not None:
            overrides[name] = value
    template = base.heads[0]
    if mc.heads is not None:
        metas = [resolve_dataset_meta(n, cfg.data) for n in mc.heads]
        names = [m.name for m in metas]
        if len(set(names)) != len(names):
            raise ConfigError(f"model.heads: a dataset appears twice in {list(mc.heads)}")
        heads = [dataclasses.replace(template, dataset=m.name, num_keypoints=m.num_keypoints)
                 for m in metas]
        overrides["heads"] = heads
        overrides["datasets"] = tuple(names)
        if base.is_moe:
            overrides["num_experts"] = len(heads)
    elif len(base.heads) == 1:
        # A single-head variant takes the keypoint layout of its data (custom fine-tuning).
        first = next((d for _, d in _entries(cfg) if d.dataset_index == 0), None)
        if first is not None:
            meta = resolve_dataset_meta(first.name, cfg.data)
            overrides["heads"] = [dataclasses.replace(template, dataset=meta.name,
                                                      num_keypoints=meta.num_keypoints)]
            overrides["datasets"] = (meta.name,)
    if mc.num_keypoints is not None:
        overrides["num_keypoints"] = mc.num_keypoints
    try:
        return replace_config(base, **overrides)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def _check_heads(model: ViTPose, cfg: ExperimentConfig) -> None:
    """Every dataset entry must have a head (and expert) with its keypoint count."""
    for where, ds in _entries(cfg):
        meta = resolve_dataset_meta(ds.name, cfg.data)
        if ds.dataset_index >= len(model.datasets):
            raise ConfigError(
                f"{where}.dataset_index {ds.dataset_index}: the model has only "
                f"{len(model.datasets)} dataset slot(s) {list(model.datasets)}; set model.heads"
            )
        try:
            head = model.head_for(ds.dataset_index)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        k = head.final_layer.out_channels
        if k != meta.num_keypoints:
            raise ConfigError(
                f"{where} ({meta.name}, {meta.num_keypoints} keypoints) uses head "
                f"{ds.dataset_index} ('{model.datasets[ds.dataset_index]}'), which predicts {k}; "
                "set model.heads (one dataset name per head) or model.num_keypoints"
            )


def load_initial_weights(model: ViTPose, source: str | os.PathLike) -> list[str]:
    """Start from a full checkpoint, keeping the model's heads where the checkpoint's do not fit.

    The backbone must match exactly (ViTPose+ files are densified for plain models). A head is
    loaded when the checkpoint has it with the same keys and shapes; otherwise (another keypoint
    count or decoder: fine-tuning on a custom dataset) it keeps its fresh initialisation.

    Args:
        model: the model to initialise.
        source: checkpoint path, released-weights name or Hugging Face id.

    Returns:
        The re-initialised heads (``keypoint_head``, ``associate_keypoint_heads.0``, ...).

    Raises:
        CheckpointError: unreadable file or a backbone that does not fit.
    """
    from vitpose.hub import resolve_weights  # hub sits above checkpoints; imported lazily

    path = resolve_weights(str(source))
    # the weights as inference loads them (`load_weights`): a transformers file keeps only the
    # blocks its out_indices reads
    sd = prepare_state_dict(canonical_state_dict(read_checkpoint(path)), model)
    backbone = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    load_state_dict_strict(model.backbone, backbone, str(path))
    expected = model.state_dict()
    prefixes = ["keypoint_head"] + [
        f"associate_keypoint_heads.{i}" for i in range(len(model.associate_keypoint_heads))
    ]
    fresh = []
    for prefix in prefixes:
        want = {k: v for k, v in expected.items() if k.startswith(prefix + ".")}
        have = {k: v for k, v in sd.items() if k.startswith(prefix + ".")}
        if set(want) == set(have) and all(want[k].shape == have[k].shape for k in want):
            # strict for the head too: a tensor of a type the weights cannot have is an error
            load_state_dict_strict(model.get_submodule(prefix),
                                   {k[len(prefix) + 1:]: v for k, v in have.items()}, str(path))
            continue
        fresh.append(prefix)
        if have:
            k_have = have.get(f"{prefix}.final_layer.weight")
            k_text = f"{k_have.shape[0]} keypoints" if k_have is not None else "another layout"
            log.warning("%s: the checkpoint's head (%s) does not fit the model's (%d keypoints); "
                        "it starts from a fresh initialisation", prefix, k_text,
                        want[f"{prefix}.final_layer.weight"].shape[0])
        else:
            log.info("%s: not in the checkpoint; it starts from a fresh initialisation", prefix)
    return fresh


def build_model_from_config(cfg: ExperimentConfig, with_weights: bool = True) -> ViTPose:
    """Build the network of ``cfg.model`` and its starting weights.

    The heads follow ``model.heads`` (one dataset name or metadata file per head, in order;
    their keypoint counts come from the metadata) or, for single-head variants, the dataset of
    index 0, so a custom keypoint layout needs no extra setting; ``model.num_keypoints``
    overrides the main head's count. ViTPose+ variants get one expert per head.

    Args:
        cfg: the experiment.
        with_weights: load ``model.pretrained`` (MAE backbone) and then ``model.weights`` (full
            checkpoint; heads that do not fit are re-initialised). False when resuming.

    Returns:
        The model in train mode on the CPU.

    Raises:
        ConfigError: unknown variant, or datasets whose keypoint counts do not fit the heads.
        CheckpointError: starting weights that cannot be read or do not fit.
    """
    model = ViTPose(_model_config(cfg))
    _check_heads(model, cfg)
    if with_weights and cfg.model.pretrained:
        from vitpose.hub import resolve_weights

        ignored = load_pretrained_backbone(model, resolve_weights(cfg.model.pretrained))
        log.info("backbone initialised from %s (%d keys unused)", cfg.model.pretrained,
                 len(ignored))
    if with_weights and cfg.model.weights:
        fresh = load_initial_weights(model, cfg.model.weights)
        log.info("weights loaded from %s%s", cfg.model.weights,
                 f" (fresh heads: {', '.join(fresh)})" if fresh else "")
    return model.train()

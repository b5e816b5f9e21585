"""Model construction from an experiment config (shared by training, `vitpose test` and evaluation)."""

from __future__ import annotations

from ..dataset_meta import DatasetMeta, get_dataset_meta, load_dataset_meta
from ..errors import ConfigError
from ..models import HeadConfig, ViTPose, build_model
from ..models.vitpose import _variant_from_name
from .config import ModelConfig

__all__ = ["model_from_config", "dataset_meta_for"]


def dataset_meta_for(name: str) -> DatasetMeta:
    """Keypoint metadata of a dataset name or of a custom metadata file (.yaml/.json)."""
    try:
        if name.endswith((".yaml", ".yml", ".json")):
            return load_dataset_meta(name)
        return get_dataset_meta(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def model_from_config(cfg: ModelConfig) -> ViTPose:
    """Build the (randomly initialised) model an experiment describes.

    ``cfg.heads`` lists the datasets of the heads in order (first = ``keypoint_head``); each
    head gets the variant's decoder and its dataset's keypoint count. Weights are loaded by the
    caller (`vitpose.load_weights`, `vitpose.load_pretrained_backbone`).
    """
    overrides: dict = {k: getattr(cfg, k) for k in
                       ("embed_dim", "depth", "num_heads", "drop_path_rate")
                       if getattr(cfg, k) is not None}
    if cfg.img_size is not None:
        overrides["img_size"] = tuple(cfg.img_size)
    if cfg.heads:
        base = _variant_from_name(cfg.variant)
        template = base.heads[0]
        heads = []
        for name in cfg.heads:
            meta = dataset_meta_for(name)
            heads.append(HeadConfig(meta.name, meta.num_keypoints, template.num_deconv_layers,
                                    template.deconv_filters, template.deconv_kernels,
                                    template.final_conv_kernel, template.upsample))
        names = tuple(h.dataset for h in heads)
        if base.is_moe and len(names) < base.num_experts:
            raise ValueError(f"{cfg.variant} has {base.num_experts} experts but only "
                             f"{len(names)} heads {names} were configured")
        overrides["heads"] = tuple(heads)
        overrides["datasets"] = names if not base.is_moe or len(names) >= base.num_experts \
            else base.datasets
    if cfg.num_keypoints is not None:
        overrides["num_keypoints"] = cfg.num_keypoints
    return build_model(cfg.variant, **overrides)

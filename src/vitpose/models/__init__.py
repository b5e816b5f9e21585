"""Neural network modules of ViTPose / ViTPose+ (torch only: no files, downloads or numpy)."""

from .heads import HeatmapHead
from .vit import ViT
from .vitpose import (
    PLUS_DATASETS,
    VARIANTS,
    HeadConfig,
    ViTPose,
    ViTPoseConfig,
    apply_overrides,
    build_model,
    config_from_official,
    default_datasets,
    list_models,
    num_heads_for_width,
)

__all__ = [
    "HeatmapHead", "ViT", "ViTPose", "ViTPoseConfig", "HeadConfig", "VARIANTS", "PLUS_DATASETS",
    "build_model", "apply_overrides", "config_from_official", "default_datasets", "list_models",
    "num_heads_for_width",
]

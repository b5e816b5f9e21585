"""Neural network modules of ViTPose / ViTPose+ (torch only: no files, downloads or numpy)."""

from .heads import HeatmapHead
from .vit import ViT
from .vitpose import (
    PIXEL_MEAN,
    PIXEL_STD,
    PLUS_DATASETS,
    VARIANTS,
    HeadConfig,
    ViTPose,
    ViTPoseConfig,
    build_model,
    config_from_official,
    default_datasets,
    list_models,
    num_heads_for_width,
    replace_config,
)

__all__ = [
    "HeatmapHead", "ViT", "ViTPose", "ViTPoseConfig", "HeadConfig", "VARIANTS", "PLUS_DATASETS",
    "PIXEL_MEAN", "PIXEL_STD",
    "build_model", "replace_config", "config_from_official", "default_datasets", "list_models",
    "num_heads_for_width",
]

"""vitpose: pure-PyTorch ViTPose / ViTPose+ for 2D pose estimation.

Public API::

    import vitpose
    model = vitpose.build_model("vitpose-b-simple")            # random weights
    vitpose.load_weights(model, "ViTPose_base_simple.pth")      # official, HF, ours, hub ids
    model = vitpose.load_model("vitpose-b-simple")              # released weights, eval mode
"""

from .checkpoints import load_pretrained_backbone, save_checkpoint, save_hf_pretrained
from .errors import CheckpointError, ConfigError, DownloadError, InputError, VitPoseError
from .hub import load_model, load_weights
from .models import VARIANTS, ViTPose, ViTPoseConfig, build_model, list_models

__version__ = "0.1.0"

__all__ = [
    "build_model", "load_model", "load_weights", "load_pretrained_backbone", "save_checkpoint",
    "save_hf_pretrained", "list_models", "VARIANTS", "ViTPose", "ViTPoseConfig", "VitPoseError",
    "CheckpointError", "ConfigError", "DownloadError", "InputError", "__version__",
]

"""vitpose: pure-PyTorch ViTPose / ViTPose+ for 2D pose estimation.

Public API::

    import vitpose
    predictor = vitpose.Predictor()                             # what `vitpose predict` runs
    result, = predictor("people.jpg")                           # image, array, folder, video
    result.xy, result.scores, result.boxes                      # (N, K, 2), (N, K), (N, 5)
    estimator = vitpose.PoseEstimator.from_pretrained("vitpose-b-simple")  # boxes given
    model = vitpose.build_model("vitpose-b-simple")            # random weights
    vitpose.load_weights(model, "ViTPose_base_simple.pth")      # official, HF, ours, hub ids
    model = vitpose.load_model("vitpose-b-simple")              # released weights, eval mode
"""

import os as _os

# OpenCV's own decoder limit, a backstop behind vitpose's pixel budget: OpenCV reads it once, when
# cv2 is first imported, so it is set here, before any vitpose module imports cv2. The value is
# `vitpose.inference.io.HARD_MAX_PIXELS` (the largest RGB image OpenCV can index). A program that
# imported cv2 before vitpose keeps its own setting.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str((2**31 - 1) // 3))

from .checkpoints import load_pretrained_backbone, save_checkpoint, save_hf_pretrained
from .errors import CheckpointError, ConfigError, DownloadError, InputError, VitPoseError
from .hub import load_model, load_weights
from .models import VARIANTS, ViTPose, ViTPoseConfig, build_model, list_models

__version__ = "0.1.0"

_LAZY = {"Predictor": "vitpose.predict", "PoseEstimator": "vitpose.inference.pipeline",
         "PoseResult": "vitpose.inference.pipeline",
         "RoutedPoseEstimator": "vitpose.inference.pipeline"}


def __getattr__(name: str):
    """The inference names, imported on first use (``import vitpose`` stays light)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vitpose' has no attribute {name!r}")

__all__ = [
    "Predictor", "PoseEstimator", "PoseResult", "RoutedPoseEstimator",
    "build_model", "load_model", "load_weights", "load_pretrained_backbone", "save_checkpoint",
    "save_hf_pretrained", "list_models", "VARIANTS", "ViTPose", "ViTPoseConfig", "VitPoseError",
    "CheckpointError", "ConfigError", "DownloadError", "InputError", "__version__",
]

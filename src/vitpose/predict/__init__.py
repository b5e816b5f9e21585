"""The predict job, once: options -> estimator + box source; the image/folder job, the video
job (with resume replay), the torchrun-sharded job, the journal, output naming and writing.
The command line (`vitpose predict`), the web demo and `vitpose.Predictor` all run it.

Public names:

* `PredictOptions` (every option, the command line's defaults), `build_estimator`,
  `build_box_source`;
* `run` (the whole job for a `PredictOptions`: returns a `Summary`, raises `Interrupted`);
  `run_images`, `run_video`, `run_sharded` (its parts);
* `FrameLoop` (the frame loop every front-end shares), `estimate_image`, `estimate_images`;
* `ResultSink` (where another output format plugs in), `Predictor` (the Python front door).
"""

from .images import estimate_image, estimate_images, run_images
from .job import run
from .options import PredictOptions, build_box_source, build_estimator
from .outputs import ResultSink
from .predictor import Predictor
from .report import Interrupted, Summary
from .scale import run_sharded
from .video import FrameLoop, run_video

__all__ = ["FrameLoop", "Interrupted", "PredictOptions", "Predictor", "ResultSink", "Summary",
           "build_box_source", "build_estimator", "estimate_image", "estimate_images", "run",
           "run_images", "run_sharded", "run_video"]

"""Local web demo (`vitpose demo`): pose estimation on uploaded images and videos.

`PoseDemo` holds the handlers as plain methods (testable without a server or Gradio);
`build_app` wraps them in a Gradio Blocks page (Gradio is the optional extra ``vitpose[demo]``
and is imported only there).
"""

from .app import (
    BOX_SOURCES,
    ImageOutput,
    ModelChoice,
    PoseDemo,
    VideoOutput,
    build_app,
    default_model_choices,
    gradio_missing_message,
    launch_app,
    make_example_video,
)

__all__ = [
    "BOX_SOURCES",
    "ImageOutput",
    "ModelChoice",
    "PoseDemo",
    "VideoOutput",
    "build_app",
    "default_model_choices",
    "gradio_missing_message",
    "launch_app",
    "make_example_video",
]

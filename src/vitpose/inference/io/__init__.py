"""Image and input handling for inference:

* `vitpose.imageio` (re-exported here): `read_image` (any file OpenCV decodes -> upright RGB
  uint8, within a pixel budget, read by bytes), `write_image` (encoded in memory, written
  atomically), and what a file's header says without decoding it (size for the budget, EXIF
  orientation);
* `discovery`: what an ``INPUT`` argument names (`iter_inputs`), and file names that are not
  valid UTF-8 (`printable_name` / `json_safe` for JSON, `opencv_path` for OpenCV's video I/O).

Every public name is importable from here (``from vitpose.inference.io import read_image``).
"""

from ...imageio import (
    DEFAULT_MAX_PIXELS,
    HARD_MAX_PIXELS,
    MAX_PIXELS_ENV,
    apply_exif_orientation,
    check_max_pixels,
    check_pixel_budget,
    exif_orientation,
    header_size,
    max_pixels_from_env,
    read_header_size,
    read_image,
    write_image,
)
from .discovery import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    InputSpec,
    is_image_file,
    is_video_file,
    iter_inputs,
    json_safe,
    opencv_path,
    printable_name,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HARD_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS_ENV",
    "VIDEO_EXTENSIONS",
    "InputSpec",
    "apply_exif_orientation",
    "check_max_pixels",
    "check_pixel_budget",
    "exif_orientation",
    "header_size",
    "is_image_file",
    "is_video_file",
    "iter_inputs",
    "json_safe",
    "max_pixels_from_env",
    "opencv_path",
    "printable_name",
    "read_header_size",
    "read_image",
    "write_image",
]

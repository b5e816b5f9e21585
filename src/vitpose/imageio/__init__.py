"""Image files, read and written safely: the one decoder of every image `vitpose` reads.

* `decode`: `read_image` (any file OpenCV decodes -> upright RGB uint8, within a pixel budget,
  read by bytes) and `write_image` (encoded in memory, written atomically);
* `headers`: what a file's header says without decoding it (size for the budget, EXIF
  orientation).

A leaf below `datasets`, `formats` and `inference` (docs/ARCHITECTURE.md), so that training
images, the images an output format draws on and the inputs of `predict` are decoded by the same
code with the same budget. `vitpose.inference.io` re-exports these names beside input discovery.
"""

from .decode import (
    DEFAULT_MAX_PIXELS,
    HARD_MAX_PIXELS,
    MAX_PIXELS_ENV,
    check_max_pixels,
    check_pixel_budget,
    max_pixels_from_env,
    read_image,
    write_image,
)
from .headers import apply_exif_orientation, exif_orientation, header_size, read_header_size

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HARD_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "apply_exif_orientation",
    "check_max_pixels",
    "check_pixel_budget",
    "exif_orientation",
    "header_size",
    "max_pixels_from_env",
    "read_header_size",
    "read_image",
    "write_image",
]

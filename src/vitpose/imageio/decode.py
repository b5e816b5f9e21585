"""Image decoding with a pixel budget, and writing images, by bytes.

`read_image` turns any image file OpenCV can decode into one predictable array: RGB, uint8,
``(H, W, 3)``, upright. It deals with the cases that usually bite:

* grayscale (1 channel) and grayscale + alpha (2 channels) become 3 equal channels;
* RGBA / grayscale+alpha is **composited over a background colour** (black by default), so fully
  transparent pixels become the background instead of whatever RGB values happen to be stored
  under them;
* 16-bit images are mapped to 8 bits with ``round(v / 257)`` (65535 -> 255); float images are
  taken to be in ``[0, 1]`` and clipped;
* palette PNGs are expanded by the decoder;
* the EXIF orientation tag (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``, TIFF IFD0) is applied once;
* images above a **pixel budget** (`DEFAULT_MAX_PIXELS`, 100 MP; ``VITPOSE_MAX_PIXELS`` or the
  ``max_pixels`` argument change it) are refused with an `InputError` *before the file is read
  whole or decoded*, from the size in its header (every accepted format has its header parsed,
  `vitpose.imageio.headers`), so a small "decompression bomb" (an 873 KB PNG or a 3.9 KB
  JPEG 2000 of 20000x20000) never turns into gigabytes of pixels. A file whose header gives no
  size is not decoded. No budget goes above `HARD_MAX_PIXELS`, the largest RGB image whose
  buffer OpenCV can index (a 30000x30000 RGB ``warpAffine`` segfaults in 5.0); `vitpose` sets
  OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``) to it before cv2 is first imported.

Why our own EXIF handling: OpenCV applies the orientation for ``IMREAD_COLOR`` (and any flag
other than ``IMREAD_UNCHANGED``), but it does **not** for ``IMREAD_UNCHANGED`` (the only mode that
keeps the alpha channel), except in its TIFF decoder, which turns TIFFs itself. We decode once
with ``IMREAD_UNCHANGED`` (a TIFF with its tag set to 1 in memory first) and apply the tag
ourselves, so alpha, 16-bit and orientation are honoured in one pass, alike for every format.

Files are read and written as bytes (``np.fromfile`` + ``cv2.imdecode``, ``cv2.imencode`` +
`vitpose.fileio.atomic_write_bytes`): OpenCV's own file functions need a name it can encode as
UTF-8, and crash on others (a file name that is not valid UTF-8).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from vitpose.errors import InputError, OutputError
from vitpose.fileio import atomic_write_bytes

from .headers import (
    apply_exif_orientation,
    exif_orientation,
    neutralize_tiff_orientation,
    read_header_size,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HARD_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "check_max_pixels",
    "check_pixel_budget",
    "max_pixels_from_env",
    "read_image",
    "write_image",
]

#: Default pixel budget of `read_image` (width x height): 100 MP, e.g. 12000 x 8333.
DEFAULT_MAX_PIXELS = 100_000_000
#: No budget goes above this: an RGB image of more pixels has a buffer of 2 GiB or more, which
#: OpenCV cannot index (``warpAffine`` on a 30000x30000 RGB array segfaults in OpenCV 5.0).
#: `vitpose/__init__.py` gives OpenCV the same limit (``OPENCV_IO_MAX_IMAGE_PIXELS``).
HARD_MAX_PIXELS = (2**31 - 1) // 3
#: Environment variable with the default pixel budget (an integer; ``1e8`` style is accepted).
MAX_PIXELS_ENV = "VITPOSE_MAX_PIXELS"
#: A file may hold at most this many bytes per declared pixel (4 channels of float32) plus
#: `_SLACK_BYTES` of metadata; a larger file is refused before it is read.
_BYTES_PER_PIXEL = 16
_SLACK_BYTES = 64 << 20


def max_pixels_from_env() -> int:
    """The default pixel budget: ``VITPOSE_MAX_PIXELS`` when set, else `DEFAULT_MAX_PIXELS`.

    Raises:
        InputError: the variable is not a positive number up to `HARD_MAX_PIXELS`.
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise InputError(f"{MAX_PIXELS_ENV}={text!r} is not a number of pixels") from None
    return check_max_pixels(value, f"{MAX_PIXELS_ENV}")


def check_max_pixels(value: int, name: str = "max_pixels") -> int:
    """`value` if it is a usable pixel budget (1 .. `HARD_MAX_PIXELS`), else an `InputError`."""
    if not 1 <= value <= HARD_MAX_PIXELS:
        raise InputError(f"{name} must be between 1 and {HARD_MAX_PIXELS} (the largest RGB "
                         f"image OpenCV can process), got {value}")
    return int(value)


def check_pixel_budget(size_hw: tuple[int, int], max_pixels: int | None, name: object) -> None:
    """Raises `InputError` when an image of `size_hw` is above the budget.

    Args:
        size_hw: ``(H, W)`` of the image.
        max_pixels: the budget; None = `max_pixels_from_env`.
        name: what to call the image in the message (a path).
    """
    budget = max_pixels_from_env() if max_pixels is None else check_max_pixels(max_pixels)
    h, w = size_hw
    if h * w > budget:
        raise InputError(f"{name} is {w}x{h} = {h * w / 1e6:.1f} MP, above the pixel budget of "
                         f"{budget / 1e6:g} MP (raise it with --max-pixels N or "
                         f"{MAX_PIXELS_ENV}=N, up to {HARD_MAX_PIXELS})")


# --------------------------------------------------------------------------------------------
# Pixel types
# --------------------------------------------------------------------------------------------


def _to_unit_float(image: np.ndarray) -> np.ndarray:
    """Maps any decoded dtype to float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if image.dtype == np.int8:
        return (image.astype(np.float32) + 128.0) / 255.0
    if image.dtype == np.int16:
        return (image.astype(np.float32) + 32768.0) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return (image.astype(np.float64) - info.min).astype(np.float32) / float(info.max - info.min)
    raise ValueError(f"unsupported pixel type {image.dtype}")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Maps any decoded dtype to uint8, keeping the channel layout."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:  # exact integer mapping 0..65535 -> 0..255
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.round(_to_unit_float(image) * 255.0).astype(np.uint8)


def _composite(
    color: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]
) -> np.ndarray:
    """Blends ``color`` (H, W, 3, any dtype, RGB) over ``background`` using ``alpha`` (H, W)."""
    a = _to_unit_float(alpha)[..., None]
    c = _to_unit_float(color)
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3) / 255.0
    out = c * a + bg * (1.0 - a)
    return np.round(out * 255.0).astype(np.uint8)


def _to_rgb(image: np.ndarray, background: tuple[int, int, int], p: Path) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        rgb = _to_uint8(image)
        return np.repeat(rgb[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 2:  # gray + alpha
        gray = np.repeat(image[:, :, :1], 3, axis=2)
        return _composite(gray, image[:, :, 1], background)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(_to_uint8(image), cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        color = image[:, :, 2::-1]  # BGR -> RGB view
        alpha = image[:, :, 3]
        full = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
        if alpha.min() >= full:
            return _to_uint8(np.ascontiguousarray(color))  # fully opaque: nothing to blend
        return _composite(color, alpha, background)
    raise InputError(f"unsupported image layout {image.shape} in {p}")


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------


def _read_checked(p: Path, budget: int) -> np.ndarray:
    """The file's bytes (a writable uint8 array), read only after its header passed."""
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InputError(f"image file is empty: {p}")
            declared = read_header_size(f)
            if declared is None:
                raise InputError(
                    f"cannot decode image file {p}: no image size in its header (corrupt, "
                    "truncated, or not a PNG, JPEG, GIF, BMP, WebP, TIFF, PNM, Sun raster, "
                    "JPEG 2000, Radiance HDR, OpenEXR or AVIF file); not decoded")
            check_pixel_budget(declared, budget, p)
            if size > declared[0] * declared[1] * _BYTES_PER_PIXEL + _SLACK_BYTES:
                raise InputError(f"cannot decode image file {p}: {size} bytes is more than an "
                                 f"image of {declared[1]}x{declared[0]} can hold; not read")
            f.seek(0)
            return np.fromfile(f, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read image file {p}: {exc.strerror or exc}") from exc


def read_image(
    path: str | os.PathLike[str],
    background: tuple[int, int, int] = (0, 0, 0),
    max_pixels: int | None = None,
) -> np.ndarray:
    """Reads an image file as an upright RGB uint8 array.

    Args:
        path: image file path (any name the file system takes: non-ASCII, not valid UTF-8).
        background: RGB colour that transparent pixels are composited over (default black).
        max_pixels: pixel budget (width x height); larger images are refused from their header,
            before the file is read whole or decoded. None = ``VITPOSE_MAX_PIXELS`` or 100 MP.

    Returns:
        ``(H, W, 3)`` uint8 RGB array in upright (EXIF-corrected) image pixels.

    Raises:
        InputError: the file is missing, is a folder, is empty, cannot be decoded, has no size
            in its header, or is above the pixel budget; the message names the file.
    """
    p = Path(path)
    budget = max_pixels_from_env() if max_pixels is None else check_max_pixels(max_pixels)
    if not p.exists():
        raise InputError(f"image file not found: {p}")
    if p.is_dir():
        raise InputError(f"expected an image file but got a folder: {p}")
    data = _read_checked(p, budget)
    orientation = exif_orientation(memoryview(data))
    neutralize_tiff_orientation(data)  # OpenCV would turn a TIFF itself
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(f"cannot decode image file {p}: {exc}") from exc
    del data
    if image is None or image.size == 0:
        raise InputError(
            f"cannot decode image file {p} (corrupt, truncated, a format OpenCV cannot read, or "
            f"above OpenCV's size limit)"
        )
    check_pixel_budget(image.shape[:2], budget, p)  # a header that lied
    image = apply_exif_orientation(image, orientation)
    return np.ascontiguousarray(_to_rgb(image, background, p), dtype=np.uint8)


def write_image(path: str | os.PathLike[str], image_rgb: np.ndarray, *,
                fsync: bool = True) -> Path:
    """Writes an RGB uint8 image, encoded by its extension (``.jpg``, ``.png``, ...), atomically.

    The image is encoded in memory and written through `vitpose.fileio.atomic_write_bytes`, so
    any file name works (OpenCV's ``imwrite`` crashes on names that are not valid UTF-8) and an
    interrupted write leaves no half file. Missing folders are created.

    Raises:
        OutputError: no encoder for the extension, or the file cannot be written.
    """
    p = Path(path)
    suffix = p.suffix.lower() or ".png"
    try:
        ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image_rgb[..., ::-1]))
    except cv2.error as exc:
        raise OutputError(f"could not encode {p}: {str(exc).strip().splitlines()[-1]}") from None
    if not ok:
        raise OutputError(f"could not encode {p}: no {suffix} encoder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(p, buf.tobytes(), fsync=fsync)
    except OSError as exc:
        raise OutputError(f"could not write {p}: {exc.strerror or exc}") from None

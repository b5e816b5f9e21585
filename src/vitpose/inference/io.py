"""Image loading and input discovery for inference.

`read_image` turns any image file OpenCV can decode into one predictable array: RGB, uint8,
``(H, W, 3)``, upright. It deals with the cases that usually bite:

* grayscale (1 channel) and grayscale + alpha (2 channels) become 3 equal channels;
* RGBA / grayscale+alpha is **composited over a background colour** (black by default), so fully
  transparent pixels become the background instead of whatever RGB values happen to be stored
  under them;
* 16-bit images are mapped to 8 bits with ``round(v / 257)`` (65535 -> 255); float images are
  taken to be in ``[0, 1]`` and clipped;
* palette PNGs are expanded by the decoder;
* the EXIF orientation tag (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``, TIFF IFD0) is applied;
* images above a **pixel budget** (`DEFAULT_MAX_PIXELS`, 100 MP; ``VITPOSE_MAX_PIXELS`` or the
  ``max_pixels`` argument change it) are refused with an `InputError` *before decoding*, from the
  size in the file header (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM), so a small "decompression bomb"
  file (a 873 KB PNG of 30000x30000 zeros) never turns into gigabytes of pixels. Other formats
  are checked right after decoding. No budget goes above `HARD_MAX_PIXELS`, the largest RGB
  image whose buffer OpenCV can index (a 30000x30000 RGB ``warpAffine`` segfaults in 5.0).

Why our own EXIF handling: OpenCV applies the orientation for ``IMREAD_COLOR`` (and any flag
other than ``IMREAD_UNCHANGED``), but it does **not** for ``IMREAD_UNCHANGED``, which is the only
mode that keeps the alpha channel. We decode once with ``IMREAD_UNCHANGED`` and apply the tag
ourselves, so alpha, 16-bit and orientation are all honoured in one pass (the test suite checks
that the result matches OpenCV's own ``IMREAD_COLOR`` orientation for all eight EXIF values).

`iter_inputs` decides what an ``INPUT`` command-line argument names: an image file, a folder, a
glob pattern, a video file, a stream URL or a webcam index.
"""

from __future__ import annotations

import glob as _glob
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Backstop for formats whose header we do not parse: OpenCV's own decoder limit (read once, when
# cv2 is first imported; it has no effect when cv2 was imported before vitpose).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str((2**31 - 1) // 3))

import cv2
import numpy as np

from vitpose.errors import InputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HARD_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "InputSpec",
    "apply_exif_orientation",
    "check_pixel_budget",
    "exif_orientation",
    "header_size",
    "is_image_file",
    "is_video_file",
    "iter_inputs",
    "max_pixels_from_env",
    "read_image",
]

logger = logging.getLogger(__name__)

#: File extensions (lower case, with dot) treated as images when scanning folders and globs.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".jp2",
        ".pbm", ".pgm", ".ppm", ".pnm", ".sr", ".ras", ".hdr", ".pic", ".exr", ".gif", ".avif",
    }
)  # fmt: skip
#: File extensions (lower case, with dot) treated as videos.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
        ".3gp", ".ts", ".mts", ".m2ts", ".ogv",
    }
)  # fmt: skip

_STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_GLOB_CHARS = re.compile(r"[*?\[]")

_ORIENTATION_TAG = 0x0112

#: Default pixel budget of `read_image` (width x height): 100 MP, e.g. 12000 x 8333.
DEFAULT_MAX_PIXELS = 100_000_000
#: No budget goes above this: an RGB image of more pixels has a buffer of 2 GiB or more, which
#: OpenCV cannot index (``warpAffine`` on a 30000x30000 RGB array segfaults in OpenCV 5.0).
HARD_MAX_PIXELS = (2**31 - 1) // 3
#: Environment variable with the default pixel budget (an integer; ``1e8`` style is accepted).
MAX_PIXELS_ENV = "VITPOSE_MAX_PIXELS"


# --------------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------------


def _tiff_orientation(tiff: bytes) -> int:
    """Reads the Orientation tag from IFD0 of a TIFF/EXIF block (1 when absent or malformed)."""
    if len(tiff) < 8:
        return 1
    order = tiff[:2]
    if order == b"II":
        end = "<"
    elif order == b"MM":
        end = ">"
    else:
        return 1
    (magic, ifd_offset) = struct.unpack(end + "HI", tiff[2:8])
    if magic != 42 or ifd_offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(end + "H", tiff[ifd_offset : ifd_offset + 2])
    pos = ifd_offset + 2
    for _ in range(count):
        if pos + 12 > len(tiff):
            break
        tag, typ, n = struct.unpack(end + "HHI", tiff[pos : pos + 8])
        if tag == _ORIENTATION_TAG and n >= 1:
            if typ == 3:  # SHORT, stored in the first two bytes of the value field
                (value,) = struct.unpack(end + "H", tiff[pos + 8 : pos + 10])
            elif typ == 4:  # LONG (non-standard but seen in the wild)
                (value,) = struct.unpack(end + "I", tiff[pos + 8 : pos + 12])
            else:
                return 1
            return int(value) if 1 <= value <= 8 else 1
        pos += 12
    return 1


def _jpeg_exif(data: bytes) -> bytes | None:
    """Returns the TIFF block of the first ``Exif`` APP1 segment of a JPEG, or None."""
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return None
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            return body[6:]
        pos += 2 + length
    return None


def _png_exif(data: bytes) -> bytes | None:
    """Returns the content of a PNG ``eXIf`` chunk, or None."""
    pos = 8
    n = len(data)
    while pos + 8 <= n:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        if ctype == b"eXIf":
            body = data[pos + 8 : pos + 8 + length]
            return body[6:] if body[:6] == b"Exif\x00\x00" else body
        if ctype == b"IEND":
            return None
        pos += 12 + length
    return None


def _webp_exif(data: bytes) -> bytes | None:
    """Returns the content of a WebP ``EXIF`` chunk, or None."""
    pos = 12
    n = len(data)
    while pos + 8 <= n:
        ctype = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if ctype == b"EXIF":
            body = data[pos + 8 : pos + 8 + length]
            return body[6:] if body[:6] == b"Exif\x00\x00" else body
        pos += 8 + length + (length & 1)
    return None


def exif_orientation(data: bytes) -> int:
    """Finds the EXIF orientation of an encoded image.

    Args:
        data: the raw bytes of a JPEG, PNG, WebP or TIFF file.

    Returns:
        The orientation value 1..8 (1 = upright, also returned when there is no tag or the
        metadata is malformed).
    """
    try:
        if data[:2] == b"\xff\xd8":
            block = _jpeg_exif(data)
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            block = _png_exif(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            block = _webp_exif(data)
        elif data[:4] in (b"II*\x00", b"MM\x00*"):
            block = data
        else:
            block = None
        return _tiff_orientation(block) if block else 1
    except (struct.error, IndexError, ValueError):  # malformed metadata: keep the pixels as stored
        logger.debug("ignoring malformed EXIF metadata", exc_info=True)
        return 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turns an image decoded as stored into its upright view.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array as stored in the file.
        orientation: EXIF orientation 1..8 (other values are treated as 1).

    Returns:
        A C-contiguous array; for orientations 5..8 height and width are swapped.
    """
    if orientation == 2:  # mirrored left-right
        out = image[:, ::-1]
    elif orientation == 3:  # rotated 180
        out = image[::-1, ::-1]
    elif orientation == 4:  # mirrored top-bottom
        out = image[::-1]
    elif orientation == 5:  # transpose (mirror about the main diagonal)
        out = image.swapaxes(0, 1)
    elif orientation == 6:  # stored rotated 90 counter-clockwise: turn 90 clockwise
        out = image[::-1].swapaxes(0, 1)
    elif orientation == 7:  # transverse (mirror about the anti-diagonal)
        out = image[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:  # stored rotated 90 clockwise: turn 90 counter-clockwise
        out = image[:, ::-1].swapaxes(0, 1)
    else:
        return image
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------------------------
# Pixel budget: image size from the header, before decoding
# --------------------------------------------------------------------------------------------

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return h, w
        if marker in (0xDA, 0xD9) or length < 2:
            return None
        pos += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for i in range(count):
        pos = ifd + 2 + 12 * i
        tag, typ = struct.unpack(end + "HH", data[pos : pos + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            fmt = end + ("H" if typ == 3 else "I")
            (found[tag],) = struct.unpack(fmt, data[pos + 8 : pos + 8 + struct.calcsize(fmt)])
    return (found[257], found[256]) if len(found) == 2 else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    text = re.sub(rb"#[^\n]*", b" ", data[2:512])  # comments may sit between the numbers
    numbers = re.findall(rb"\d+", text)
    return (int(numbers[1]), int(numbers[0])) if len(numbers) >= 2 else None


def header_size(data: bytes) -> tuple[int, int] | None:
    """The ``(H, W)`` an encoded image declares in its header, read without decoding.

    Args:
        data: the file's bytes (the first few KB are enough for all but JPEGs with large
            metadata segments).

    Returns:
        ``(H, W)`` for PNG, JPEG, GIF, BMP, WebP, TIFF and PNM files; None for other formats or
        a header too damaged to read (the decoder then has the last word).
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return h, w
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return h, w
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(h), abs(w)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return h, w
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return h & 0x3FFF, w & 0x3FFF
            return None
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 2:
            return _pnm_size(data)
    except (struct.error, IndexError, ValueError, KeyError):
        logger.debug("unreadable image header", exc_info=True)
    return None


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
# Image reading
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


def read_image(
    path: str | os.PathLike[str],
    background: tuple[int, int, int] = (0, 0, 0),
    max_pixels: int | None = None,
) -> np.ndarray:
    """Reads an image file as an upright RGB uint8 array.

    Args:
        path: image file path (non-ASCII paths work on every platform).
        background: RGB colour that transparent pixels are composited over (default black).
        max_pixels: pixel budget (width x height); larger images are refused, from their header
            before decoding when the format allows. None = ``VITPOSE_MAX_PIXELS`` or 100 MP.

    Returns:
        ``(H, W, 3)`` uint8 RGB array in upright (EXIF-corrected) image pixels.

    Raises:
        InputError: the file is missing, is a folder, is empty, cannot be decoded, or is above
            the pixel budget; the message names the file.
    """
    p = Path(path)
    budget = max_pixels_from_env() if max_pixels is None else check_max_pixels(max_pixels)
    if not p.exists():
        raise InputError(f"image file not found: {p}")
    if p.is_dir():
        raise InputError(f"expected an image file but got a folder: {p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read image file {p}: {exc}") from exc
    if not data:
        raise InputError(f"image file is empty: {p}")
    declared = header_size(data)
    if declared is not None:
        check_pixel_budget(declared, budget, p)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(f"cannot decode image file {p}: {exc}") from exc
    if image is None or image.size == 0:
        raise InputError(
            f"cannot decode image file {p} (corrupt, truncated, a format OpenCV cannot read, or "
            f"above OpenCV's size limit)"
        )
    check_pixel_budget(image.shape[:2], budget, p)  # formats without a parsed header
    image = apply_exif_orientation(image, exif_orientation(data))

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        rgb = _to_uint8(image)
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 2:  # gray + alpha
        gray = np.repeat(image[:, :, :1], 3, axis=2)
        rgb = _composite(gray, image[:, :, 1], background)
    elif image.ndim == 3 and image.shape[2] == 3:
        rgb = cv2.cvtColor(_to_uint8(image), cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        color = image[:, :, 2::-1]  # BGR -> RGB view
        alpha = image[:, :, 3]
        full = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
        if alpha.min() >= full:
            rgb = _to_uint8(np.ascontiguousarray(color))  # fully opaque: nothing to blend
        else:
            rgb = _composite(color, alpha, background)
    else:
        raise InputError(f"unsupported image layout {image.shape} in {p}")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Input discovery
# --------------------------------------------------------------------------------------------

InputKind = Literal["image", "folder", "glob", "video", "webcam", "stream"]


@dataclass(frozen=True)
class InputSpec:
    """What an ``INPUT`` argument refers to.

    Attributes:
        kind: ``"image"`` (one file), ``"folder"``, ``"glob"`` (image lists), ``"video"`` (a file),
            ``"webcam"`` (a device index) or ``"stream"`` (a URL OpenCV can open).
        spec: the argument as given.
        image_paths: the images to process, in order (empty for video kinds).
        video_source: the file path string, URL or webcam index (None for image kinds).
    """

    kind: InputKind
    spec: str
    image_paths: tuple[Path, ...] = field(default_factory=tuple)
    video_source: str | int | None = None

    @property
    def is_video(self) -> bool:
        """True when frames come from a video file, a stream or a webcam."""
        return self.kind in ("video", "webcam", "stream")

    def __len__(self) -> int:
        return len(self.image_paths)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name has a video extension (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _natural_key(path: Path) -> list[object]:
    """Sort key so that ``frame2.jpg`` comes before ``frame10.jpg``."""
    parts = re.split(r"(\d+)", str(path))
    return [(0, int(t)) if t.isdigit() else (1, t.lower()) for t in parts]


def _images_only(paths: list[Path]) -> list[Path]:
    keep = [p for p in paths if p.is_file() and is_image_file(p) and not p.name.startswith(".")]
    return sorted(keep, key=_natural_key)


def iter_inputs(spec: str | int | os.PathLike[str], recursive: bool = False) -> InputSpec:
    """Works out what an ``INPUT`` argument names.

    Resolution order: an existing folder, an existing file (by extension: image or video), a
    stream URL (``rtsp://``, ``http(s)://``, ...), a webcam index (an integer or a string of
    digits that is not an existing path), then a glob pattern. Folder and glob results keep only
    image files, skip hidden files (names starting with ``.``) and are sorted naturally
    (``img2`` before ``img10``).

    Args:
        spec: the argument, e.g. ``"photo.jpg"``, ``"frames/"``, ``"data/*.png"``, ``"clip.mp4"``,
            ``"0"`` or ``0``.
        recursive: also look into sub-folders (folders) / let ``**`` match folders (globs).

    Returns:
        An `InputSpec` describing the images or the video source.

    Raises:
        InputError: nothing usable matches, with a message saying what was tried.
    """
    if isinstance(spec, bool):
        raise InputError(f"invalid input {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise InputError(f"invalid webcam index {spec}")
        return InputSpec(kind="webcam", spec=str(spec), video_source=spec)
    text = os.fspath(spec)
    if not text.strip():
        raise InputError("no input given (empty string)")
    path = Path(text).expanduser()

    if path.is_dir():
        it = path.rglob("*") if recursive else path.iterdir()
        images = _images_only(list(it))
        if not images:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise InputError(f"folder {path} contains no image files (looked for: {exts})")
        return InputSpec(kind="folder", spec=text, image_paths=tuple(images))

    if path.is_file():
        if is_image_file(path):
            return InputSpec(kind="image", spec=text, image_paths=(path,))
        if is_video_file(path):
            return InputSpec(kind="video", spec=text, video_source=str(path))
        raise InputError(
            f"cannot tell whether {path} is an image or a video from its extension "
            f"{path.suffix!r}; images: {', '.join(sorted(IMAGE_EXTENSIONS))}; "
            f"videos: {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )

    if text.lower().startswith(_STREAM_PREFIXES):
        return InputSpec(kind="stream", spec=text, video_source=text)

    if text.strip().isdigit():
        return InputSpec(kind="webcam", spec=text, video_source=int(text.strip()))

    if _GLOB_CHARS.search(text):
        matches = [Path(m) for m in _glob.glob(os.path.expanduser(text), recursive=recursive)]
        images = _images_only(matches)
        if not images:
            if any(is_video_file(m) for m in matches):
                raise InputError(
                    f"pattern {text!r} matches only videos; pass one video file at a time"
                )
            raise InputError(f"pattern {text!r} matches no image files")
        return InputSpec(kind="glob", spec=text, image_paths=tuple(images))

    raise InputError(
        f"input {text!r} not found: expected an image or video file, a folder, a glob pattern, "
        "a stream URL or a webcam index such as 0"
    )

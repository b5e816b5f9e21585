"""Input discovery, and the names of inputs where text must be valid.

`iter_inputs` decides what an ``INPUT`` command-line argument names: an image file, a folder, a
glob pattern, a video file, a stream URL or a webcam index.

File names on POSIX are bytes; Python hands the ones that are not valid UTF-8 over as strings
with lone surrogates (``os.fsdecode``, ``surrogateescape``). Such a string keeps the path usable
for Python's own file functions, but two places cannot take it:

* JSON: `printable_name` (and `json_safe` for whole values) writes each undecodable byte as a
  backslash escape (byte 0xE9 -> the four characters ``\\xe9``), so results files are valid
  UTF-8 JSON that strict parsers accept; names that are valid UTF-8 are unchanged.
* OpenCV's file functions (``VideoCapture``, ``VideoWriter``, ``imread``, ``imwrite``) crash on
  them: images are read and written as bytes (`vitpose.inference.io.read_image`,
  `write_image`); videos are opened through `opencv_path`, which hands OpenCV a temporary
  ASCII-named symbolic link.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vitpose.errors import InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "InputSpec",
    "is_image_file",
    "is_video_file",
    "iter_inputs",
    "json_safe",
    "opencv_path",
    "printable_name",
]

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


# --------------------------------------------------------------------------------------------
# Names that are not valid UTF-8
# --------------------------------------------------------------------------------------------


def printable_name(name: str | bytes | os.PathLike) -> str:
    """`name` as valid Unicode text: each byte that is not UTF-8 (held by Python as a lone
    surrogate) becomes a backslash escape, ``caf\\xe9.jpg``; other names are returned as they
    are. For JSON, logs and messages; open the file with the original path."""
    text = os.fsdecode(name)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte (e.g. from JSON input)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any) -> Any:
    """`value` with every string (dict keys included) passed through `printable_name`, so that
    ``json.dumps`` writes text strict parsers accept. Other values are returned as they are."""
    if isinstance(value, str):
        return printable_name(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@contextlib.contextmanager
def opencv_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """A name OpenCV's file functions can take for `path` (``VideoCapture``, ``VideoWriter``).

    A name that is valid UTF-8 is yielded as it is. Otherwise a symbolic link with an ASCII
    name (same extension, which OpenCV uses to choose a container) is made in a temporary
    folder and removed on exit; it works for reading and for writing (OpenCV creates the file
    the link points to).

    Raises:
        InputError: the name is not UTF-8 and this system cannot make symbolic links.
    """
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    suffix = Path(text).suffix
    if not suffix.isascii():
        suffix = ""
    folder = tempfile.mkdtemp(prefix="vitpose-name-")
    link = os.path.join(folder, "file" + suffix)
    try:
        try:
            os.symlink(os.path.abspath(text), link)
        except (OSError, UnicodeError) as exc:
            raise InputError(f"cannot open {printable_name(text)}: its name is not valid UTF-8, "
                             f"which OpenCV cannot take, and no link could be made to it "
                             f"({getattr(exc, 'strerror', None) or exc}); rename it") from None
        yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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

"""Boxes and image ids read from files written by users or other tools.

* `load_coco_detections`: detections in COCO results format (``--det-file``), keyed by image id
  or, with a COCO images file (``--images-file``), by file name.
* `load_box_mapping`: a plain ``{file_name: [[x, y, w, h, score], ...]}`` file
  (``--boxes-json``).
* `load_image_ids`: the ``file_name -> id`` table of a COCO images file; a file that gives one
  id to two files, or two ids to one file, is refused (detections would be lost).
* `find_boxes`: the boxes of one image in such a mapping.

Every file is read through `vitpose.fileio.read_json` (size-limited, one `InputError` for any
malformed content: deep nesting, integers of thousands of digits, invalid UTF-8); entries that
are not what they should be raise an `InputError` naming the file and the entry. Boxes are
``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels (`vitpose.inference.boxes`).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import InputError
from ..fileio import read_json
from .boxes import empty_boxes

__all__ = ["find_boxes", "load_box_mapping", "load_coco_detections", "load_image_ids"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _number(value: Any, where: str, what: str) -> float:
    """A JSON number as a float (an integer too large for a float is an error, not inf)."""
    if isinstance(value, bool):
        value = int(value)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: {what} must be a number, got {_short(value)}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_box(values: Any, where: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) not in (4, 5):
        raise InputError(f"{where}: a box must be a list [x, y, w, h] or [x, y, w, h, score]")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: box values must be numbers, got {_short(values)}") from None
    if len(out) == 4:
        out.append(1.0)
    return out


def _as_array(rows: list[list[float]]) -> np.ndarray:
    if not rows:
        return empty_boxes()
    with np.errstate(over="ignore"):  # beyond float32: inf, dropped by `sanitize_boxes`
        return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


def _detection_image_id(value: Any, where: str) -> int:
    """The ``image_id`` of a detection: an integer (or a string or float holding one)."""
    if not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            try:
                return int(value)
            except ValueError:  # thousands of digits
                pass
    raise InputError(f"{where}: image_id must be an integer, got {_short(value)}")


def _image_entries(path: PathLike) -> list[tuple[int, str]]:
    """``(id, file_name)`` of each image of a COCO images file, in file order (a repeated
    entry once; ``a.jpg`` and ``./a.jpg`` with one id are one image). Refuses entries without
    an integer id or a file name, one id given to two file names, and one file name (as a
    POSIX path) given two ids."""
    p = Path(path)
    data = read_json(p, "images")
    images = data.get("images") if isinstance(data, dict) else data
    if not isinstance(images, list):
        raise InputError(f"images file {p} has no 'images' list (a COCO annotation or images "
                         "file: {'images': [{'id': 1, 'file_name': 'a.jpg'}, ...]})")
    name_of: dict[int, str] = {}
    id_of: dict[str, int] = {}
    out: dict[tuple[int, str], None] = {}  # ordered, each entry once
    for i, im in enumerate(images):
        where = f"images file {p} images[{i}]"
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise InputError(f"{where}: needs 'id' and 'file_name'")
        image_id, name = im["id"], im["file_name"]
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise InputError(f"{where}: image {_short(name)} has id {_short(image_id)}; COCO "
                             "image ids are integers")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: file_name must be a non-empty string, got "
                             f"{_short(name)}")
        key = PurePosixPath(name).as_posix()
        if name_of.get(image_id, key) != key:
            raise InputError(
                f"images file {p}: image id {image_id} is given to two files "
                f"({name_of[image_id]!r} and {key!r}); each image needs its own id, or the "
                "detections of one would be used for the other")
        if id_of.get(key, image_id) != image_id:
            raise InputError(
                f"images file {p}: {key!r} is listed twice, with ids {id_of[key]} and "
                f"{image_id}; each file needs exactly one id, or the detections of one id "
                "would be lost")
        name_of[image_id], id_of[key] = key, image_id
        out[image_id, name] = None
    return list(out)


def load_image_ids(path: PathLike) -> dict[str, int]:
    """The image ids of a COCO annotation or images file (``--images-file``).

    Args:
        path: a JSON file with an ``"images"`` list of ``{"id": int, "file_name": str}`` (a
            bare list of such entries is accepted too).

    Returns:
        ``{file_name: id}``: each file name as a POSIX path, and also its last part when no
        other listed file has the same last part.

    Raises:
        InputError: the file is missing, too large or not valid JSON; an entry lacks an integer
            id or a file name; one id is given to two files, or one file two ids (an exact
            repeat of an entry is harmless and accepted).
    """
    ids: dict[str, int] = {}
    by_base: dict[str, set[int]] = {}
    for image_id, name in _image_entries(path):
        posix = PurePosixPath(name)
        ids[posix.as_posix()] = image_id
        by_base.setdefault(posix.name, set()).add(image_id)
    for base, found in by_base.items():
        if len(found) == 1:
            ids.setdefault(base, next(iter(found)))
    return ids


def load_coco_detections(
    det_json: PathLike,
    images_json: PathLike | None = None,
    score_thr: float = 0.0,
    category_id: int | None = 1,
) -> dict[str | int, np.ndarray]:
    """Reads detections in COCO results format.

    The file is a list of ``{"image_id", "bbox": [x, y, w, h], "score", "category_id"}`` entries
    (a dict with an ``"annotations"`` list, e.g. ground truth, is accepted too; a missing score
    counts as 1).

    Args:
        det_json: the detections file.
        images_json: a COCO file with an ``"images"`` list (``id``, ``file_name``; see
            `load_image_ids` for what is refused). When given, the result is keyed by file
            name and contains every listed image (with an empty array when it has no
            detections); detections of unlisted images are skipped with a warning. When
            omitted, the result is keyed by integer ``image_id``.
        score_thr: keep detections with ``score >= score_thr``.
        category_id: keep only this category (1 = person in COCO); None keeps all.

    Returns:
        ``{file_name or image_id: (N, 5) float32 x, y, w, h, score}`` in original-image pixels,
        each sorted by descending score.

    Raises:
        InputError: a file is missing or malformed; the message names the file and the entry.
    """
    det_path = Path(det_json)
    data = read_json(det_path, "detections")
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(
            f"detections file {det_path} must hold a list of COCO result entries "
            "({'image_id', 'bbox', 'score', 'category_id'})"
        )
    per_image: dict[int, list[list[float]]] = {}
    for i, entry in enumerate(data):
        where = f"{det_path} entry {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
        if "image_id" not in entry or "bbox" not in entry:
            raise InputError(f"{where}: missing 'image_id' or 'bbox'")
        if category_id is not None and entry.get("category_id", category_id) != category_id:
            continue
        box = _parse_box(entry["bbox"], where)
        box[4] = _number(entry.get("score", 1.0), where, "score")
        if box[4] < score_thr:
            continue
        image_id = _detection_image_id(entry["image_id"], where)
        per_image.setdefault(image_id, []).append(box)

    def finish(rows: list[list[float]]) -> np.ndarray:
        arr = _as_array(rows)
        return arr[np.argsort(-arr[:, 4], kind="stable")]

    if images_json is None:
        return {k: finish(v) for k, v in per_image.items()}

    entries = _image_entries(images_json)
    listed = {image_id for image_id, _ in entries}
    unknown = sorted(set(per_image) - listed)
    if unknown:
        logger.warning(
            "%d image id(s) in %s are not listed in %s and are skipped (e.g. %s)",
            len(unknown), det_path, Path(images_json), unknown[:5],
        )  # fmt: skip
    return {name: finish(per_image.get(image_id, [])) for image_id, name in entries}


def load_box_mapping(json_path: PathLike) -> dict[str, np.ndarray]:
    """Reads a plain ``{file_name: [[x, y, w, h, score], ...]}`` box file.

    A box may omit the score (``[x, y, w, h]`` counts as score 1); an image may map to an empty
    list.

    Args:
        json_path: the JSON file.

    Returns:
        ``{file_name: (N, 5) float32 x, y, w, h, score}`` in original-image pixels.

    Raises:
        InputError: the file is missing or malformed; the message names the file, key and index.
    """
    p = Path(json_path)
    data = read_json(p, "box")
    if not isinstance(data, dict):
        raise InputError(f"box file {p} must hold an object {{file_name: [[x, y, w, h, score]]}}")
    out: dict[str, np.ndarray] = {}
    for name, boxes in data.items():
        if not isinstance(boxes, list):
            raise InputError(f"{p} [{name!r}]: expected a list of boxes")
        rows = [_parse_box(b, f"{p} [{name!r}] box {j}") for j, b in enumerate(boxes)]
        out[str(name)] = _as_array(rows)
    return out


def find_boxes(
    mapping: Mapping[str | int, np.ndarray], image_path: PathLike
) -> np.ndarray | None:
    """Looks up the boxes of one image in a detections mapping.

    Tries, in order: the path as given, its POSIX form, the file name, and (for integer-keyed
    mappings) the integer value of the file-name stem, so that COCO files such as
    ``000000000785.jpg`` find image id 785.

    Args:
        mapping: a result of `load_coco_detections` or `load_box_mapping`.
        image_path: the image being processed.

    Returns:
        The ``(N, 5)`` boxes, or None when the image is not in the mapping.
    """
    p = Path(image_path)
    for key in (os.fspath(image_path), p.as_posix(), p.name):
        if key in mapping:
            return mapping[key]
    digits = re.fullmatch(r"\D*0*(\d+)", p.stem)
    if digits is not None:
        image_id = int(digits.group(1))
        if image_id in mapping:
            return mapping[image_id]
    return None

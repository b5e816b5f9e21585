"""Pre-annotations for labelling tools, and the corrected labels back into training.

* CVAT (and any COCO tool): `to_coco_keypoints` writes a COCO Keypoints file (images,
  annotations with boxes and ``x, y, v`` keypoints, a category with the keypoint names and the
  1-based skeleton). CVAT imports it as "COCO Keypoints 1.0"; its export in the same format is
  a training file for ``vitpose train`` as it is.
* Label Studio: `to_label_studio` writes import tasks whose ``predictions`` hold one rectangle
  per person and one keypoint per body part (``x``/``y`` in percent of the image, each with its
  score; keypoints name their person in ``parentID``), and `label_studio_config` the labelling
  interface they fit. `label_studio_to_coco` turns Label Studio's JSON export of the corrected
  tasks into a COCO Keypoints training file.
* `select_uncertain` keeps the images the model is least sure about (those are worth a
  person's time first).

A whole-body (133-keypoint) file is written flat (one ``keypoints`` list), as CVAT reads it;
training reads that layout through a keypoint-metadata file with the 133 names (the built-in
``wholebody`` set expects COCO-WholeBody's split ``foot_kpts`` / ``face_kpts`` / ... fields,
which are not written).

Visibility of predictions: a keypoint scoring at least ``min_score`` is written as labelled and
visible (``v = 2``); a lower one as not labelled (``0, 0, 0``), so that nothing unsure enters
training unless a person places it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from xml.sax.saxutils import quoteattr

import numpy as np

from vitpose.dataset_meta import DatasetMeta
from vitpose.errors import InputError
from vitpose.fileio import atomic_write_json, atomic_write_text, read_json
from vitpose.formats.common import as_frames, keypoint_set, prepare_target, progress

__all__ = ["image_uncertainty", "label_studio_config", "label_studio_to_coco",
           "select_uncertain", "to_coco_keypoints", "to_label_studio", "write_coco_keypoints",
           "write_label_studio"]


def _results(results: Any) -> list[Any]:
    return [r for _, r in as_frames(results)] if not hasattr(results, "instances") else [results]


def image_uncertainty(result: Any) -> float:
    """How unsure the model is about one image, 0 (sure) to 1: one minus the mean keypoint
    score of its least sure person. An image where nobody was found counts as 1 (a person
    should look whether someone was missed)."""
    if not result.instances:
        return 1.0
    means = [float(np.mean(np.asarray(i.keypoints)[:, 2])) for i in result.instances]
    return float(np.clip(1.0 - min(means), 0.0, 1.0))


def select_uncertain(results: Any, n: int) -> list[Any]:
    """The ``n`` results the model is least sure about (`image_uncertainty`), most unsure
    first; ties keep their input order."""
    if int(n) < 1:
        raise InputError(f"the number of images to select must be >= 1, got {n}")
    items = _results(results)
    order = sorted(range(len(items)), key=lambda i: -image_uncertainty(items[i]))
    return [items[i] for i in order[:int(n)]]


def _image_ids(results: list[Any]) -> list[int]:
    ids = [r.image_id for r in results]
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids) \
            and len(set(ids)) == len(ids):
        return [int(i) for i in ids]
    return list(range(1, len(results) + 1))


def _file_name(source: Any, image_root: str | os.PathLike[str] | None) -> str:
    path = Path(str(source))
    if image_root is not None:
        try:
            return path.resolve().relative_to(Path(image_root).resolve()).as_posix()
        except ValueError:
            raise InputError(f"{path} is not inside the image folder {image_root}") from None
    return path.name


def _coco_keypoints(kp: np.ndarray, min_score: float) -> tuple[list[float], int]:
    out: list[float] = []
    labelled = 0
    for x, y, s in kp:
        if s >= min_score and np.isfinite(x) and np.isfinite(y):
            out += [round(float(x), 2), round(float(y), 2), 2]
            labelled += 1
        else:
            out += [0, 0, 0]
    return out, labelled


def to_coco_keypoints(results: Any, *, meta: DatasetMeta | str | None = None,
                      min_score: float = 0.3, image_root: str | os.PathLike[str] | None = None,
                      category: str = "person") -> dict[str, Any]:
    """A COCO Keypoints file (dict) of the predictions: the format CVAT imports as
    "COCO Keypoints 1.0" and ``vitpose train`` reads.

    Args:
        min_score: keypoints under it are written unlabelled (``0, 0, 0``).
        image_root: ``file_name`` is the image path relative to this folder (default: the file
            name alone).
        category: the category's name.
    """
    items = _results(results)
    meta = keypoint_set(items, meta)
    images, annotations = [], []
    for image_id, result in zip(_image_ids(items), items):
        h, w = (int(v) for v in result.image_hw)
        images.append({"id": image_id, "file_name": _file_name(result.source, image_root),
                       "width": w, "height": h})
        for inst in result.instances:
            kp = np.asarray(inst.keypoints, np.float64)
            if kp.shape != (meta.num_keypoints, 3):
                raise InputError(f"{result.source}: an instance does not have the "
                                 f"{meta.num_keypoints} keypoints of {meta.name!r}")
            flat, labelled = _coco_keypoints(kp, min_score)
            box = [round(float(v), 2) for v in inst.box_xywh]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "bbox": box, "area": round(box[2] * box[3], 2), "iscrowd": 0, "segmentation": [],
                "keypoints": flat, "num_keypoints": labelled, "score": round(float(inst.score), 4)})
    categories = [{"id": 1, "name": category, "supercategory": category,
                   "keypoints": list(meta.keypoint_names),
                   "skeleton": [[a + 1, b + 1] for a, b in meta.skeleton]}]
    return {"info": {"description": f"vitpose pre-annotations ({meta.name})"},
            "images": images, "annotations": annotations, "categories": categories}


def write_coco_keypoints(results: Any, path: str | os.PathLike[str], *,
                         overwrite: bool = False, select: int | None = None,
                         **options: Any) -> Path:
    """`to_coco_keypoints` to a JSON file (``select``: only the `select_uncertain` images)."""
    path = prepare_target(path, overwrite=overwrite)
    items = select_uncertain(results, select) if select else _results(results)
    return atomic_write_json(path, to_coco_keypoints(items, **options))


# --------------------------------------------------------------------------------------------
# Label Studio
# --------------------------------------------------------------------------------------------

_BOX, _POINTS, _IMAGE = "box", "keypoints", "image"


def label_studio_config(meta: DatasetMeta | str, category: str = "person") -> str:
    """The Label Studio labelling interface for `to_label_studio` tasks: an image, a
    ``RectangleLabels`` for the person box and a ``KeyPointLabels`` with one label per keypoint."""
    meta = keypoint_set([], meta)
    labels = "\n".join(f"    <Label value={quoteattr(n)} background={quoteattr(_hex(c))}/>"
                       for n, c in zip(meta.keypoint_names, meta.keypoint_colors))
    return (f'<View>\n  <Image name="{_IMAGE}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{_BOX}" toName="{_IMAGE}">\n'
            f'    <Label value={quoteattr(category)}/>\n  </RectangleLabels>\n'
            f'  <KeyPointLabels name="{_POINTS}" toName="{_IMAGE}" smart="true">\n{labels}\n'
            f'  </KeyPointLabels>\n</View>\n')


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def to_label_studio(results: Any, *, meta: DatasetMeta | str | None = None,
                    min_score: float = 0.3, image_url: str = "/data/local-files/?d={path}",
                    image_root: str | os.PathLike[str] | None = None, category: str = "person",
                    model_version: str = "vitpose", point_width: float = 0.6) -> list[dict]:
    """Label Studio import tasks with the predictions as ``predictions``.

    Args:
        min_score: keypoints under it are left out (a person adds them if they are there).
        image_url: the task's ``data.image``; ``{path}`` becomes the image path relative to
            ``image_root`` (default: the file name). The default serves files from Label
            Studio's local storage; use e.g. ``https://host/images/{path}`` for a web server.
        point_width: keypoint size in percent of the image width.
    """
    items = _results(results)
    meta = keypoint_set(items, meta)
    tasks = []
    for image_id, result in zip(_image_ids(items), items):
        h, w = (int(v) for v in result.image_hw)
        regions: list[dict[str, Any]] = []
        scores = []
        for n, inst in enumerate(result.instances):
            kp = np.asarray(inst.keypoints, np.float64)
            if kp.shape != (meta.num_keypoints, 3):
                raise InputError(f"{result.source}: an instance does not have the "
                                 f"{meta.num_keypoints} keypoints of {meta.name!r}")
            bx, by, bw, bh = (float(v) for v in inst.box_xywh)
            parent = f"p{n}"
            scores.append(float(inst.score))
            regions.append({
                "id": parent, "from_name": _BOX, "to_name": _IMAGE, "type": "rectanglelabels",
                "original_width": w, "original_height": h, "image_rotation": 0,
                "score": round(float(inst.score), 4),
                "value": {"x": 100 * bx / w, "y": 100 * by / h, "width": 100 * bw / w,
                          "height": 100 * bh / h, "rotation": 0, "rectanglelabels": [category]}})
            for j, (x, y, s) in enumerate(kp):
                if s < min_score or not (np.isfinite(x) and np.isfinite(y)):
                    continue
                regions.append({
                    "id": f"{parent}_k{j}", "parentID": parent, "from_name": _POINTS,
                    "to_name": _IMAGE, "type": "keypointlabels", "original_width": w,
                    "original_height": h, "image_rotation": 0, "score": round(float(s), 4),
                    "value": {"x": 100 * float(x) / w, "y": 100 * float(y) / h,
                              "width": point_width,
                              "keypointlabels": [meta.keypoint_names[j]]}})
        tasks.append({
            "data": {"image": image_url.format(path=_file_name(result.source, image_root)),
                     "vitpose_image_id": image_id, "vitpose_uncertainty":
                         round(image_uncertainty(result), 4)},
            "predictions": [{"model_version": model_version,
                             "score": round(float(np.mean(scores)), 4) if scores else 0.0,
                             "result": regions}]})
    return tasks


def write_label_studio(results: Any, path: str | os.PathLike[str], *, overwrite: bool = False,
                       select: int | None = None, meta: DatasetMeta | str | None = None,
                       **options: Any) -> list[Path]:
    """The tasks (``path``, JSON) and the labelling interface beside them
    (``<stem>.label_config.xml``); ``select``: only the `select_uncertain` images."""
    path = prepare_target(path, overwrite=overwrite)
    config = path.with_name(path.stem + ".label_config.xml")
    prepare_target(config, overwrite=overwrite)
    items = select_uncertain(results, select) if select else _results(results)
    meta = keypoint_set(items, meta)
    tasks = to_label_studio(items, meta=meta, **options)
    atomic_write_text(config, label_studio_config(meta, options.get("category", "person")))
    return [atomic_write_json(path, tasks), config]


def _task_file_name(image: str) -> str:
    """The image path of a task: what follows Label Studio's local-files ``?d=`` (the path
    relative to the image folder, as `to_label_studio` wrote it), else the URL's file name."""
    if "?d=" in image:
        return unquote(image.split("?d=", 1)[1])
    return Path(unquote(urlparse(image).path)).name


def _pct(value: dict[str, Any], key: str, size: float) -> float:
    try:
        v = float(value[key])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"a Label Studio region has no number {key!r}") from None
    return v * size / 100.0


def label_studio_to_coco(export: str | os.PathLike[str] | list[dict], *,
                         meta: DatasetMeta | str, image_sizes: dict[str, tuple[int, int]]
                         | None = None, show_progress: bool | None = None) -> dict[str, Any]:
    """A COCO Keypoints training file from Label Studio's JSON export of corrected tasks.

    Each task's latest annotation that was not skipped is used (tasks nobody annotated are left
    out). Every rectangle is a person; a keypoint belongs to the rectangle its ``parentID``
    names, else to the smallest rectangle holding it; keypoints outside every rectangle, and
    labels that are not keypoint names, are refused with the task named. A keypoint marked
    hidden is ``v = 1``, else ``v = 2``; a missing one ``0, 0, 0``.
    """
    meta = keypoint_set([], meta)
    tasks = read_json(export, "Label Studio export") if not isinstance(export, list) else export
    if not isinstance(tasks, list):
        raise InputError("a Label Studio export is a JSON list of tasks")
    names = {n: i for i, n in enumerate(meta.keypoint_names)}
    images, annotations = [], []
    for t_index, task in progress(list(enumerate(tasks)), len(tasks), "Label Studio tasks",
                                  show_progress):
        done = [a for a in task.get("annotations", []) or []
                if not (a.get("was_cancelled") or a.get("skipped"))]
        if not done:
            continue
        ann = max(done, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
        regions = ann.get("result") or []
        image = str((task.get("data") or {}).get("image", ""))
        w = h = None
        for r in regions:
            if "original_width" in r:
                w, h = int(r["original_width"]), int(r["original_height"])
                break
        if w is None and image_sizes is not None:
            h, w = image_sizes.get(Path(image).name, (None, None))
        if w is None:
            raise InputError(f"task {t_index}: no image size (no region has original_width); "
                             "pass image_sizes")
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": _task_file_name(image),
                       "width": w, "height": h})
        boxes: dict[str, list[float]] = {}
        for r in regions:
            if r.get("type") == "rectanglelabels":
                v = r["value"]
                boxes[str(r.get("id", len(boxes)))] = [_pct(v, "x", w), _pct(v, "y", h),
                                                       _pct(v, "width", w), _pct(v, "height", h)]
        points = {bid: np.zeros((meta.num_keypoints, 3)) for bid in boxes}
        for r in regions:
            if r.get("type") != "keypointlabels":
                continue
            v = r["value"]
            label = (v.get("keypointlabels") or [None])[0]
            if label not in names:
                raise InputError(f"task {t_index}: the keypoint label {label!r} is not one of "
                                 f"{meta.name!r}'s keypoints")
            x, y = _pct(v, "x", w), _pct(v, "y", h)
            owner = r.get("parentID") if r.get("parentID") in boxes else None
            if owner is None:
                holding = [(b[2] * b[3], bid) for bid, b in boxes.items()
                           if b[0] <= x <= b[0] + b[2] and b[1] <= y <= b[1] + b[3]]
                if not holding:
                    raise InputError(f"task {t_index}: the keypoint {label!r} at ({x:.0f}, "
                                     f"{y:.0f}) lies outside every person box")
                owner = min(holding)[1]
            points[owner][names[label]] = [x, y, 1 if v.get("hidden") else 2]
        for bid, box in boxes.items():
            kp = points[bid]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "bbox": [round(b, 2) for b in box], "area": round(box[2] * box[3], 2),
                "iscrowd": 0, "keypoints": [round(float(c), 2) if i % 3 < 2 else int(c)
                                            for i, c in enumerate(kp.reshape(-1))],
                "num_keypoints": int((kp[:, 2] > 0).sum())})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": list(meta.keypoint_names),
                            "skeleton": [[a + 1, b + 1] for a, b in meta.skeleton]}]}

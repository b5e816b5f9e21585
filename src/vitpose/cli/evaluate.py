"""`vitpose evaluate --dataset NAME --ann GT.json --results RESULTS.json`: score a results file.

For users who run inference elsewhere, and for `vitpose predict` output (``.json``, or
``.jsonl``: one result per line, as ``--out results.jsonl`` writes them): results whose
``image_id`` is a file name (a folder run without ``--images-file``) are matched to the
annotation file's ``images[].file_name`` (the path as written, or its last part when that is
unambiguous). Prints the metrics as a table (``--json``: as JSON, for scripts; ``--out``
writes the JSON to a file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..fileio import atomic_write_json, read_json, read_results_file
from ..inference.results import is_journal_header
from ..metrics import evaluate
from ..training.build import resolve_dataset_meta
from ..training.evaluate import format_metrics

#: datasets whose results are not in COCO results format (matched by ``ann_id`` instead)
_NOT_COCO_RESULTS = {"mpii", "interhand2d"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True,
                   help="coco, aic, mpii, crowdpose, ochuman, ap10k, apt36k, wholebody, "
                        "interhand2d, or a custom keypoint-metadata file (.yaml/.json)")
    p.add_argument("--ann", required=True, help="ground-truth annotation file")
    p.add_argument("--results", required=True,
                   help="predictions (COCO results format, e.g. `vitpose predict`'s "
                        "results.json: integer image ids or file names found in the "
                        "annotation file; MPII/InterHand: ann_id + keypoints); a .jsonl file "
                        "holds one result per line (`vitpose predict --out results.jsonl`)")
    p.add_argument("--head-boxes", default=None, help="MPII: head boxes (from mpii_gt_val.mat)")
    p.add_argument("--camera", default=None, help="InterHand2.6M: camera file")
    p.add_argument("--joints-3d", default=None, help="InterHand2.6M: 3D joint file")
    p.add_argument("--out", default=None,
                   help="also write the metrics JSON here (missing folders are created)")
    p.add_argument("--json", action="store_true",
                   help="print the metrics as JSON instead of a table (for scripts)")


def read_results(path: str) -> Any:
    """The results of a ``.json`` or ``.jsonl`` file (one result per line).

    Raises:
        InputError: the file is missing or malformed (a ``.jsonl`` line: its number), or is the
            journal of an unfinished run (``P.partial.jsonl``) rather than its results.
    """
    data = read_results_file(path)
    if isinstance(data, list) and data and is_journal_header(data[0]):
        raise InputError(f"{path} is the journal of a `vitpose predict` run that has not "
                         "finished, not its results: rerun the same command to finish the run, "
                         "then score the results file it writes")
    return data


def map_file_name_ids(results: list[Any], ann_path: str, results_path: str) -> list[Any]:
    """Results with file-name ``image_id`` s (``"000000000785.jpg"``, ``"sub/x.jpg"``) -> the
    annotation file's integer ids, through ``images[].file_name``.

    Raises:
        InputError: a file name is not in the annotation file (the message says what to pass).
    """
    names = {r.get("image_id") for r in results
             if isinstance(r, dict) and isinstance(r.get("image_id"), str)}
    if not names:
        return results
    ann = read_json(ann_path, "annotation")
    images = ann.get("images") if isinstance(ann, dict) else None
    if not isinstance(images, list):
        raise InputError(f"{ann_path}: no 'images' list to match the file names of "
                         f"{results_path} against")
    by_name: dict[str, Any] = {}
    by_last: dict[str, list[Any]] = {}
    for im in images:
        if isinstance(im, dict) and isinstance(im.get("file_name"), str):
            file_name = Path(im["file_name"]).as_posix()
            by_name[file_name] = im.get("id")
            by_last.setdefault(Path(file_name).name, []).append(im.get("id"))
    for last, ids in by_last.items():
        if len(ids) == 1:
            by_name.setdefault(last, ids[0])
    missing = sorted(n for n in names if n not in by_name and Path(n).name not in by_name)
    if missing:
        shown = ", ".join(repr(n) for n in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise InputError(
            f"{results_path}: {len(missing)} image_id(s) are file names that are not in "
            f"{ann_path} ({shown}); score results of the images the annotation file lists, or "
            f"run `vitpose predict ... --images-file {ann_path}` so that the results carry its "
            "integer ids")
    mapped = []
    for r in results:
        image_id = r.get("image_id") if isinstance(r, dict) else None
        if isinstance(image_id, str):
            new_id = by_name.get(image_id, by_name.get(Path(image_id).name))
            r = {**r, "image_id": new_id}
        mapped.append(r)
    return mapped


def _prepare_out(out: str) -> Path:
    path = Path(out)
    if path.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name such as {path / 'm.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder of --out {out}: {e.strerror or e}") from None
    return path


def run(args: argparse.Namespace) -> int:
    out = _prepare_out(args.out) if args.out else None  # before the (slow) evaluation
    meta = resolve_dataset_meta(args.dataset)
    results: Any = args.results
    data = read_results(args.results)
    if meta.name not in _NOT_COCO_RESULTS:
        if isinstance(data, list):
            mapped = map_file_name_ids(data, args.ann, args.results)
            if mapped is not data:  # else the metrics read the file and name it in messages
                results = mapped
    metrics = evaluate(meta, args.ann, results, head_boxes=args.head_boxes,
                       camera_path=args.camera, joint_3d_path=args.joints_3d)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(format_metrics({meta.name: metrics}))
    if out is not None:
        try:
            atomic_write_json(out, metrics, writer=lambda m: json.dumps(m, indent=2))
        except OSError as e:
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    return 0

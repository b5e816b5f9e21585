"""`vitpose predict INPUT`: poses for an image, a folder, a glob, a video file or a webcam.

Images give a COCO results JSON (``results.json``) and drawn images (mirroring the inputs'
folders under ``--out-dir``); videos give an annotated mp4 and per-frame JSON with track ids.
Results are journalled as they come (``*.partial.jsonl``, `ResumableResults`): an interrupted
run keeps what it had, and rerunning the same command continues where it stopped;
``--overwrite`` starts afresh. See docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..errors import InputError, OutputError, VitPoseError
from ..inference import builder as inference_builder
from ..inference.builder import BoxSource
from ..inference.io import (
    DEFAULT_MAX_PIXELS,
    HARD_MAX_PIXELS,
    MAX_PIXELS_ENV,
    InputSpec,
    check_max_pixels,
    iter_inputs,
    max_pixels_from_env,
    read_image,
)
from ..inference.pipeline import (
    DECODE_CHOICES,
    PoseEstimator,
    PoseInstance,
    PoseResult,
    RoutedPoseEstimator,
)
from ..inference.results import ResumableResults
from . import predict_scale

log = logging.getLogger("vitpose.predict")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run a model (predict, demo, bench)."""
    p.add_argument("--model", default=None,
                   help="variant name (see `vitpose models`), checkpoint path or hub id "
                        "(default: vitpose-b-simple; with --weights, the file's own "
                        "architecture, and a name that contradicts the file is an error)")
    p.add_argument("--weights", default=None,
                   help="checkpoint path or hub id (default: the variant's released weights)")
    p.add_argument("--dataset", default=None,
                   help="keypoint set / ViTPose+ expert: coco, aic, mpii, ap10k, apt36k, "
                        "wholebody, ..., or auto (ViTPose+: each box's detector class picks "
                        "the head, persons -> COCO, animals -> AP-10K) (default: the model's "
                        "first)")
    p.add_argument("--dataset-meta", default=None, metavar="FILE",
                   help="keypoint metadata (.yaml/.json) of a custom dataset, for models "
                        "fine-tuned on your own keypoints (see docs/FINETUNE.md)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the model runs: cpu, cuda, cuda:1, ... (default: cuda when "
                        "available, else cpu)")
    p.add_argument("--dtype", choices=[*sorted(DTYPES), "auto"], default="auto",
                   help="compute dtype of the model: auto = bfloat16 on CPUs with "
                        "AVX512-BF16/AMX and on recent GPUs, float16 on older GPUs, else "
                        "float32 (about 3x faster on such CPUs, keypoints within 0.1 px of "
                        "float32 for 99%% of them; see docs/PERFORMANCE.md); float32 = exact, "
                        "the official numbers (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone (each new batch size compiles for seconds)")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "torch", "onnxruntime", "openvino"],
                   help="inference engine: auto = the fastest installed engine of this machine "
                        "whose output passes the accuracy gate, chosen by a short calibration on "
                        "first use and remembered in the cache folder (see docs/PERFORMANCE.md); "
                        "onnxruntime needs vitpose[onnx], openvino vitpose[openvino] "
                        "(default: %(default)s)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="image, folder, glob ('imgs/*.jpg'), video file or webcam index")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help=f"refuse images of more than N pixels (width x height), from the file "
                        f"header before decoding (default: ${MAX_PIXELS_ENV} or "
                        f"{DEFAULT_MAX_PIXELS:,}; at most {HARD_MAX_PIXELS:,})")
    add_model_arguments(p)
    boxes = p.add_argument_group("person boxes (default: --detector)")
    boxes.add_argument("--detector", default="auto",
                       help="auto (D-FINE-N, fast, downloaded on first use; offline it says "
                            "so and uses hog), dfine-s, rtdetr (RT-DETR-R50, larger and "
                            "slower), a Hugging Face id or folder of a transformers detector, "
                            "hog (offline, OpenCV, low quality) or whole-image (alias: none; "
                            "one box covering the image) (default: %(default)s; see "
                            "docs/DETECTORS.md)")
    boxes.add_argument("--det-classes", default=None, metavar="NAMES",
                       help="comma-separated detector classes to keep (default: person; with "
                            "--dataset auto: person and the animals)")
    boxes.add_argument("--det-engine", choices=("auto", "onnxruntime", "openvino", "torch"),
                       default="auto",
                       help="how a learned detector runs: auto = on the CPU the faster of "
                            "OpenVINO and ONNX Runtime on this machine (timed once, remembered "
                            "beside the cached export), else PyTorch (default: %(default)s; "
                            "docs/DETECTORS.md)")
    boxes.add_argument("--wholebody", action="store_true",
                       help="with --dataset auto: persons get COCO-WholeBody keypoints")
    boxes.add_argument("--det-file", help="detections in COCO results format")
    boxes.add_argument("--images-file",
                       help="COCO annotation/images file mapping image_id -> file name "
                            "(for --det-file, and for image_id in the results)")
    boxes.add_argument("--boxes-json", help='JSON {"file name": [[x, y, w, h, score], ...]}')
    boxes.add_argument("--box", action="append", default=[], metavar="X,Y,W,H",
                       help="a box for every image (repeatable)")
    boxes.add_argument("--det-thr", type=float, default=None,
                       help="minimum box score (default: 0.0 for files, the detector's own)")
    boxes.add_argument("--fallback", choices=("none", "whole-image"), default="none",
                       help="what to do when the detector finds nobody in an image: none (no "
                            "poses) or whole-image (one crop of the whole image, fine for "
                            "single-person photos) (default: %(default)s)")
    test = p.add_argument_group("test-time settings")
    test.add_argument("--no-flip", action="store_true", help="disable the flip test")
    test.add_argument("--decode", choices=DECODE_CHOICES, default=None,
                      help="udp (COCO/MPII/ViTPose+ protocol), default (arg-max + quarter "
                           "offset) or dark (default: the dataset's official protocol)")
    test.add_argument("--oks-nms", type=float, default=None, metavar="THR",
                      help="OKS-NMS threshold per image (the paper uses 0.9; default off)")
    test.add_argument("--batch-size", type=int, default=16,
                      help="person crops per model call (default: %(default)s)")
    out = p.add_argument_group("outputs")
    out.add_argument("--out-dir", default="vitpose_out",
                     help="folder for drawn images/videos and results (default: %(default)s)")
    out.add_argument("--out", default=None,
                     help="results JSON path (default: OUT_DIR/results.json)")
    out.add_argument("--no-draw", action="store_true", help="do not write drawn images")
    out.add_argument("--kpt-thr", type=float, default=0.3,
                     help="keypoints scoring below this are not drawn (default: %(default)s)")
    out.add_argument("--overwrite", action="store_true",
                     help="start afresh, replacing existing outputs (without it, a rerun of an "
                          "interrupted run continues it, and a complete run is an error)")
    vid = p.add_argument_group("video")
    vid.add_argument("--no-track", action="store_true", help="no track ids across frames")
    vid.add_argument("--smooth", action="store_true", help="One-Euro temporal smoothing")
    vid.add_argument("--max-frames", type=int, default=None, metavar="N",
                     help="stop after N frames")
    vid.add_argument("--det-interval", type=int, default=1, metavar="N",
                     help="run the detector every N frames; in between, each tracked person's "
                          "box comes from their previous keypoints (a lost track triggers a "
                          "new detection) (default: %(default)s)")
    predict_scale.add_arguments(p)


def build_estimator(args: argparse.Namespace) -> PoseEstimator | RoutedPoseEstimator:
    """The estimator of the model options (`add_model_arguments`, test-time settings)."""
    return inference_builder.build_estimator(
        args.model, weights=args.weights, dataset=args.dataset,
        dataset_meta=getattr(args, "dataset_meta", None), device=args.device, dtype=args.dtype,
        compile=getattr(args, "compile", False), flip_test=not getattr(args, "no_flip", False),
        decode=getattr(args, "decode", None), oks_nms=getattr(args, "oks_nms", None),
        batch_size=getattr(args, "batch_size", 16), backend=getattr(args, "backend", "auto"),
        wholebody=getattr(args, "wholebody", False))


def box_source(args: argparse.Namespace) -> BoxSource:
    """The box source of the box options."""
    classes = getattr(args, "det_classes", None)
    strict = bool(classes)
    if classes:
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    elif (getattr(args, "dataset", None) or "").lower() == "auto":
        classes = list(inference_builder.AUTO_CLASSES)
    return BoxSource(detector=args.detector, det_file=args.det_file,
                     images_file=args.images_file, boxes_json=args.boxes_json, boxes=args.box,
                     det_thr=args.det_thr, fallback=args.fallback, device=args.device,
                     classes=classes, strict_classes=strict,
                     engine=getattr(args, "det_engine", "auto"))


# ---------------------------------------------------------------------------------------------
# Checks before anything is loaded or written
# ---------------------------------------------------------------------------------------------

def _validate(args: argparse.Namespace) -> int:
    """Rejects impossible option values with one message each; returns the pixel budget."""
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.det_interval < 1:
        raise InputError(f"--det-interval must be at least 1, got {args.det_interval}")
    if args.oks_nms is not None and not 0.0 < args.oks_nms <= 1.0:
        raise InputError(f"--oks-nms takes an OKS threshold in (0, 1], got {args.oks_nms}")
    for name in ("det_thr", "kpt_thr"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise InputError(f"--{name.replace('_', '-')} must be a number, got {value}")
    if args.max_pixels is not None:
        return check_max_pixels(args.max_pixels, "--max-pixels")
    return max_pixels_from_env()


def _check_writable(folder: Path) -> None:
    """Checks that files can be written in `folder` (OutputError if not) without creating it:
    a run that then fails (e.g. on a missing model) leaves nothing behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is not a folder")
        if existing != folder:
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(13, f"{existing} is not writable")
            return
        probe = folder / f".vitpose-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {folder}: "
                          f"{e.strerror or e}") from None


def _run_settings(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """What makes a rerun "the same command" for resuming: everything that changes results."""
    names = ("model", "weights", "dataset", "dataset_meta", "dtype", "detector", "det_file",
             "images_file", "boxes_json", "box", "det_thr", "fallback", "no_flip", "decode",
             "oks_nms", "det_classes", "wholebody")
    settings = {n: getattr(args, n, None) for n in names}
    settings.update(extra)
    return settings


# ---------------------------------------------------------------------------------------------
# Output names
# ---------------------------------------------------------------------------------------------

def _input_root(spec: InputSpec) -> Path:
    """The folder that output names are taken relative to: the folder of a folder run, the
    deepest folder shared by a glob's matches, the parent of a single image."""
    if spec.kind == "folder":
        return Path(spec.spec).expanduser()
    parents = {str(p.parent) for p in spec.image_paths}
    return Path(os.path.commonpath(sorted(parents))) if len(parents) > 1 \
        else spec.image_paths[0].parent


def _input_keys(spec: InputSpec) -> dict[Path, str]:
    """Each image's key: its path relative to the input root, with ``/`` (``sub/x.jpg``).
    Keys are unique; they are the results' ``image_id`` when no images file gives one."""
    root = _input_root(spec)
    return {p: Path(os.path.relpath(p, root)).as_posix() for p in spec.image_paths}


def _drawn_paths(out_dir: Path, keys: dict[Path, str]) -> dict[Path, Path]:
    """Where each drawn copy goes: ``OUT_DIR/<relative folder>/<stem>_pose<ext>``, keeping the
    extension when OpenCV can write it (else ``.jpg``). Names that would still meet (``a.jpg``
    and ``a.JPG``, also on case-insensitive file systems) keep the input's extension in the
    name (``a.JPG_pose.jpg``), then get a number."""
    import cv2
    drawn: dict[Path, Path] = {}
    taken: set[str] = set()
    for path, key in keys.items():
        rel = Path(key)
        suffix = rel.suffix.lower()
        if not suffix or not cv2.haveImageWriter(f"x{suffix}"):
            suffix = ".jpg"
        # lazily numbered: a list of len(keys) names per image made large folders quadratic
        candidates = itertools.chain([f"{rel.stem}_pose{suffix}", f"{rel.name}_pose{suffix}"],
                                     (f"{rel.name}_pose{n}{suffix}" for n in itertools.count(2)))
        for name in candidates:
            target = out_dir / rel.parent / name
            if str(target).casefold() not in taken:
                break
        taken.add(str(target).casefold())
        drawn[path] = target
    return drawn


def _check_outputs(paths: list[Path], overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise InputError(f"output already exists: {shown} (pass --overwrite to replace)")


# ---------------------------------------------------------------------------------------------
# Non-finite predictions
# ---------------------------------------------------------------------------------------------

def _nonfinite_message(count: int, where: int, unit: str, path: Path) -> str:
    return (f"{count} instance(s) in {where} {unit} had non-finite (NaN or infinite) "
            f"keypoints or scores and were left out of {path} (broken or diverged weights?)")


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def _concat(values: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [entry for entries in values for entry in entries]


def run(args: argparse.Namespace) -> int:
    """Images: a COCO results JSON (+ drawn images). Exit code 0, or 1 when some files of a
    folder/glob could not be read (they are skipped and listed) or some predictions were not
    finite; a single unreadable input is an error (`InputError`, exit 2) raised before any model
    is loaded or any output written. A rerun of an interrupted run continues it."""
    max_pixels = _validate(args)
    if predict_scale.wanted(args):  # torchrun, --out *.jsonl, video lists: docs/SCALE_OUT.md
        return predict_scale.run(args, max_pixels)
    spec = iter_inputs(args.input)
    out_dir = Path(args.out_dir)
    if spec.is_video:
        return _run_video(args, spec, out_dir)
    results_path = Path(args.out) if args.out else out_dir / "results.json"
    keys = _input_keys(spec)
    drawn = {} if args.no_draw else _drawn_paths(out_dir, keys)
    source = str(Path(spec.spec).expanduser().resolve()) if spec.kind != "glob" else spec.spec
    results = ResumableResults(results_path, _run_settings(args, input=source),
                               overwrite=args.overwrite, flatten=_concat)
    if not results.resumed:
        _check_outputs(list(drawn.values()), args.overwrite)
    todo = [p for p in spec.image_paths
            if keys[p] not in results.done or (not args.no_draw and not drawn[p].exists())]
    total = len(spec.image_paths)
    single = total == 1
    first = read_image(todo[0], max_pixels=max_pixels) if single and todo else None
    for folder in {results_path.parent, out_dir} if drawn else {results_path.parent}:
        _check_writable(folder)
    if results.resumed:
        print(f"resuming: {total - len(todo)} of {total} image(s) already done "
              f"(journal {results.partial}); doing the other {len(todo)}", file=sys.stderr)
    failed: list[str] = []
    n_instances = n_done = n_nonfinite = 0
    nonfinite_images: set[str] = set()
    t0 = time.perf_counter()
    complete = False
    if todo:
        boxes = box_source(args)
        estimator = build_estimator(args)
    results.start()
    queued: deque[tuple[Path, np.ndarray]] = deque()  # results come back in input order

    def items():
        for path in todo:
            try:
                image = first if single else read_image(path, max_pixels=max_pixels)
                b, labels = boxes.labeled(str(path), image)
            except VitPoseError as e:
                if single:
                    raise
                log.error("skipping %s: %s", path, e)
                failed.append(str(path))
                continue
            queued.append((path, image))
            yield image, b, boxes.image_id(path, default=keys[path]), labels

    bar = tqdm(total=len(todo), unit="img", disable=len(todo) < 4, file=sys.stderr)
    try:
        for result in estimator.predict_many(items()) if todo else ():
            path, image = queued.popleft()
            result.source = str(path)
            dropped = result.drop_nonfinite()
            if dropped:
                n_nonfinite += dropped
                nonfinite_images.add(keys[path])
            if not args.no_draw:  # drawn first: a journalled image always has its drawing
                _write_image(drawn[path], estimator.draw(image, result, args.kpt_thr))
            results.add(keys[path], result.to_coco())
            n_instances += len(result.instances)
            n_done += 1
            bar.update(1)
        complete = True
    except KeyboardInterrupt:
        print(f"interrupted after {total - len(todo) + n_done} of {total} image(s); their "
              f"results are saved in {results_path}; rerun the same command to continue "
              "(--overwrite starts afresh)", file=sys.stderr)
        raise
    finally:
        bar.close()
        try:
            results.finish(order=[keys[p] for p in spec.image_paths], complete=complete)
        except OutputError as e:
            if complete:
                raise
            log.error("%s", e)
    dt = time.perf_counter() - t0
    print(f"{n_done} image(s), {n_instances} instance(s) in {dt:.1f} s -> {results_path}"
          + ("" if args.no_draw else f", drawn images in {out_dir}"))
    rc = 0
    if n_nonfinite:
        print("warning: " + _nonfinite_message(n_nonfinite, len(nonfinite_images), "image(s)",
                                               results_path), file=sys.stderr)
        rc = 1
    if failed:
        shown = ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
        print(f"{len(failed)} of {total} file(s) could not be read and were "
              f"skipped: {shown}", file=sys.stderr)
        rc = 1
    return rc


def _write_image(path: Path, image_rgb: np.ndarray) -> None:
    import cv2
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = cv2.imwrite(str(path), image_rgb[..., ::-1])
    except (OSError, cv2.error) as e:
        raise OutputError(f"could not write {path}: {e}") from None
    if not ok:
        raise OutputError(f"could not write {path} (disk full or unwritable folder?)")


# ---------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------

_EXACT = ("raw", "raw_boxes", "detected")


def _video_rows(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-frame JSON rows from the journal's values (without the exact model outputs kept for
    replaying the tracker, smoother and detection interval on resume)."""
    return [{k: v for k, v in row.items() if k not in _EXACT} for row in values]


def _exact_row(result: PoseResult, detected: bool) -> dict[str, Any]:
    """The exact model outputs of a new frame (before tracking and smoothing), journalled for
    replaying it on resume: per instance its keypoints and its box ``x, y, w, h, score``
    (float32 values, exact in JSON), and ``detected: false`` when the detector did not run on
    the frame (``--det-interval``)."""
    row: dict[str, Any] = {} if detected else {"detected": False}
    if result.instances:
        row["raw"] = [i.keypoints.reshape(-1).tolist() for i in result.instances]
        row["raw_boxes"] = [[*i.box_xywh[:4].tolist(), float(i.box_score)]
                            for i in result.instances]
    return row


def _stored_result(row: dict[str, Any], index: int, image_hw: tuple[int, int], dataset: str,
                   ) -> tuple[PoseResult, PoseResult, bool]:
    """A journalled frame as a `PoseResult` (as stored: for drawing and the outputs), its exact
    model poses (unsmoothed, unrounded keypoints, boxes and box scores: for replaying the
    tracker, the smoother and the detection interval) and whether the detector ran on it."""
    instances, exact = [], []
    raw = row.get("raw")
    raw_boxes = row.get("raw_boxes")
    for n, e in enumerate(row["instances"]):
        kp = np.asarray(e["keypoints"], np.float32).reshape(-1, 3)
        box = np.asarray(e["bbox"], np.float32)
        inst = PoseInstance(box, float(e["score"]), kp, float(e["score"]),
                            box[:2] + box[2:] / 2, box[2:] / 200.0,
                            dataset=e.get("dataset"), category=e.get("category"))
        inst.track_id = e.get("track_id")
        instances.append(inst)
        exact_kp = np.asarray(raw[n], np.float32).reshape(-1, 3) if raw is not None else kp.copy()
        exact_box = np.asarray(raw_boxes[n], np.float32) if raw_boxes is not None else \
            np.append(box, np.float32(e["score"]))
        exact.append(PoseInstance(exact_box[:4].copy(), float(exact_box[4]), exact_kp,
                                  float(e["score"]), inst.center, inst.scale,
                                  dataset=inst.dataset, category=inst.category))
    result = PoseResult(f"frame {index}", index, image_hw, dataset, instances)
    return result, PoseResult(f"frame {index}", index, image_hw, dataset, exact), \
        bool(row.get("detected", True))


def _run_video(args: argparse.Namespace, spec: InputSpec, out_dir: Path) -> int:
    """A video: per-frame JSON and the annotated mp4. The detector runs every
    ``--det-interval`` frames (boxes from the previous poses in between); frames are read in a
    background thread and drawn/written in another. A rerun after an interruption keeps the
    journalled frames (they are not estimated again: the tracker, smoother and detection
    interval replay them) and continues with the next frame; the mp4 is written afresh from
    the first frame, the journalled frames drawn from their stored results."""
    from ..inference.video import (
        BackgroundWriter,
        IntervalBoxes,
        PoseSmoother,
        PoseTracker,
        VideoReader,
        VideoWriter,
        estimate_video,
        prefetch,
    )
    stem = Path(str(spec.video_source)).stem if spec.kind == "video" \
        else f"webcam{spec.video_source}"
    video_path = out_dir / f"{stem}_pose.mp4"
    json_path = Path(args.out) if args.out else out_dir / f"{stem}_frames.json"
    source = str(Path(str(spec.video_source)).resolve()) if spec.kind == "video" \
        else str(spec.video_source)
    results = ResumableResults(json_path, _run_settings(args, input=source,
                                                        no_track=args.no_track,
                                                        smooth=args.smooth,
                                                        det_interval=args.det_interval),
                               overwrite=args.overwrite, flatten=_video_rows)
    if results.resumed and spec.kind != "video":
        raise InputError(f"{results.partial} holds an interrupted run of a webcam or stream, "
                         "which cannot be replayed: pass --overwrite to start afresh")
    if not results.resumed and not args.no_draw:
        _check_outputs([video_path], args.overwrite)
    reader = VideoReader(spec.video_source)
    for folder in {json_path.parent, out_dir} if not args.no_draw else {json_path.parent}:
        _check_writable(folder)
    boxes = box_source(args)
    estimator = build_estimator(args)
    routed = hasattr(estimator, "routes")  # several keypoint sets: tracks matched by box IoU
    tracker = None if args.no_track else (
        PoseTracker(metric="iou") if routed else
        PoseTracker(metric="oks", sigmas=estimator.meta.sigmas))
    smoother = PoseSmoother(reader.fps) if args.smooth and tracker is not None else None
    interval = IntervalBoxes(lambda frame: boxes.labeled(None, frame), args.det_interval)
    results.start()
    if results.resumed:
        print(f"resuming: {len(results.done)} frame(s) already done (journal "
              f"{results.partial}); the video is written afresh", file=sys.stderr)
    video = None if args.no_draw else VideoWriter(video_path, reader.fps)
    total = reader.frame_count if args.max_frames is None else \
        min(args.max_frames, reader.frame_count or args.max_frames)
    n = n_new = n_nonfinite = 0
    nonfinite_frames = 0
    complete = False
    exact: dict[int, dict[str, Any]] = {}

    def frames():
        for index, frame in enumerate(reader):
            if args.max_frames is not None and index >= args.max_frames:
                break
            yield frame

    def stored(index: int, frame: np.ndarray) -> tuple[PoseResult, PoseResult, bool] | None:
        row = results.done.get(index)
        return None if row is None else \
            _stored_result(row, index, frame.shape[:2], estimator.dataset)

    def prepare(index: int, result: PoseResult, detected: bool) -> None:
        nonlocal n_nonfinite, nonfinite_frames
        dropped = result.drop_nonfinite()
        n_nonfinite += dropped
        nonfinite_frames += dropped > 0
        if tracker is not None or args.det_interval > 1:  # exact, for replaying on resume
            exact[index] = _exact_row(result, detected)

    drawing = None if video is None else BackgroundWriter()
    import cv2
    # decoding, drawing and encoding run in threads beside the model: OpenCV's own thread pool
    # would compete with the model's threads (5x slower end to end on 2 cores, measured)
    cv2.setNumThreads(1)
    kpt_thr = args.kpt_thr

    def draw_and_write(frame: np.ndarray, result: PoseResult) -> None:
        video.write(estimator.draw(frame, result, kpt_thr))

    try:
        with tqdm(total=total, unit="frame", file=sys.stderr) as bar:
            for index, frame, result in estimate_video(
                    prefetch(frames()), estimator, interval, tracker, smoother,
                    stored=stored if results.resumed else None, prepare=prepare):
                if index not in results.done:
                    row: dict[str, Any] = {"frame": index, "instances": result.to_coco()}
                    row.update(exact.pop(index, {}))
                    results.add(index, row)
                    n_new += 1
                if drawing is not None:
                    drawing.submit(draw_and_write, frame, result)
                n += 1
                bar.update(1)
        complete = True
    except KeyboardInterrupt:
        print(f"interrupted after {n} frame(s); their results are saved in {json_path}; rerun "
              "the same command to continue (--overwrite starts afresh)", file=sys.stderr)
        raise
    finally:
        try:
            if drawing is not None:
                drawing.close()
        finally:
            reader.close()
            if video is not None:
                video.close()
            try:
                results.finish(order=sorted(results.done), complete=complete)
            except OutputError as e:
                if complete:
                    raise
                log.error("%s", e)
    extra = f" ({interval.detections} detector pass(es))" if args.det_interval > 1 else ""
    print(f"{n} frame(s){extra} -> {json_path}" + ("" if video is None else f", {video_path}")
          + (f" ({n - n_new} from the interrupted run)" if results.resumed else ""))
    rc = 0
    if n_nonfinite:
        print("warning: " + _nonfinite_message(n_nonfinite, nonfinite_frames, "frame(s)",
                                               json_path), file=sys.stderr)
        rc = 1
    if reader.undecodable:
        print(f"warning: {reader.undecodable} of the {reader.frame_count} frames of "
              f"{spec.video_source} could not be decoded (truncated or damaged file); "
              f"{reader.frames_read} were processed", file=sys.stderr)
        rc = 1
    return rc

"""`vitpose predict INPUT`: poses for an image, a folder, a glob, a video file or a webcam.

Images give a COCO results JSON (``results.json``) and drawn images; videos give an annotated
mp4 and per-frame JSON with track ids. Results are written as they come (``*.partial.jsonl``),
so an interrupted run keeps what it had; existing outputs are kept unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..errors import InputError, VitPoseError
from ..inference import builder as inference_builder
from ..inference.builder import BoxSource
from ..inference.io import iter_inputs, read_image
from ..inference.pipeline import DECODE_CHOICES, PoseEstimator

log = logging.getLogger("vitpose.predict")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run a model (predict, demo, bench)."""
    p.add_argument("--model", default="vitpose-b-simple",
                   help="variant name (see `vitpose models`), checkpoint path or hub id "
                        "(default: %(default)s)")
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
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=[*sorted(DTYPES), "auto"], default="auto",
                   help="compute dtype of the model: auto = bfloat16 on CPUs with "
                        "AVX512-BF16/AMX and on recent GPUs, float16 on older GPUs, else "
                        "float32 (about 3x faster on such CPUs, keypoints within 0.1 px of "
                        "float32 for 99%% of them; see docs/PERFORMANCE.md); float32 = exact, "
                        "the official numbers (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone (each new batch size compiles for seconds)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="image, folder, glob ('imgs/*.jpg'), video file or webcam index")
    add_model_arguments(p)
    boxes = p.add_argument_group("person boxes (default: --detector)")
    boxes.add_argument("--detector", default="auto",
                       help="auto (D-FINE-N, fast, downloaded on first use; offline it says "
                            "so and uses hog), dfine-s, rtdetr (RT-DETR-R50, larger and "
                            "slower), a Hugging Face id or folder of a transformers detector, "
                            "hog (offline, OpenCV, low quality) or whole-image "
                            "(default: %(default)s; see docs/DETECTORS.md)")
    boxes.add_argument("--det-classes", default=None, metavar="NAMES",
                       help="comma-separated detector classes to keep (default: person; with "
                            "--dataset auto: person and the animals)")
    boxes.add_argument("--det-engine", choices=("auto", "onnxruntime", "torch"), default="auto",
                       help="how a learned detector runs: auto = ONNX Runtime on the CPU "
                            "(exported once, cached), else PyTorch (default: %(default)s)")
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
    test.add_argument("--batch-size", type=int, default=16)
    out = p.add_argument_group("outputs")
    out.add_argument("--out-dir", default="vitpose_out",
                     help="folder for drawn images/videos and results (default: %(default)s)")
    out.add_argument("--out", default=None,
                     help="results JSON path (default: OUT_DIR/results.json)")
    out.add_argument("--no-draw", action="store_true", help="do not write drawn images")
    out.add_argument("--kpt-thr", type=float, default=0.3, help="drawing threshold")
    out.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    vid = p.add_argument_group("video")
    vid.add_argument("--no-track", action="store_true", help="no track ids across frames")
    vid.add_argument("--smooth", action="store_true", help="One-Euro temporal smoothing")
    vid.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    vid.add_argument("--det-interval", type=int, default=1, metavar="N",
                     help="run the detector every N frames; in between, each tracked person's "
                          "box comes from their previous keypoints (a lost track triggers a "
                          "new detection) (default: %(default)s)")


def build_estimator(args: argparse.Namespace) -> PoseEstimator:
    """The estimator of the model options (`add_model_arguments`, test-time settings)."""
    return inference_builder.build_estimator(
        args.model, weights=args.weights, dataset=args.dataset,
        dataset_meta=getattr(args, "dataset_meta", None), device=args.device, dtype=args.dtype,
        compile=getattr(args, "compile", False), flip_test=not getattr(args, "no_flip", False),
        decode=getattr(args, "decode", None), oks_nms=getattr(args, "oks_nms", None),
        batch_size=getattr(args, "batch_size", 16), wholebody=getattr(args, "wholebody", False))


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


class ResultsWriter:
    """Appends results as JSON lines while running; writes the final JSON at the end (also on
    interruption), so nothing already computed is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.partial.open("w")
        self.count = 0

    def add(self, entries: list[dict[str, Any]]) -> None:
        for e in entries:
            self._fh.write(json.dumps(e) + "\n")
            self.count += 1
        self._fh.flush()

    def finish(self) -> None:
        self._fh.close()
        rows = [json.loads(line) for line in self.partial.read_text().splitlines() if line]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, self.path)
        self.partial.unlink()


def _drawn_path(out_dir: Path, image_path: Path) -> Path:
    """Where the drawn copy of `image_path` goes: ``OUT_DIR/<stem>_pose<ext>``, keeping the
    extension when OpenCV can write it (else ``.jpg``, e.g. for GIF inputs)."""
    import cv2
    suffix = image_path.suffix.lower()
    if not suffix or not cv2.haveImageWriter(f"x{suffix}"):
        suffix = ".jpg"
    return out_dir / f"{image_path.stem}_pose{suffix}"


def _check_outputs(paths: list[Path], overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise InputError(f"output already exists: {shown} (pass --overwrite to replace)")


def run(args: argparse.Namespace) -> int:
    """Images: a COCO results JSON (+ drawn images). Exit code 0, or 1 when some files of a
    folder/glob could not be read (they are skipped and listed); a single unreadable input is
    an error (`InputError`, exit 2) raised before any model is loaded or any output written."""
    spec = iter_inputs(args.input)
    out_dir = Path(args.out_dir)
    if spec.is_video:
        return _run_video(args, spec, out_dir)
    results_path = Path(args.out) if args.out else out_dir / "results.json"
    drawn = {} if args.no_draw else {p: _drawn_path(out_dir, p) for p in spec.image_paths}
    _check_outputs([results_path, *drawn.values()], args.overwrite)
    single = len(spec.image_paths) == 1
    first = read_image(spec.image_paths[0]) if single else None  # fail before loading a model
    boxes = box_source(args)
    estimator = build_estimator(args)
    writer = ResultsWriter(results_path)
    failed: list[str] = []
    n_instances = 0
    n_done = 0
    t0 = time.perf_counter()
    queued: deque[tuple[Path, np.ndarray]] = deque()  # results come back in input order

    routed = hasattr(estimator, "routes")

    def items():
        for path in spec.image_paths:
            try:
                image = first if single else read_image(path)
                b, labels = boxes.labeled(str(path), image)
            except VitPoseError as e:
                if single:
                    raise
                log.error("skipping %s: %s", path, e)
                failed.append(str(path))
                continue
            queued.append((path, image))
            if routed:  # the class of each box picks its keypoint set
                yield image, b, boxes.image_id(path), labels
            else:
                yield image, b, boxes.image_id(path)

    bar = tqdm(total=len(spec.image_paths), unit="img", disable=len(spec.image_paths) < 4,
               file=sys.stderr)
    try:
        for result in estimator.predict_many(items()):
            path, image = queued.popleft()
            result.source = str(path)
            writer.add(result.to_coco())
            n_instances += len(result.instances)
            n_done += 1
            if not args.no_draw:
                _write_image(drawn[path], estimator.draw(image, result, args.kpt_thr))
            bar.update(1)
    except KeyboardInterrupt:
        print(f"interrupted after {n_done} of {len(spec.image_paths)} image(s); their "
              f"{writer.count} result(s) are saved in {results_path}", file=sys.stderr)
        raise
    finally:
        bar.close()
        writer.finish()
    dt = time.perf_counter() - t0
    print(f"{n_done} image(s), {n_instances} instance(s) in {dt:.1f} s -> {results_path}"
          + ("" if args.no_draw else f", drawn images in {out_dir}"))
    if failed:
        shown = ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
        print(f"{len(failed)} of {len(spec.image_paths)} file(s) could not be read and were "
              f"skipped: {shown}", file=sys.stderr)
        return 1
    return 0


def _write_image(path: Path, image_rgb: np.ndarray) -> None:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image_rgb[..., ::-1]):
        raise InputError(f"could not write {path}")


def _run_video(args: argparse.Namespace, spec, out_dir: Path) -> int:
    from ..inference.video import (BackgroundWriter, IntervalBoxes, PoseSmoother, PoseTracker,
                                   VideoReader, VideoWriter, estimate_video, prefetch)
    stem = Path(str(spec.video_source)).stem if spec.kind == "video" \
        else f"webcam{spec.video_source}"
    video_path = out_dir / f"{stem}_pose.mp4"
    json_path = Path(args.out) if args.out else out_dir / f"{stem}_frames.json"
    _check_outputs([json_path] + ([] if args.no_draw else [video_path]), args.overwrite)
    if getattr(args, "det_interval", 1) < 1:
        raise InputError(f"--det-interval must be at least 1, got {args.det_interval}")
    boxes = box_source(args)
    estimator = build_estimator(args)
    reader = VideoReader(spec.video_source)
    routed = hasattr(estimator, "routes")  # several keypoint sets: tracks matched by box IoU
    tracker = None if args.no_track else (
        PoseTracker(metric="iou") if routed else
        PoseTracker(metric="oks", sigmas=estimator.meta.sigmas))
    smoother = PoseSmoother(reader.fps) if args.smooth and tracker is not None else None
    writer = ResultsWriter(json_path)
    video = None if args.no_draw else VideoWriter(video_path, reader.fps)
    total = reader.frame_count if args.max_frames is None else \
        min(args.max_frames, reader.frame_count or args.max_frames)
    interval = IntervalBoxes(lambda frame: boxes.labeled(None, frame),
                             getattr(args, "det_interval", 1))

    def frames():
        for index, frame in enumerate(reader):
            if args.max_frames is not None and index >= args.max_frames:
                break
            yield frame

    drawing = None if video is None else BackgroundWriter()
    import cv2
    # decoding, drawing and encoding run in threads beside the model: OpenCV's own thread pool
    # would compete with the model's threads (5x slower end to end on 2 cores, measured)
    cv2.setNumThreads(1)
    kpt_thr = args.kpt_thr

    def draw_and_write(frame, result):
        video.write(estimator.draw(frame, result, kpt_thr))

    n = 0
    try:
        with tqdm(total=total, unit="frame", file=sys.stderr) as bar:
            for index, frame, result in estimate_video(prefetch(frames()), estimator, interval,
                                                       tracker, smoother):
                writer.add([{"frame": index, "instances": result.to_coco()}])
                if drawing is not None:
                    drawing.submit(draw_and_write, frame, result)
                n += 1
                bar.update(1)
    finally:
        try:
            if drawing is not None:
                drawing.close()
        finally:
            reader.close()
            writer.finish()
            if video is not None:
                video.close()
    extra = f" ({interval.detections} detector pass(es))" if args.det_interval > 1 else ""
    print(f"{n} frame(s){extra} -> {json_path}" + ("" if video is None else f", {video_path}"))
    return 0

"""The options of the predict job: one typed dataclass, filled by the command line
(`PredictOptions.from_namespace`), by the web demo or by Python (`vitpose.Predictor`), and what
they build: the estimator (`build_estimator`) and the box source (`build_box_source`)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..inference import builder
from ..inference.builder import BoxSource
from ..inference.io import check_max_pixels, max_pixels_from_env
from ..inference.pipeline import Estimator
from ..inference.tracking import check_det_interval

__all__ = ["PredictOptions", "box_source_options", "build_box_source", "build_estimator",
           "default_device", "default_threads_of_job", "expected_crops", "run_settings", "weights_identity"]


def default_device() -> str:
    """``cuda`` when a GPU is available, else ``cpu`` (the command line's default)."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class PredictOptions:
    """Everything a predict run takes, with the command line's defaults (`vitpose predict -h`
    says what each does; the field names are the option names with ``_``)."""

    input: str | None = None
    # model
    model: str | None = None
    weights: str | None = None
    dataset: str | None = None
    dataset_meta: str | None = None
    device: str = field(default_factory=default_device)
    dtype: str = "auto"
    compile: bool = False
    backend: str = "auto"
    threads: int | None = None  # None: `default_threads()` when the engine is built
    calib: str | None = None  # --dtype int8: a folder of images to calibrate on
    int8_variant: str | None = None
    # boxes
    detector: str = "auto"
    det_classes: str | None = None
    det_engine: str = "auto"
    wholebody: bool = False
    det_file: str | None = None
    images_file: str | None = None
    boxes_json: str | None = None
    box: list[str] = field(default_factory=list)
    det_thr: float | None = None
    fallback: str = "none"
    # test-time settings
    no_flip: bool = False
    decode: str | None = None
    oks_nms: float | None = None
    batch_size: int = 16
    # outputs
    out_dir: str = "vitpose_out"
    out: str | None = None
    no_draw: bool = False
    kpt_thr: float = 0.3
    overwrite: bool = False
    max_pixels: int | None = None
    draw_style: str = "skeleton"
    background: str = "black"
    #: extra output formats: ``(format, path, options)`` (`vitpose.formats.options.requested`)
    exports: list[tuple[str, Path, dict[str, Any]]] = field(default_factory=list)
    # video
    no_track: bool = False
    smooth: bool = False
    max_frames: int | None = None
    det_interval: int = 1
    # scale-out
    read_workers: int = 2

    @classmethod
    def from_namespace(cls, ns: Any) -> PredictOptions:
        """From an argparse namespace (or any object with these attributes; missing ones keep
        their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{n: getattr(ns, n) for n in names if hasattr(ns, n)})

    def replace(self, **changes: Any) -> PredictOptions:
        return dataclasses.replace(self, **changes)

    def validate(self) -> int:
        """Rejects impossible values with one message each (`InputError`); returns the pixel
        budget (``max_pixels``, else ``$VITPOSE_MAX_PIXELS``, else the default)."""
        if isinstance(self.box, str):  # Predictor(box="x,y,w,h"): one box
            self.box = [self.box]
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"--max-frames must be at least 1, got {self.max_frames}")
        self.det_interval = check_det_interval(self.det_interval)
        if self.oks_nms is not None and not 0.0 < self.oks_nms <= 1.0:
            raise InputError(f"--oks-nms takes an OKS threshold in (0, 1], got {self.oks_nms}")
        for name in ("det_thr", "kpt_thr"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InputError(f"--{name.replace('_', '-')} must be a number, got {value}")
        if not 0.0 <= self.kpt_thr <= 1.0:
            raise InputError(f"--kpt-thr is a keypoint score between 0 and 1, got {self.kpt_thr}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if self.draw_style not in ("skeleton", "openpose"):
            raise InputError(f"--draw-style is skeleton or openpose, got {self.draw_style!r}")
        if self.background not in ("black", "image"):
            raise InputError(f"--background is black or image, got {self.background!r}")
        if self.read_workers < 0:
            raise InputError(f"--read-workers must be 0 or more, got {self.read_workers}")
        if self.max_pixels is not None:
            return check_max_pixels(self.max_pixels, "--max-pixels")
        return max_pixels_from_env()


def build_estimator(opts: PredictOptions, *, crops: int | None = None,
                    images: Any = None, boxes: BoxSource | None = None) -> Estimator:
    """The estimator of the model options and test-time settings. `crops`: the crops the job
    will run (`expected_crops`; decides whether ``--backend auto`` calibrates); `images`: the
    job's images (``--dtype int8`` calibrates on their crops, unless ``--calib``), at the
    boxes of `boxes` where it knows them without a detector (fixed boxes, a file)."""
    threads = opts.threads if opts.threads else default_threads_of_job()
    known = None
    if opts.dtype == "int8" and images is not None and boxes is not None:
        if boxes.fixed is not None:
            known = [boxes.fixed] * len(images)
        elif boxes.mapping is not None:
            known = [builder.find_boxes(boxes.mapping, str(p)) for p in images]
    return builder.build_estimator(
        opts.model, weights=opts.weights, dataset=opts.dataset, dataset_meta=opts.dataset_meta,
        device=opts.device, dtype=opts.dtype, compile=opts.compile, flip_test=not opts.no_flip,
        decode=opts.decode, oks_nms=opts.oks_nms, batch_size=opts.batch_size,
        backend=opts.backend, wholebody=opts.wholebody, threads=threads, crops=crops,
        images=None if opts.calib else images, boxes=None if opts.calib else known,
        calib=opts.calib,
        int8_variant=opts.int8_variant)


def default_threads_of_job() -> int:
    """The default of ``--threads``: `default_threads()` (what the machine has free), unless
    ``OMP_NUM_THREADS`` is set (by the user, or by ``torchrun`` for each of its processes):
    then the threads torch was given."""
    import os

    import torch

    from ..inference.engines.threads import default_threads
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    return default_threads()


def expected_crops(opts: PredictOptions, inputs: int, boxes: BoxSource | None = None) -> int:
    """About how many crops a job of `inputs` images (or video frames) runs through the model:
    2 (the flip test's mirrors; 1 with ``no_flip``) x inputs x boxes per input (the fixed
    boxes' count, the detections file's mean per image, else 1)."""
    per = 1.0
    if boxes is not None and boxes.fixed is not None:
        per = float(max(1, len(boxes.fixed)))
    elif boxes is not None and boxes.mapping:
        per = max(1.0, sum(len(v) for v in boxes.mapping.values()) / len(boxes.mapping))
    return max(1, round((1 if opts.no_flip else 2) * max(0, inputs) * per))


def box_source_options(opts: PredictOptions) -> dict[str, Any]:
    """The `BoxSource` keyword arguments of the box options."""
    classes: Any = opts.det_classes
    strict = bool(classes)
    if classes:
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    elif (opts.dataset or "").lower() == "auto":
        classes = list(builder.AUTO_CLASSES)
    return dict(detector=opts.detector, det_file=opts.det_file, images_file=opts.images_file,
                boxes_json=opts.boxes_json, boxes=opts.box, det_thr=opts.det_thr,
                fallback=opts.fallback, device=opts.device, classes=classes,
                strict_classes=strict, engine=opts.det_engine)


def build_box_source(opts: PredictOptions) -> BoxSource:
    """The box source of the box options."""
    return BoxSource(**box_source_options(opts))


def run_settings(opts: PredictOptions, **extra: Any) -> dict[str, Any]:
    """What makes a rerun "the same command" for resuming: everything that changes results
    (the weights are identified by their content, see `weights_identity`)."""
    names = ("model", "weights", "dataset", "dataset_meta", "dtype", "detector", "det_file",
             "images_file", "boxes_json", "box", "det_thr", "fallback", "no_flip", "decode",
             "oks_nms", "det_classes", "wholebody")
    settings = {n: getattr(opts, n) for n in names}
    if opts.dtype == "int8":  # the int8 engine depends on its calibration and variant
        settings.update(calib=opts.calib, int8_variant=opts.int8_variant)
    settings["weights_content"] = {n: weights_identity(getattr(opts, n))
                                   for n in ("model", "weights") if getattr(opts, n)}
    settings.update(extra)
    return settings


def weights_identity(name: str | None) -> str | None:
    """A file's content digest (size and SHA-256), so that a rerun after the file at the same
    path changed is not taken for the same run; None for names that are not files (variant
    names, hub ids: their files are fixed by the hub)."""
    if not name:
        return None
    path = Path(name).expanduser()
    try:
        if not path.is_file():
            return None
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return f"{path.stat().st_size}:{digest.hexdigest()}"
    except OSError:
        return None

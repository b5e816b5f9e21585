"""Building what a test-time run needs from plain options: the estimator (model, weights,
dtype, test settings) and the source of boxes. `vitpose predict`, the web demo and any script
share these; the command line only parses its flags into them."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .detectors import build_detector, find_boxes, load_box_mapping, load_coco_detections
from .engines import AutoChoice, Engine, TorchEngine, build_engine, select_engine
from .engines.precision import optimize_for_inference, resolve_dtype
from .pipeline import PoseEstimator, TestSettings

__all__ = ["BoxSource", "build_estimator", "estimator_from_file", "read_image_ids"]

log = logging.getLogger("vitpose.inference")


def build_estimator(model: str = "vitpose-b-simple", *, weights: str | None = None,
                    dataset: str | None = None, dataset_meta: str | None = None,
                    device: str = "cpu", dtype: str = "auto", compile: bool = False,
                    flip_test: bool = True, decode: str | None = None,
                    oks_nms: float | None = None, batch_size: int = 16,
                    backend: str = "auto", threads: int | None = None) -> PoseEstimator:
    """A `PoseEstimator` for a variant name, checkpoint path or hub id (`vitpose.load_model`),
    run by the engine `backend` in `dtype` (``'auto'``: see `resolve_dtype`), with the dataset's
    official test-time settings unless `flip_test`, `decode` or `oks_nms` override them.

    `backend` is ``'auto'`` (the fastest engine of this machine that passes the accuracy gate,
    chosen by a calibration on first use and remembered; see `select_engine`; with `compile`
    the torch engine), ``'torch'``, ``'onnxruntime'`` or ``'openvino'``. The estimator's
    ``engine_choice`` says what ``auto`` chose and why (None for a named backend)."""
    from ..hub import load_model
    try:
        net = load_model(model, weights=weights, device=device, dataset=dataset)
    except ValueError as e:  # the model has no head for `dataset`: the user's choice
        if dataset is None or f"'{dataset}'" not in str(e):
            raise
        raise InputError(str(e)) from None
    compute_dtype = resolve_dtype(dtype, device)
    dataset = dataset if dataset is not None else net.datasets[0]
    engine, choice = _engine_for(net, dataset, dtype, compute_dtype, device, backend, compile,
                                 threads)
    overrides: dict[str, Any] = {"flip_test": flip_test}
    if decode:
        overrides["decode"] = decode
    if oks_nms is not None:
        overrides["nms_thr"] = oks_nms
    name = net.datasets[net.dataset_index_of(dataset)]
    settings = TestSettings.for_dataset(name, **overrides)
    meta = None
    if dataset_meta:
        from ..dataset_meta import load_dataset_meta
        try:
            meta = load_dataset_meta(dataset_meta)
        except ValueError as e:
            raise InputError(str(e)) from None
    est = PoseEstimator(net, dataset=dataset, settings=settings, meta=meta,
                        batch_size=batch_size, engine=engine)
    est.engine_choice = choice
    return est


def estimator_from_file(path: str | Path, backend: str = "onnxruntime", *,
                        dtype: str = "float32", settings: TestSettings | None = None,
                        meta: Any = None, batch_size: int = 32, device: str = "cpu",
                        threads: int | None = None) -> PoseEstimator:
    """A `PoseEstimator` running an exported file (``vitpose export --onnx``) with ONNX Runtime
    or OpenVINO: the same crops, flip test, decoding and rescoring as the PyTorch model.

    Args:
        path: the ``.onnx`` file.
        backend: ``'onnxruntime'`` or ``'openvino'``.
        dtype: ``'float32'``; OpenVINO also ``'bfloat16'``.
        settings: test-time settings; default the baked-in dataset's official regime.
        meta: keypoint metadata; default from the registry by dataset name.
        batch_size: crops per model call (a flip test doubles the rows of a call).
    """
    import torch

    from ..models.vitpose import ViTPose
    from .engines import OnnxRuntimeEngine, OpenVinoEngine
    if backend == "onnxruntime":
        if resolve_dtype(dtype, device) != torch.float32:
            raise InputError("the ONNX Runtime engine computes in float32: use dtype float32")
        engine: Engine = OnnxRuntimeEngine(path, device=device, threads=threads)
    elif backend == "openvino":
        engine = OpenVinoEngine(path, dtype, threads=threads)
    else:
        raise InputError(f"an exported file runs with onnxruntime or openvino, not '{backend}'")
    with torch.device("meta"):  # facts only (head width, input size); no weights allocated
        skeleton = ViTPose(engine.cfg)
    return PoseEstimator(skeleton, settings=settings, meta=meta, batch_size=batch_size,
                         engine=engine)


def _engine_for(net: Any, dataset: str, dtype: str, compute_dtype: Any, device: str,
                backend: str, compile: bool, threads: int | None
                ) -> tuple[Engine, AutoChoice | None]:
    if backend == "torch" or (backend == "auto" and compile):
        # weights cast once to the compute dtype (not on every call by autocast); optional compile
        optimize_for_inference(net, compute_dtype, compile=compile)
        return TorchEngine(net, dataset, compute_dtype), None
    choice = None
    if backend == "auto":
        engine, choice = select_engine(net, dataset, dtype, device, threads=threads)
    else:
        engine = build_engine(backend, net, dataset, compute_dtype, device, threads=threads)
    if getattr(engine, "model", None) is not net:
        net.to("meta")  # the engine holds its own weights: free ours (the facts stay)
    return engine, choice


class BoxSource:
    """Boxes for an image from one source: a detections file (COCO results format), a JSON
    mapping of file names to boxes, fixed boxes, or a detector (with an optional whole-image
    fallback when it finds nobody)."""

    def __init__(self, *, detector: str = "hog", det_file: str | None = None,
                 images_file: str | None = None, boxes_json: str | None = None,
                 boxes: Sequence[str] | np.ndarray | None = None, det_thr: float | None = None,
                 fallback: str = "none", device: str = "cpu") -> None:
        self.mapping = None
        self.fixed = None
        self.detector = None
        self.image_ids: dict[str, Any] = {}
        if images_file:
            self.image_ids = read_image_ids(images_file)
        if det_file:
            thr = 0.0 if det_thr is None else det_thr
            self.mapping = load_coco_detections(det_file, images_file, score_thr=thr)
        elif boxes_json:
            self.mapping = load_box_mapping(boxes_json)
            if det_thr is not None:
                self.mapping = {k: v[v[:, 4] >= det_thr] for k, v in self.mapping.items()}
        elif boxes is not None and len(boxes):
            self.fixed = _fixed_boxes(boxes)
        else:
            self.detector = build_detector(detector, device=device)
            self.detector_name = detector
            self.det_thr = det_thr
            self.fallback = fallback

    def __call__(self, path: str | None, image: np.ndarray) -> np.ndarray | None:
        if self.fixed is not None:
            return self.fixed
        if self.mapping is not None:
            boxes = find_boxes(self.mapping, path) if path else None
            if boxes is None:
                log.warning("no detections for %s in the detections file", path)
                return np.zeros((0, 5), np.float32)
            return boxes
        boxes = self.detector(image)
        if self.det_thr is not None:
            boxes = boxes[boxes[:, 4] >= self.det_thr]
        if len(boxes) == 0 and self.fallback == "whole-image":
            log.warning("the %s detector found nobody in %s: using the whole image",
                        self.detector_name, path or "the frame")
            h, w = image.shape[:2]
            boxes = np.array([[0, 0, w, h, 1.0]], np.float32)
        return boxes

    def image_id(self, path: Path, default: str | None = None) -> Any:
        """The results' ``image_id``: from the images file (by the relative path `default`,
        then the file name); else, for a COCO detections file keyed by integer ids, the id in
        the file name (``000000000785.jpg`` -> 785), as COCO tools need; else `default` (the
        caller's unique name, e.g. the path relative to the input folder) or the file name."""
        for name in (default, path.name):
            if name is not None and name in self.image_ids:
                return self.image_ids[name]
        if self.mapping and all(isinstance(k, int) for k in self.mapping):
            digits = re.fullmatch(r"\D*0*(\d+)", path.stem)
            if digits is not None and int(digits.group(1)) in self.mapping:
                return int(digits.group(1))
        return path.name if default is None else default


def _fixed_boxes(boxes: Sequence[str] | np.ndarray) -> np.ndarray:
    """``["X,Y,W,H", ...]`` (or an array) -> float32 ``[N, 4]``."""
    try:
        fixed = np.array([[float(v) for v in b.split(",")] if isinstance(b, str) else list(b)
                          for b in boxes], np.float32)
    except ValueError:
        raise InputError(f"boxes take X,Y,W,H numbers, got {list(boxes)}") from None
    if fixed.ndim != 2 or fixed.shape[1] != 4:
        raise InputError(f"boxes take four numbers X,Y,W,H, got {list(boxes)}")
    return fixed


def read_image_ids(images_file: str) -> dict[str, int]:
    """``file_name`` (as written, and its last part when that is unambiguous) -> integer
    ``image_id`` from a COCO annotation/images file."""
    try:
        data = json.loads(Path(images_file).read_text())
        pairs = [(Path(im["file_name"]), im["id"]) for im in data["images"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{images_file} is not a COCO file with an 'images' list ({e})") from None
    ids: dict[str, int] = {}
    names: dict[str, list[int]] = {}
    for file_name, image_id in pairs:
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise InputError(f"{images_file}: image {file_name.as_posix()!r} has id "
                             f"{image_id!r}; COCO image ids are integers")
        ids[file_name.as_posix()] = image_id
        names.setdefault(file_name.name, []).append(image_id)
    for name, found in names.items():
        if len(found) == 1:
            ids.setdefault(name, found[0])
    return ids

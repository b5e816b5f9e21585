"""Building what a test-time run needs from plain options: the estimator (model, weights,
dtype, test settings) and the source of boxes. `vitpose predict`, the web demo and any script
share these; the command line only parses its flags into them."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .detectors import (
    ANIMAL_CLASSES,
    HOGPersonDetector,
    build_detector,
    find_boxes,
    load_box_mapping,
    load_coco_detections,
    load_image_ids,
)
from .engines import (
    AutoChoice,
    CalibratingEngine,
    Engine,
    TorchEngine,
    build_engine,
    calibration_rows,
    select_engine,
)
from .engines.precision import INT8, optimize_for_inference, resolve_dtype
from .pipeline import PoseEstimator, RoutedPoseEstimator, TestSettings

if TYPE_CHECKING:
    import torch

__all__ = ["AUTO_CLASSES", "EXPORTED_SUFFIXES", "BoxSource", "build_estimator", "engine_for",
           "estimator_from_file", "read_image_ids", "routes_for"]

#: Detector classes asked for with ``dataset="auto"``: people and the animals of `routes_for`.
AUTO_CLASSES: tuple[str, ...] = ("person", *ANIMAL_CLASSES)
_HUMAN_SETS = ("coco", "aic", "mpii", "crowdpose", "ochuman")
_ANIMAL_SETS = ("ap10k", "apt36k")


def routes_for(datasets: Sequence[str], wholebody: bool = False) -> dict[str, str]:
    """Detector class -> keypoint set for a model with these heads: persons to COCO (or
    COCO-WholeBody with ``wholebody``, or the first human set it has), the `ANIMAL_CLASSES` to
    AP-10K (or APT-36K). Raises `InputError` when ``wholebody`` is asked of a model without
    that head."""
    have = list(datasets)
    if wholebody:
        if "wholebody" not in have:
            raise InputError(f"this model has no whole-body head (its keypoint sets: "
                             f"{', '.join(have)})")
        person = "wholebody"
    else:
        person = next((d for d in _HUMAN_SETS if d in have), have[0])
    routes = {"person": person}
    animal = next((d for d in _ANIMAL_SETS if d in have), None)
    if animal is not None:
        routes.update({c: animal for c in ANIMAL_CLASSES})
    return routes


log = logging.getLogger("vitpose.inference")


def build_estimator(model: str | None = None, *, weights: str | None = None,
                    dataset: str | None = None, dataset_meta: str | None = None,
                    device: str = "cpu", dtype: str = "auto", compile: bool = False,
                    flip_test: bool = True, decode: str | None = None,
                    oks_nms: float | None = None, batch_size: int = 16,
                    backend: str = "auto", threads: int | None = None,
                    wholebody: bool = False, crops: int | None = None,
                    images: Sequence[Any] | None = None,
                    boxes: Sequence[np.ndarray | None] | None = None,
                    calib: str | None = None, int8_variant: str | None = None
                    ) -> PoseEstimator | RoutedPoseEstimator:
    """A `PoseEstimator` for a variant name, checkpoint path or hub id (`vitpose.load_model`;
    None: the default variant, or with `weights` the file's own architecture), run by the
    engine `backend` in `dtype` (``'auto'``: see `resolve_dtype`), with the dataset's official
    test-time settings unless `flip_test`, `decode` or `oks_nms` override them.

    `backend` is ``'auto'`` (the fastest engine of this machine that passes the accuracy gate,
    chosen by a calibration on first use and remembered; see `select_engine`; with `compile`
    the torch engine), ``'torch'``, ``'onnxruntime'`` or ``'openvino'``. The estimator's
    ``engine_choice`` says what ``auto`` chose and why (None for a named backend).

    ``dataset="auto"``: with a multi-dataset (ViTPose+) model, a `RoutedPoseEstimator` whose
    detector classes pick the head and expert per box (`routes_for`; ``wholebody`` sends
    persons to COCO-WholeBody); it runs on PyTorch (one backbone call with per-sample
    experts), whatever `backend`. With a one-dataset model, that dataset.

    `threads`: the engines' threads and ``torch.set_num_threads`` (default: left as they are).
    `crops`: the crops the job will run (flip mirrors included; None: unknown), which decides
    whether ``auto`` calibrates (`select_engine`). ``dtype="int8"``: the opt-in int8 engine
    (`int8_engine`), calibrated on crops of `images` (with their `boxes` where known) or of
    the images in `calib`, variant `int8_variant`; its certificate is logged once."""
    from ..hub import load_model
    if threads:
        import torch
        torch.set_num_threads(max(1, int(threads)))
    int8 = str(dtype).lower() == INT8
    exported = _exported_file(model, weights)
    if exported is not None:  # an exported graph (`vitpose export`): its own runtime
        return _exported_estimator(exported, dataset=dataset, dataset_meta=dataset_meta,
                                   device=device, dtype=dtype, flip_test=flip_test,
                                   decode=decode, oks_nms=oks_nms, batch_size=batch_size,
                                   backend=backend, threads=threads)
    auto = dataset is not None and dataset.lower() == "auto"
    if not auto and wholebody:
        raise InputError("whole-body keypoints for persons go with --dataset auto "
                         "(or --dataset wholebody)")
    try:
        net = load_model(model, weights=weights, device=device,
                         dataset=None if auto else dataset)
    except ValueError as e:  # the model has no head for `dataset`: the user's choice
        if dataset is None or auto or f"'{dataset}'" not in str(e):
            raise
        raise InputError(str(e)) from None
    if int8 and (auto or compile or backend not in ("auto", "openvino")):
        raise InputError("--dtype int8 runs the OpenVINO int8 engine: it goes with --backend "
                         "auto or openvino, without --compile or --dataset auto")
    compute_dtype = resolve_dtype("float32" if int8 else dtype, device)
    overrides: dict[str, Any] = {"flip_test": flip_test}
    if decode:
        overrides["decode"] = decode
    if oks_nms is not None:
        overrides["nms_thr"] = oks_nms
    if auto:
        heads = [h.dataset for h in net.cfg.heads]
        routes = routes_for(heads, wholebody)
        if len(set(routes.values())) > 1 or wholebody:
            if backend not in ("auto", "torch"):
                log.warning("keypoint sets chosen per box (dataset auto) run on PyTorch, not %s",
                            backend)
            # weights cast once to the compute dtype (not on every call by autocast)
            optimize_for_inference(net, compute_dtype, compile=compile)
            return RoutedPoseEstimator(net, routes, settings_overrides=overrides,
                                       device=device, batch_size=batch_size, dtype=compute_dtype)
        dataset = routes["person"]
    dataset = dataset if dataset is not None else net.datasets[0]
    engine, choice = engine_for(net, dataset, backend, dtype, device, compile=compile,
                                threads=threads, rows=calibration_rows(batch_size, flip_test),
                                crops=crops, images=images, boxes=boxes, calib=calib,
                                int8_variant=int8_variant)
    if getattr(engine, "model", None) is not net:
        net.to("meta")  # the engine holds its own weights: free ours (the facts stay)
    elif isinstance(engine, CalibratingEngine):  # freed if the calibration picks another
        engine.free_safe = lambda: net.to("meta")
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


#: Files of exported graphs (`vitpose export`), run by `estimator_from_file`.
EXPORTED_SUFFIXES = (".onnx", ".xml")


def _exported_file(model: str | None, weights: str | None) -> Path | None:
    """The exported graph named by ``model`` or ``weights`` (an existing ``.onnx`` or OpenVINO
    ``.xml`` file), else None."""
    for name in (weights, model):
        if name and Path(name).suffix.lower() in EXPORTED_SUFFIXES and Path(name).is_file():
            if model and weights and name == weights and model != weights:
                raise InputError(f"{weights} is an exported graph, which holds its own "
                                 f"architecture: pass it alone (--model {weights}), without "
                                 f"--model {model}")
            return Path(name)
    return None


def _exported_estimator(path: Path, *, dataset: str | None, dataset_meta: str | None,
                        device: str, dtype: str, flip_test: bool, decode: str | None,
                        oks_nms: float | None, batch_size: int, backend: str,
                        threads: int | None) -> PoseEstimator:
    """`estimator_from_file` with the options of `build_estimator`: ONNX Runtime for ``.onnx``
    (OpenVINO when asked), OpenVINO for ``.xml``; the dataset is the one baked in."""
    if backend == "torch":
        raise InputError(f"{path} is an exported graph: it runs with --backend onnxruntime or "
                         "openvino (or auto), not torch")
    runtime = "openvino" if path.suffix.lower() == ".xml" or backend == "openvino" \
        else "onnxruntime"
    meta = None
    if dataset_meta:
        from ..dataset_meta import load_dataset_meta
        try:
            meta = load_dataset_meta(dataset_meta)
        except ValueError as e:
            raise InputError(str(e)) from None
    run_dtype = "float32" if dtype == "auto" or runtime == "onnxruntime" else dtype
    est = estimator_from_file(path, runtime, dtype=run_dtype, meta=meta, batch_size=batch_size,
                              device=device, threads=threads)
    if dataset not in (None, "auto") and dataset != est.dataset:
        raise InputError(f"{path} was exported for {est.dataset}, not {dataset}: the dataset "
                         "of an exported graph is baked in")
    changes: dict[str, Any] = {"flip_test": flip_test}
    if decode:
        changes["decode"] = decode
    if oks_nms is not None:
        changes["nms_thr"] = oks_nms
    return est.with_settings(**changes)


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


def engine_for(net: Any, dataset: int | str, backend: str = "auto", dtype: str = "auto",
               device: str | torch.device = "cpu", *, prepare: bool = True, compile: bool = False,
               threads: int | None = None, rows: tuple[int, ...] | None = None,
               crops: int | None = None, calibrate: bool | None = None,
               images: Sequence[Any] | None = None,
               boxes: Sequence[np.ndarray | None] | None = None, calib: str | None = None,
               int8_variant: str | None = None) -> tuple[Engine, AutoChoice | None]:
    """The engine `backend` running the float32 `net` for `dataset` in `dtype` on `device`: the
    one place `predict`, the demo and `vitpose test` build their engine.

    Args:
        net: a `ViTPose` with its weights, on `device`.
        dataset: dataset name or index (head and ViTPose+ expert).
        backend: ``'auto'`` (`select_engine`; with `compile` the torch engine), ``'torch'``,
            ``'onnxruntime'`` or ``'openvino'``.
        dtype: the dtype policy (``'auto'``: see `resolve_dtype`).
        prepare: torch: prepare `net` in place (`optimize_for_inference`: weights cast once to
            the compute dtype, optional compile); False runs it as it is under autocast (the
            same outputs; for a model that keeps training). The other engines never change it.
        threads: threads of every engine (default: theirs; see `default_threads`).
        rows: the call sizes ``auto`` times (`calibration_rows`).
        crops: the crops the job will run, flip mirrors included (None: unknown): ``auto``
            calibrates only when they repay it (`plan_engine`).
        calibrate: ``auto``: True always calibrates (unless remembered), False never, None:
            the rule decides.
        images, boxes, calib, int8_variant: ``dtype="int8"`` (opt-in, never chosen by
            ``auto``): `int8_engine` calibrated on crops of `images` (with `boxes`) or of the
            images in the folder `calib`, in the variant `int8_variant` (default its own).

    Returns:
        the engine and, for ``auto``, what it chose and why (else None).
    """
    if str(dtype).lower() == INT8:  # before resolve_dtype, which has no int8
        return _int8_engine_for(net, dataset, backend, device, threads=threads, images=images,
                                boxes=boxes, calib=calib, variant=int8_variant), None
    compute_dtype = resolve_dtype(dtype, device)
    if backend == "torch" or (backend == "auto" and compile):
        if prepare or compile:
            optimize_for_inference(net, compute_dtype, compile=compile)
        return TorchEngine(net, dataset, compute_dtype, threads=threads), None
    if backend == "auto":
        return select_engine(net, dataset, dtype, device, threads=threads, rows=rows,
                             crops=crops, calibrate=calibrate)
    return build_engine(backend, net, dataset, compute_dtype, device, threads=threads), None


def _int8_engine_for(net: Any, dataset: int | str, backend: str, device: Any, *,
                     threads: int | None, images: Sequence[Any] | None,
                     boxes: Sequence[np.ndarray | None] | None, calib: str | None,
                     variant: str | None) -> Engine:
    """`engine_for` with ``dtype="int8"``: the certified int8 engine (its certificate is
    logged once, by `int8_engine`)."""
    from .engines import int8_engine
    from .engines.int8 import DEFAULT_VARIANT
    if backend not in ("auto", "openvino"):
        raise InputError(f"--dtype int8 runs on the OpenVINO int8 engine, not --backend "
                         f"{backend}")
    if str(device) != "cpu":
        raise InputError(f"--dtype int8 runs on the CPU, not {device}")
    if calib is not None and not Path(calib).is_dir():
        raise InputError(f"--calib {calib}: not a folder of images")
    return int8_engine(net, dataset, images=images, boxes=boxes, calib=calib,
                       variant=variant or DEFAULT_VARIANT, threads=threads)


class BoxSource:
    """Boxes for an image from one source: a detections file (COCO results format), a JSON
    mapping of file names to boxes, fixed boxes, or a detector (with an optional whole-image
    fallback when it finds nobody). ``classes``: the detector classes to keep (default
    persons; `labeled` says the class of each box)."""

    def __init__(self, *, detector: str = "hog", det_file: str | None = None,
                 images_file: str | None = None, boxes_json: str | None = None,
                 boxes: Sequence[str] | np.ndarray | None = None, det_thr: float | None = None,
                 fallback: str = "none", device: str = "cpu",
                 classes: Sequence[str] | None = None, strict_classes: bool = False,
                 engine: str = "auto") -> None:
        self.mapping = None
        self.fixed = None
        self.detector = None
        self.searched = 0  # images the detector ran on
        self.found_nobody = 0  # of them, those where it found nobody
        self.last_found_nobody = False
        self.missing: list[str] = []  # images without an entry in the detections file
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
            kw: dict[str, Any] = {}
            others = sorted({c.lower() for c in classes or ()} - {"person"})
            if strict_classes and others and str(detector).lower() == "hog":
                raise InputError(f"the HOG detector finds people only, not {', '.join(others)}; "
                                 "use a learned detector (auto, dfine-s, rtdetr)")
            if str(detector).lower() not in ("hog", "none", "whole-image", "whole"):
                kw["engine"] = engine
                if classes:
                    # classes asked for by name must exist; those of dataset="auto" are optional
                    # (a person-only detector still gives the persons)
                    kw.update(labels=tuple(classes), strict_labels=strict_classes)
            self.detector = build_detector(detector, device=device, **kw)
            self.detector_name = detector
            self.det_thr = det_thr
            self.fallback = fallback

    def __call__(self, path: str | None, image: np.ndarray) -> np.ndarray | None:
        return self.labeled(path, image)[0]

    def labeled(self, path: str | None, image: np.ndarray
                ) -> tuple[np.ndarray | None, list[str] | None]:
        """The boxes and, from a learned detector, the class name of each (else None)."""
        if self.fixed is not None:
            return self.fixed, None
        if self.mapping is not None:
            boxes = find_boxes(self.mapping, path) if path else None
            if boxes is None:
                log.debug("no detections for %s in the detections file", path)
                if len(self.missing) < 1000:
                    self.missing.append(str(path))
                return np.zeros((0, 5), np.float32), None
            return boxes, None
        labels: list[str] | None = None
        if hasattr(self.detector, "detect_labeled"):
            boxes, labels = self.detector.detect_labeled(image)
        else:
            boxes = self.detector(image)
        if self.det_thr is not None:
            keep = boxes[:, 4] >= self.det_thr
            boxes = boxes[keep]
            labels = None if labels is None else [c for c, k in zip(labels, keep) if k]
        self.searched += 1
        self.found_nobody += len(boxes) == 0
        self.last_found_nobody = len(boxes) == 0
        if len(boxes) == 0 and self.fallback == "whole-image":
            log.debug("the %s detector found nobody in %s: using the whole image",
                      self.detector_name, path or "the frame")
            h, w = image.shape[:2]
            boxes, labels = np.array([[0, 0, w, h, 1.0]], np.float32), None
        return boxes, labels

    def covers(self, path: str) -> bool:
        """Whether the detections file (if any) has an entry for this image."""
        return self.mapping is None or find_boxes(self.mapping, path) is not None

    @property
    def detector_label(self) -> str:
        """The detector's name as users know it (``HOG`` also when ``auto`` fell back to it)."""
        if isinstance(self.detector, HOGPersonDetector):
            return "HOG"
        return str(getattr(self, "detector_name", "detector"))

    def nobody_note(self, unit: str = "image(s)") -> str | None:
        """One line on the inputs where the detector found nobody, with what helps (None when
        it found someone everywhere)."""
        if not self.found_nobody:
            return None
        head = (f"the {self.detector_label} detector found nobody in {self.found_nobody} of "
                f"{self.searched} {unit}")
        if self.fallback == "whole-image":
            return head + "; the whole image was used there"
        return (head + " (no poses there); for photos of one person, --fallback whole-image "
                "uses the whole image where the detector finds nobody")

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
    ``image_id`` from a COCO annotation/images file: `detection_files.load_image_ids`, which
    refuses malformed JSON, non-integer ids and an id given to two files (`InputError`)."""
    return load_image_ids(images_file)

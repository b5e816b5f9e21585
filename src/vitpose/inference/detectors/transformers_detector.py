"""The learned detector: a DETR-family model (D-FINE, RT-DETR, ...) loaded with
``transformers`` from a hub id (through `vitpose.hub.fetch`) or a local folder, run on the
engine `runners` picks, its outputs decoded into boxes of the wanted classes."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DownloadError, InputError
from ..boxes import empty_boxes, nms_boxes, sanitize_boxes
from . import detr
from .base import DETECTOR_NAMES, OFFLINE_HINT, check_image
from .detr import (
    AUTO_DETECTOR,
    DEFAULT_TRANSFORMERS_DETECTOR,
    DETECTOR_MODELS,
    DETR_640_PREPROCESS,
    DetrPreprocess,
    decode_detr_detections,
    detector_graph,
)
from .runners import (
    OpenVinoRunner,
    OrtRunner,
    TorchRunner,
    calibrated_runner,
    check_detector_engine,
    detector_engine_order,
    detector_export_path,
    first_runner,
)

__all__ = ["TransformersDetector", "TransformersPersonDetector", "random_detector"]


def _detector_source_error(model_id: str, exc: BaseException) -> InputError:
    """The one message for a folder, file or downloaded repository that is not a detector
    (downloads fail earlier, with `vitpose.hub.fetch`'s message)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    local = Path(model_id)
    where = "folder" if local.is_dir() else ("file" if local.exists() else "model")
    return InputError(
        f"the detector {where} {model_id!r} is not a transformers object-detection model "
        f"({reason}); give a detector name ({', '.join(sorted(DETECTOR_NAMES))}), a Hugging "
        "Face hub id or a folder with config.json, the weights and preprocessor_config.json"
    )


def _is_hub_id(name: str) -> bool:
    """``owner/name`` with the hub's characters (not a path such as ``./x`` or ``/a/b``)."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None


#: What a detector takes from its hub repository: configs (model, image processor) and weights.
_DETECTOR_FILES = ("*.json", "*.safetensors")


def _fetch_detector(model_id: str, revision: str | None,
                    cache_dir: str | os.PathLike[str] | None) -> Path:
    """The local snapshot of a hub detector, through the one hub door (`vitpose.hub.fetch`:
    the cache first, one quick reachability check, the offline rules and messages)."""
    from vitpose.hub import fetch

    folder = fetch(model_id, what=f"the detector {model_id!r}", allow_patterns=_DETECTOR_FILES,
                   revision=revision, cache_dir=cache_dir, advice=OFFLINE_HINT)
    if not any(folder.glob("*.safetensors")):  # an older repository: PyTorch .bin weights
        folder = fetch(model_id, what=f"the detector {model_id!r}",
                       allow_patterns=(*_DETECTOR_FILES, "*.bin"), revision=revision,
                       cache_dir=cache_dir, advice=OFFLINE_HINT)
    return folder


def _load_transformers_detector(model_id: str, revision: str | None,
                                cache_dir: str | os.PathLike[str] | None
                                ) -> tuple[Any, dict[str, Any]]:
    """The ``transformers`` model and image-processor settings of a local folder or hub id
    (downloaded through `_fetch_detector`)."""
    try:
        from transformers import AutoModelForObjectDetection
        from transformers.image_processing_base import ImageProcessingMixin
    except ImportError as exc:
        raise DownloadError(
            "the learned person detector needs the 'transformers' package "
            f"(pip install transformers): {exc}. {OFFLINE_HINT}"
        ) from exc
    local = Path(os.path.expanduser(model_id))
    if local.is_file():
        raise _detector_source_error(model_id, InputError("a file, not a model folder"))
    if not local.is_dir() and not _is_hub_id(model_id):
        raise InputError(f"the detector folder {model_id!r} does not exist (a hub detector is "
                         "named owner/name)")
    folder = local if local.is_dir() else _fetch_detector(model_id, revision, cache_dir)
    try:
        model = AutoModelForObjectDetection.from_pretrained(folder)
        proc_cfg, _ = ImageProcessingMixin.get_image_processor_dict(os.fspath(folder))
    except ImportError as exc:  # e.g. a model whose backbone needs timm
        raise DownloadError(
            f"the detector {model_id!r} needs a package that is not installed: {exc}. "
            f"{OFFLINE_HINT}"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _detector_source_error(model_id, exc) from exc
    if not local.is_dir():  # a hub snapshot folder is named by its commit: the export's key
        model.config._commit_hash = folder.name
    return model, proc_cfg


class TransformersDetector:
    """A DETR-family object detector (D-FINE, RT-DETR, ...) loaded with ``transformers``.

    Loads the model with ``transformers.AutoModelForObjectDetection`` and reads the image
    processor settings (``preprocessor_config.json``) from the same repository; resizing and
    normalisation are done with OpenCV so that Pillow/torchvision are not needed. The wanted
    classes are looked up by name in ``config.id2label``. Weights are downloaded on first use
    and cached by ``huggingface_hub``.

    The network is run as a plain function of a fixed-size tensor (`detector_graph`): when the
    input size is fixed and the device is the CPU, through OpenVINO or ONNX Runtime, whichever
    a short calibration found faster here (`AUTO_DETECTOR_ENGINES`, `choose_detector_engine`;
    exported once and cached under ``<cache folder>/detectors`` with the choice; 3-5x faster
    than eager PyTorch on CPUs), else through PyTorch.

    Args:
        model_id: a name of `DETECTOR_MODELS`, a hub id or a local folder of a ``transformers``
            object-detection model.
        threshold: minimum detection score.
        device: torch device string (``"cuda"``, ``"cpu"``, ...); None picks CUDA when available.
        labels: class names to keep (case-insensitive), e.g. ``("person",)``.
        strict_labels: every name in ``labels`` must be a class of the model (else only one
            of them must be).
        revision: hub revision (branch, tag or commit).
        cache_dir: hub cache folder (default: the ``huggingface_hub`` cache).
        nms_iou: optional NMS IoU for duplicate removal (DETR models are usually NMS-free).
        max_detections: keep at most this many boxes per image.
        engine: ``"auto"``, ``"openvino"``, ``"onnxruntime"`` or ``"torch"``.
        onnx_dir: where ONNX exports are cached (default ``$VITPOSE_CACHE/detectors``).

    Raises:
        DownloadError: ``transformers`` is not installed, or the model cannot be fetched (offline,
            unknown id); the message suggests the offline alternatives.
        InputError: the folder is not an object detector; the model lacks a requested class; an
            unknown engine.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_TRANSFORMERS_DETECTOR,
        threshold: float = 0.5,
        device: str | None = None,
        labels: Sequence[str] = ("person",),
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        nms_iou: float | None = None,
        max_detections: int = 100,
        engine: str = "auto",
        strict_labels: bool = True,
        onnx_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        model_id = DETECTOR_MODELS.get(model_id, model_id)
        check_detector_engine(engine)
        model, proc_cfg = _load_transformers_detector(model_id, revision, cache_dir)
        self._setup(model, proc_cfg, model_id=model_id, threshold=threshold, device=device,
                    labels=labels, strict_labels=strict_labels, nms_iou=nms_iou,
                    max_detections=max_detections, engine=engine, onnx_dir=onnx_dir,
                    cacheable=True)

    @classmethod
    def from_model(cls, model: Any, preprocessor_config: Mapping[str, Any], *,
                   name: str = "custom detector", threshold: float = 0.5,
                   device: str | None = None, labels: Sequence[str] = ("person",),
                   strict_labels: bool = True, nms_iou: float | None = None,
                   max_detections: int = 100, engine: str = "auto") -> TransformersDetector:
        """A detector around an already built ``transformers`` detection model (e.g. one with
        random weights from its config, for tests and speed measurements)."""
        check_detector_engine(engine)
        self = cls.__new__(cls)
        self._setup(model, dict(preprocessor_config), model_id=name, threshold=threshold,
                    device=device, labels=labels, strict_labels=strict_labels, nms_iou=nms_iou,
                    max_detections=max_detections, engine=engine, onnx_dir=None, cacheable=False)
        return self

    def _setup(self, model: Any, proc_cfg: Mapping[str, Any], *, model_id: str,
               threshold: float, device: str | None, labels: Sequence[str],
               strict_labels: bool, nms_iou: float | None, max_detections: int, engine: str,
               onnx_dir: str | os.PathLike[str] | None, cacheable: bool) -> None:
        import torch

        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        by_name = {name.lower(): i for i, name in id2label.items()}
        wanted = [name.lower() for name in labels]
        missing = [name for name in wanted if name not in by_name]
        found = [name for name in wanted if name in by_name]
        if (strict_labels and missing) or not found:
            some = ", ".join(sorted(set(id2label.values()))[:90])
            raise InputError(
                f"the detector {model_id!r} has no class named {', '.join(map(repr, missing))}; "
                f"its classes are: {some}"
            )
        self.label_ids = sorted(by_name[name] for name in found)
        self.class_names = {i: id2label[i] for i in self.label_ids}
        self.model_id = model_id
        self.threshold = float(threshold)
        self.nms_iou = nms_iou
        self.max_detections = int(max_detections)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval()
        self.preprocess = DetrPreprocess(proc_cfg)
        focal = getattr(model.config, "use_focal_loss", None)
        self._focal: bool | None = bool(focal) if focal is not None else None
        self._num_labels = len(id2label)
        graph = detector_graph(self.model)
        self.runner: TorchRunner | OrtRunner | OpenVinoRunner
        choices = detector_engine_order(engine, self.preprocess.fixed_size, self.device)
        if choices and not self.preprocess.fixed_size:
            raise InputError(f"the detector {model_id!r} resizes images to varying sizes; "
                             f"the {engine} engine needs a fixed input size (use torch)")
        hw = self.preprocess.output_hw(1, 1)
        path = (detector_export_path(model_id, model, hw, onnx_dir) if choices and cacheable
                else None)
        if engine == "auto" and len(choices) > 1:
            self.runner = calibrated_runner(graph, hw, path, choices, model_id)
        else:
            self.runner = first_runner(graph, hw, path, choices, model_id, strict=engine != "auto")
        if self.runner is None:
            self.runner = TorchRunner(graph, self.device)
        self.engine = self.runner.name

    def _uses_sigmoid(self, num_logits: int) -> bool:
        if self._focal is not None:
            return self._focal
        return num_logits != self._num_labels + 1  # softmax models add a "no object" column

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Detects the wanted classes in one image.

        Args:
            image_rgb: ``(H, W, 3)`` uint8 RGB image.

        Returns:
            ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first.
        """
        return self.detect_labeled_batch([image_rgb])[0][0]

    def detect_labeled(self, image_rgb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Boxes and the class name of each box (see `detect_labeled_batch`)."""
        return self.detect_labeled_batch([image_rgb])[0]

    def detect_batch(self, images_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detects in several images; one ``(N_i, 5)`` float32 array per image."""
        return [boxes for boxes, _ in self.detect_labeled_batch(images_rgb)]

    def detect_labeled_batch(self, images_rgb: Sequence[np.ndarray]
                             ) -> list[tuple[np.ndarray, list[str]]]:
        """Detects in several images (one forward pass when the model input is fixed-size).

        Args:
            images_rgb: ``(H, W, 3)`` uint8 RGB images, sizes may differ.

        Returns:
            Per image: ``(N, 5)`` float32 ``x, y, w, h, score`` in its pixels, best first, and
            the ``N`` class names (``config.id2label``) of the boxes.
        """
        images = [check_image(im) for im in images_rgb]
        if not images:
            return []
        if self.preprocess.fixed_size:
            groups = [list(range(len(images)))]
        else:
            groups = [[i] for i in range(len(images))]
        results: list[tuple[np.ndarray, list[str]]] = [(empty_boxes(), [])] * len(images)
        for group in groups:
            batch = np.stack([self.preprocess(images[i]) for i in group])
            logits, pred_boxes = self.runner(batch)
            sigmoid = self._uses_sigmoid(logits.shape[-1])
            for j, i in enumerate(group):
                hw = images[i].shape[:2]
                boxes, ids = decode_detr_detections(
                    logits[j], pred_boxes[j], hw, self.label_ids, self.threshold, sigmoid
                )
                if self.nms_iou is not None and boxes.shape[0] > 1:
                    keep = nms_boxes(boxes, self.nms_iou)
                    boxes, ids = boxes[keep], ids[keep]
                boxes, ids = boxes[: self.max_detections], ids[: self.max_detections]
                boxes, kept = _sanitize_keep(boxes, hw)
                results[i] = (boxes, [self.class_names[int(c)] for c in ids[kept]])
        return results


#: The former name (person boxes only by default).
TransformersPersonDetector = TransformersDetector


def _sanitize_keep(boxes: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`sanitize_boxes` that also says which input rows were kept (to keep labels aligned)."""
    marked = np.concatenate([boxes[:, :4], np.arange(len(boxes), dtype=np.float64)[:, None]
                             + 1.0], axis=1) if len(boxes) else boxes
    out, _ = sanitize_boxes(marked, hw)
    if not len(out):
        return empty_boxes(), np.zeros((0,), np.int64)
    rows = np.rint(out[:, 4] - 1.0).astype(np.int64)
    out[:, 4] = boxes[rows, 4]
    return out, rows


def random_detector(name: str = AUTO_DETECTOR, **kwargs: Any) -> TransformersDetector:
    """A `TransformersDetector` with the architecture of a `DETECTOR_MODELS` entry and random
    weights (seeded), for tests and speed measurements without the hub."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = detr.detector_config(name)
    cls = (transformers.DFineForObjectDetection if name.startswith("dfine")
           else transformers.RTDetrForObjectDetection)
    model = cls(config).eval()
    return TransformersDetector.from_model(model, DETR_640_PREPROCESS, name=f"{name} (random)",
                                           **kwargs)

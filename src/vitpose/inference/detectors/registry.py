"""Detectors by their command-line name (`build_detector`): ``auto`` (D-FINE-N, HOG when it
cannot be had), the learned detectors, a hub id or folder, ``hog``, ``none``."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

from ...errors import DownloadError, InputError
from .base import DETECTOR_NAMES, OFFLINE_HINT, Detector, WholeImageDetector
from .detr import AUTO_DETECTOR, DETECTOR_MODELS
from .hog import HOGPersonDetector
from .transformers_detector import TransformersDetector

__all__ = ["build_detector"]

logger = logging.getLogger(__name__)

_AUTO_WARNED = False


def _is_model_source(name: str) -> bool:
    """A hub id (``owner/name``) or a local path rather than a detector name."""
    return "/" in name or os.sep in name or Path(name).exists()


def build_detector(name: str, device: str | None = None, **kwargs: Any) -> Detector:
    """Builds a detector from its command-line name.

    Args:
        name: ``"auto"`` (D-FINE-N, `AUTO_DETECTOR`; offline: says so once and falls back to
            HOG), ``"dfine-n"``, ``"dfine-s"``, ``"rtdetr"`` (see `DETECTOR_MODELS`),
            ``"transformers"`` / ``"detr"`` (pass ``model_id=``), a hub id or a local folder of
            a ``transformers`` detector, ``"hog"``, or ``"none"`` / ``"whole-image"``.
        device: where a neural detector runs (the pose model's device, so that
            ``--device cpu`` or ``cuda:1`` holds for both); ignored by HOG and whole-image.
        **kwargs: passed to the detector's constructor (``labels=``, ``engine=``, ...;
            options a fallback detector does not take are dropped for it).

    Returns:
        A callable ``image_rgb -> (N, 5) x, y, w, h, score`` boxes (learned detectors also have
        ``detect_labeled`` with the class of each box).

    Raises:
        InputError: unknown name, not a detector, missing classes, unexpected keyword arguments.
        DownloadError: the detector's model or library is unavailable (except for ``auto``).
    """
    key = str(name).strip()
    kind = DETECTOR_NAMES.get(key.lower())
    if kind is None and _is_model_source(key):
        kind = "transformers"
        kwargs.setdefault("model_id", key)
    if kind is None:
        raise InputError(
            f"unknown detector {name!r}; choose one of: {', '.join(sorted(DETECTOR_NAMES))}, a "
            "Hugging Face hub id or a local detector folder"
        )
    if kind == "transformers" and key.lower() in DETECTOR_MODELS:
        kwargs.setdefault("model_id", DETECTOR_MODELS[key.lower()])
    if kind == "auto":
        kwargs.setdefault("model_id", DETECTOR_MODELS[AUTO_DETECTOR])
        try:
            return _build(TransformersDetector, name, device, kwargs)
        except DownloadError as exc:
            global _AUTO_WARNED
            if not _AUTO_WARNED:
                _AUTO_WARNED = True
                logger.warning(
                    "the default detector (auto) is D-FINE-N (%s), which is not available: %s "
                    "If this machine is offline, download it on another machine and pass its "
                    "folder with --detector PATH (files already in the Hugging Face cache are "
                    "used with HF_HUB_OFFLINE=1). Using OpenCV's HOG person detector instead "
                    "(offline, lower quality).",
                    kwargs["model_id"], str(exc).replace(OFFLINE_HINT, "").strip(),
                )
            return _build(HOGPersonDetector, "hog", device, {})
    cls: type = {
        "hog": HOGPersonDetector,
        "transformers": TransformersDetector,
        "whole-image": WholeImageDetector,
    }[kind]
    return _build(cls, name, device, kwargs)


def _build(cls: type, name: str, device: str | None, kwargs: dict[str, Any]) -> Any:
    params = inspect.signature(cls).parameters
    if device is not None and "device" in params:
        kwargs.setdefault("device", device)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise InputError(f"invalid options for detector {name!r}: {exc}") from exc
    return cls(**kwargs)


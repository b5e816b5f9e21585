"""The demo's model menu: what each entry loads (`ModelChoice`), built from the model the demo
was started with (`default_model_choices`), offering only the keypoint sets it has."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VitPoseError

__all__ = ["ModelChoice", "default_model_choices", "model_heads"]

log = logging.getLogger("vitpose.demo")

#: Keypoint sets offered as "model variants": (task, dataset, description). ``auto``: each box's
#: detector class picks the keypoint set (people -> COCO, animals -> AP-10K; ViTPose+ only).
_TASKS: tuple[tuple[str, str, str], ...] = (
    ("People and animals", "auto", "COCO or AP-10K, chosen per box by the detector"),
    ("Human body", "coco", "COCO, 17 keypoints"),
    ("Whole body", "wholebody", "COCO-WholeBody, 133 keypoints"),
    ("Animal", "ap10k", "AP-10K, 17 keypoints"),
    ("Animal", "apt36k", "APT-36K, 17 keypoints"),
)


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the page's model menu: what `vitpose.load_model` gets."""

    label: str
    model: str | None  # None with weights: the file's own architecture
    weights: str | None = None
    dataset: str | None = None


def _offered(task_dataset: str, heads: Sequence[str]) -> bool:
    """Whether a model with these heads can do a menu entry (``auto`` needs a human and an
    animal head)."""
    if task_dataset == "auto":
        return any(h in heads for h in ("ap10k", "apt36k")) and len(heads) > 1
    return task_dataset in heads


def model_heads(model: str | None, weights: str | None = None) -> list[str] | None:
    """The keypoint sets (heads) a model has: from the variant table for a variant name with its
    released weights, else read from the checkpoint (loaded on the CPU); None when it cannot be
    loaded now (the page then offers its first keypoint set only)."""
    from ..models import VARIANTS

    known = VARIANTS.get(model)
    if known is not None and weights is None:
        return list(known.datasets)
    try:
        from ..hub import load_model

        net = load_model(model, weights=weights, device="cpu")
    except (VitPoseError, OSError, ValueError) as e:
        log.warning("cannot list the keypoint sets of %s: %s", model or weights, e)
        return None
    return [h.dataset for h in net.cfg.heads]


def default_model_choices(model: str | None = None, weights: str | None = None,
                          dataset: str | None = None) -> list[ModelChoice]:
    """The model menu: only what the model can do.

    Without a model: ViTPose-B for people and ViTPose+-B for people and animals (chosen per box
    by the detector), COCO, COCO-WholeBody, AP-10K and APT-36K (released weights, fetched on
    first use). With ``model`` / ``weights``: that model with ``dataset`` (default: its first
    keypoint set), then the other keypoint sets of the heads it has (read from the checkpoint
    for a path or hub id).
    """
    if model is None and weights is None and dataset is None:
        return [ModelChoice("Human body · ViTPose-B (COCO, 17 keypoints)", "vitpose-b-simple")] + [
            ModelChoice(f"{task} · ViTPose+-B ({desc})", "vitpose-plus-b", None, ds)
            for task, ds, desc in _TASKS]
    # weights alone: the file decides the architecture (a variant name would have to match it)
    name = model if model is not None or weights is not None else \
        ("vitpose-b-simple" if dataset in (None, "coco") else "vitpose-plus-b")
    if name is None:
        shown = Path(weights).name
    else:
        shown = Path(name).name if os.sep in name or Path(name).exists() else name
        if weights:
            shown += f" + {Path(weights).name}"
    heads = model_heads(name, weights)
    first = dataset or (heads[0] if heads else None)
    label = f"{shown} ({first or 'its default keypoints'})"
    for task, ds, desc in _TASKS:
        if ds == first:
            label = f"{task} · {shown} ({desc})"
    choices = [ModelChoice(label, name, weights, dataset)]
    for task, ds, desc in _TASKS:
        if ds == first or heads is None or not _offered(ds, heads):
            continue
        choices.append(ModelChoice(f"{task} · {shown} ({desc})", name, weights, ds))
    return choices

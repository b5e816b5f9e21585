"""What every output format shares: the keypoint set of a result, frames of a video, target
paths (no overwrite unless asked) and progress bars for long exports."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vitpose.dataset_meta import DatasetMeta, get_dataset_meta
from vitpose.errors import InputError, OutputError

__all__ = ["PROGRESS_FROM", "as_frames", "keypoint_set", "progress", "prepare_target",
           "require"]

#: Exports with at least this many images or frames show a progress bar (on a terminal).
PROGRESS_FROM = 50


def require(module: str, extra: str) -> Any:
    """Imports an optional library, or raises one `InputError` that names the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"this output needs the '{module.split('.')[0]}' package: "
                         f"pip install 'vitpose[{extra}]'") from None


def keypoint_set(results: Any, meta: DatasetMeta | str | None = None) -> DatasetMeta:
    """The one keypoint layout of ``results`` (a `PoseResult` or several).

    ``meta`` (a `DatasetMeta` or a built-in name) wins; otherwise the results' ``dataset`` names
    it. Results of several layouts at once (a ViTPose+ model routing boxes to different heads)
    are refused: write each keypoint set on its own.
    """
    if isinstance(meta, DatasetMeta):
        return meta
    names = {meta} if meta else set()
    if not names:
        for result in _as_list(results):
            routed = {i.dataset for i in result.instances if i.dataset}
            # a ViTPose+ model routing boxes marks the result "auto" and each instance
            names.update(routed or ({result.dataset} if result.dataset != "auto" else set()))
    names.discard(None)
    if len(names) > 1:
        raise InputError(f"these results hold several keypoint sets ({', '.join(sorted(names))}); "
                         "write each one on its own")
    if not names:
        raise InputError("no keypoint set is known for these results: pass meta=")
    name = names.pop()
    try:
        return get_dataset_meta(name)
    except ValueError:
        raise InputError(f"keypoint set {name!r} is not built in: pass its metadata "
                         "(meta=load_dataset_meta(path))") from None


def _as_list(results: Any) -> list[Any]:
    if hasattr(results, "instances"):
        return [results]
    return [r[-1] if isinstance(r, tuple) else r for r in results]


def as_frames(results: Any, frame_indices: Sequence[int] | None = None) -> list[tuple[int, Any]]:
    """``(frame index, PoseResult)`` pairs of a video in order.

    Accepts a sequence of `PoseResult` (frame ``i`` is the ``i``-th, unless ``frame_indices``
    says otherwise), of ``(index, result)`` pairs, or of ``(index, frame, result)`` triples (what
    ``estimate_video`` yields; the frames themselves are not kept).
    """
    if hasattr(results, "instances"):
        results = [results]
    frames: list[tuple[int, Any]] = []
    for i, item in enumerate(results):
        if isinstance(item, tuple):
            frames.append((int(item[0]), item[-1]))
        else:
            frames.append((i, item))
    if frame_indices is not None:
        if len(frame_indices) != len(frames):
            raise InputError(f"{len(frame_indices)} frame indices for {len(frames)} results")
        frames = [(int(f), r) for f, (_, r) in zip(frame_indices, frames)]
    order = [f for f, _ in frames]
    if any(b <= a for a, b in zip(order, order[1:])):
        raise InputError("video results must come in increasing frame order, each frame once")
    return frames


def prepare_target(path: str | os.PathLike[str], *, overwrite: bool = False,
                   folder: bool = False) -> Path:
    """Checks an output path before anything is computed: an existing file (or a non-empty
    folder) is refused unless ``overwrite``; the parent folder is created."""
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise OutputError(f"{path} already holds files; choose another folder or allow "
                              "overwriting (--overwrite)")
        target = path
    else:
        if path.is_dir():
            raise OutputError(f"{path} is a folder; give a file name")
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists; choose another name or allow overwriting "
                              "(--overwrite)")
        target = path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {target}: {exc.strerror or exc}") from None
    return path


def progress(items: Iterable[Any], total: int, desc: str, show: bool | None = None) -> Iterator[Any]:
    """Iterates ``items`` with a tqdm bar when ``total`` is large (``show`` None: on a terminal
    only; True / False forces it)."""
    disable = (None if total >= PROGRESS_FROM else True) if show is None else not show
    return iter(tqdm(items, total=total, desc=desc, leave=False, disable=disable))

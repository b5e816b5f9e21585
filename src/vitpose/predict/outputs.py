"""Output naming and writing of the predict job: the key of each input (its path relative to
the input root), where its drawing goes, the checks before anything is written (the folder is
writable, existing outputs are not replaced without ``--overwrite``, an input is never written
over), and the writers of drawn images.

Where more output formats plug in: the job hands every finished `PoseResult` to
`ResultSink.add` in input order (`vitpose.predict.images`, `vitpose.predict.video`), beside the
journal and the drawings, and calls `ResultSink.close` at the end; a writer of another format
subclasses `ResultSink` and is returned by `output_sinks` for the options that ask for it."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputError
from ..inference.io import InputSpec
from ..inference.io import write_image as io_write_image
from ..inference.pipeline import PoseResult

__all__ = ["ResultSink", "output_sinks", "check_not_inputs", "check_outputs", "check_writable", "drawn_paths",
           "input_keys", "input_root", "nonfinite_message", "write_image"]

#: Longest file name most file systems take (bytes); drawing names are kept under it.
NAME_MAX = 255


class ResultSink:
    """Receives every new result of a job, in input order (after non-finite instances are
    dropped and track ids assigned): ``add(key, result, image)`` per image or frame (``key``:
    the image's key, its path relative to the input root, or the frame index), and
    ``close(complete)`` at the end, after the results JSON is written (a resumed run sends only
    the new results: a sink that needs them all reads that file). The base class does
    nothing."""

    def add(self, key: Any, result: PoseResult, image: np.ndarray | None) -> None:
        """One image's (or frame's) result; ``image`` is the decoded RGB input."""

    def close(self, complete: bool) -> None:
        """The job ended (``complete``: every input was done)."""


def output_sinks(opts: Any, kind: str, out_dir: Path, results_path: Path) -> list[ResultSink]:
    """The writers of the extra output formats the options ask for (``kind``: ``"images"`` or
    ``"video"``; ``results_path``: the run's results JSON). None yet: the COCO results JSON
    (journal) and the drawings are written by the jobs themselves."""
    return []


def input_root(spec: InputSpec) -> Path:
    """The folder that output names are taken relative to: the folder of a folder run, the
    deepest folder shared by a glob's matches, the parent of a single image."""
    if spec.kind == "folder":
        return Path(spec.spec).expanduser()
    parents = {str(p.parent) for p in spec.image_paths}
    return Path(os.path.commonpath(sorted(parents))) if len(parents) > 1 \
        else spec.image_paths[0].parent


def input_keys(spec: InputSpec) -> dict[Path, str]:
    """Each image's key: its path relative to the input root, with ``/`` (``sub/x.jpg``).
    Keys are unique; they are the results' ``image_id`` when no images file gives one."""
    root = input_root(spec)
    return {p: Path(os.path.relpath(p, root)).as_posix() for p in spec.image_paths}


def _fit_name(stem: str, tail: str) -> str:
    """``stem + tail``, the stem shortened (on a character boundary) so that the name fits the
    file system's limit in bytes."""
    room = NAME_MAX - len(tail.encode("utf-8", "surrogateescape"))
    data = stem.encode("utf-8", "surrogateescape")
    if len(data) <= room:
        return stem + tail
    cut = data[:room - 9].decode("utf-8", "ignore")
    import hashlib
    return f"{cut}~{hashlib.sha1(data).hexdigest()[:8]}{tail}"


def drawn_paths(out_dir: Path, keys: dict[Path, str]) -> dict[Path, Path]:
    """Where each drawn copy goes: ``OUT_DIR/<relative folder>/<stem>_pose<ext>``, keeping the
    extension when OpenCV can write it (else ``.jpg``). Names that would still meet (``a.jpg``
    and ``a.JPG``, also on case-insensitive file systems) keep the input's extension in the
    name (``a.JPG_pose.jpg``), then get a number; names too long for the file system are
    shortened (with a digest of the full name)."""
    import cv2
    drawn: dict[Path, Path] = {}
    taken: set[str] = set()
    for path, key in keys.items():
        rel = Path(key)
        suffix = rel.suffix.lower()
        if not suffix or not cv2.haveImageWriter(f"x{suffix}"):
            suffix = ".jpg"
        # lazily numbered: a list of len(keys) names per image made large folders quadratic
        candidates = itertools.chain(
            [_fit_name(rel.stem, f"_pose{suffix}"), _fit_name(rel.name, f"_pose{suffix}")],
            (_fit_name(rel.name, f"_pose{n}{suffix}") for n in itertools.count(2)))
        for name in candidates:
            target = out_dir / rel.parent / name
            if str(target).casefold() not in taken:
                break
        taken.add(str(target).casefold())
        drawn[path] = target
    return drawn


def check_outputs(paths: list[Path], overwrite: bool) -> None:
    """Existing outputs are an error unless ``overwrite``."""
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise InputError(f"output already exists: {shown} (pass --overwrite to replace)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    """An output that is one of the inputs is refused, even with ``--overwrite``."""
    if not outputs or not inputs:
        return
    names = {os.path.normcase(os.path.abspath(p)): p for p in inputs}
    for out in outputs:
        hit = names.get(os.path.normcase(os.path.abspath(out)))
        if hit is None and out.exists():
            hit = next((p for p in inputs if _same_file(out, p)), None) \
                if len(inputs) < 64 else None
        if hit is not None:
            raise InputError(f"the output {out} is one of the inputs ({hit}); it is never "
                             "written over: choose another --out / --out-dir")


def check_writable(folder: Path) -> None:
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


def write_image(path: Path, image_rgb: np.ndarray) -> None:
    """Writes a drawn RGB image (`OutputError` when it cannot), by bytes and atomically
    (`vitpose.inference.io.write_image`: any file name, never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    io_write_image(path, image_rgb)


def nonfinite_message(count: int, where: int, unit: str, path: Path) -> str:
    return (f"{count} instance(s) in {where} {unit} had non-finite (NaN or infinite) "
            f"keypoints or scores and were left out of {path} (broken or diverged weights?)")

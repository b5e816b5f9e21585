"""Output naming and writing of the predict job: the key of each input (its path relative to
the input root), where its drawing goes, the checks before anything is written (the folder is
writable, existing outputs are not replaced without ``--overwrite``, an input is never written
over), and the writers of drawn images.

Where more output formats plug in: the job hands every finished `PoseResult` to
`ResultSink.add` in input order (`vitpose.predict.images`, `vitpose.predict.video`), beside the
journal and the drawings, and calls `ResultSink.close` at the end; a writer of another format
subclasses `ResultSink` and is returned by `output_sinks` for the options that ask for it.
`ExportSink` writes the formats of `vitpose.formats` (``--table``, ``--tracks``, ``--openpose``,
``--coco-keypoints``, ``--label-studio``) when the run is complete, from every result of the
run: those of an interrupted run it continues are read back from the journal, and all are kept
as journalled, so a resumed run writes the same files as an uninterrupted one."""

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

__all__ = ["ExportSink", "ResultSink", "check_not_inputs", "check_outputs", "check_writable",
           "draw_result", "drawn_paths", "export_notes", "input_keys", "input_root",
           "nonfinite_message", "output_sinks", "write_image"]

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


def output_sinks(opts: Any, kind: str, out_dir: Path, results_path: Path, *,
                 done: Any = None, fps: float | None = None, stem: str | None = None,
                 spec: InputSpec | None = None) -> list[ResultSink]:
    """The writers of the extra output formats the options ask for (``kind``: ``"images"`` or
    ``"video"``; ``results_path``: the run's results JSON; ``done``: the journalled results of
    an interrupted run being resumed, key -> stored value; ``fps`` / ``stem``: a video's frame
    rate and name; ``spec``: the images' input). The COCO results JSON (journal) and the
    drawings are written by the jobs themselves; ``opts.exports`` (``(format, path,
    options)``, see `vitpose.formats.options.requested`) are written at the end by one
    `ExportSink`."""
    exports = list(getattr(opts, "exports", None) or [])
    if not exports:
        return []
    meta = None
    if getattr(opts, "dataset_meta", None):  # a custom keypoint set (docs/FINETUNE.md)
        from ..dataset_meta import load_dataset_meta
        meta = load_dataset_meta(opts.dataset_meta)
    return [ExportSink(exports, kind, dict(done or {}), overwrite=bool(opts.overwrite),
                       fps=fps, stem=stem, spec=spec, meta=meta)]


class ExportSink(ResultSink):
    """Collects every result of the run and writes the requested output formats
    (`vitpose.formats.write`) when the run completes. A resumed run sends only its new results:
    the ones of the interrupted run are rebuilt from the journal (``done``), so the files are
    the same as those of an uninterrupted run. Notes of the writers (what a keypoint set could
    not fill, what the smoother did) are kept in `notes`; the paths written in `paths`."""

    def __init__(self, exports: list[tuple[str, Path, dict[str, Any]]], kind: str,
                 done: dict[Any, Any], *, overwrite: bool, fps: float | None = None,
                 stem: str | None = None, spec: InputSpec | None = None,
                 meta: Any = None) -> None:
        self.exports = exports
        self.meta = meta
        self.kind = kind
        self.done = done
        self.overwrite = overwrite
        self.fps = fps
        self.stem = stem
        self.spec = spec
        self.results: dict[Any, PoseResult] = {}
        self.notes: list[str] = []
        self.paths: list[Path] = []
        self._hw: tuple[int, int] | None = None
        self._dataset: str | None = None

    def add(self, key: Any, result: PoseResult, image: np.ndarray | None) -> None:
        # kept as journalled (rounded as in the results JSON), so that a resumed run, whose
        # earlier results come from the journal, writes the same files as an uninterrupted one
        self._hw = tuple(result.image_hw)  # type: ignore[assignment]
        self._dataset = self._dataset or result.dataset
        entries = result.to_coco()
        if self.kind == "video":
            self.results[key] = self._frame(key, {"instances": entries})
        else:
            self.results[key] = _from_entries(entries, result.source, result.image_id,
                                              result.image_hw, result.dataset)

    def _frame(self, index: Any, row: dict[str, Any]) -> PoseResult:
        """A frame as `vitpose.predict.video.stored_result` reads it from the journal."""
        return _from_entries(row["instances"], f"frame {index}", int(index),
                             self._hw or (0, 0), self._dataset)

    def _earlier_video(self) -> None:
        for index, row in self.done.items():
            if index not in self.results:
                self.results[index] = self._frame(index, row)

    def _earlier_images(self) -> None:
        from ..inference.io import read_image
        if self.spec is None:
            return
        for path, key in input_keys(self.spec).items():
            if key in self.results or key not in self.done:
                continue
            entries = self.done[key]
            image_id = entries[0]["image_id"] if entries else key
            self.results[key] = _from_entries(entries, str(path), image_id,
                                              read_image(path).shape[:2], self._dataset)

    def close(self, complete: bool) -> None:
        if not complete:  # written when the run is complete (a rerun continues it)
            return
        from .. import formats
        if self.kind == "video":
            self._earlier_video()
            ordered: list[Any] = [(k, self.results[k]) for k in sorted(self.results)]
        else:
            self._earlier_images()
            order = list(input_keys(self.spec).values()) if self.spec is not None \
                else list(self.results)
            ordered = [self.results[k] for k in order if k in self.results]
        video = self.kind == "video"
        root = input_root(self.spec) if self.spec is not None and not video else None
        for name, path, options in self.exports:
            extra = dict(options)
            if name == "openpose" and video:
                extra["stem"] = self.stem
            if name in ("coco-keypoints", "label-studio") and root is not None:
                extra["image_root"] = root
            report = formats.write(name, ordered, path, fps=self.fps if video else None,
                                   video=video, meta=self.meta, overwrite=self.overwrite,
                                   **extra)
            self.paths.extend(report.paths)
            self.notes.extend(report.notes)


def _from_entries(entries: list[dict[str, Any]], source: str, image_id: Any,
                  image_hw: Any, dataset: str | None) -> PoseResult:
    """An image's result from its COCO results entries (as journalled)."""
    from ..inference.pipeline import PoseInstance
    instances = []
    for e in entries:
        kp = np.asarray(e["keypoints"], np.float32).reshape(-1, 3)
        box = np.asarray(e["bbox"], np.float32)
        instances.append(PoseInstance(box, float(e["score"]), kp, float(e["score"]),
                                      box[:2] + box[2:] / 2, box[2:] / 200.0,
                                      dataset=e.get("dataset"), category=e.get("category"),
                                      track_id=e.get("track_id")))
    if dataset is None:  # no new result of the run names it: by the number of keypoints
        k = instances[0].keypoints.shape[0] if instances else 17
        dataset = {17: "coco", 133: "wholebody"}.get(k, "coco")
    return PoseResult(source, image_id, (int(image_hw[0]), int(image_hw[1])), dataset,
                      instances)


def export_notes(sinks: Any, summary: Any) -> None:
    """The files the export sinks wrote and their notes, into the job's summary."""
    for sink in sinks:
        if isinstance(sink, ExportSink):
            if sink.paths:
                shown = ", ".join(str(p) for p in sink.paths[:3]) + \
                    (f" (+{len(sink.paths) - 3} more)" if len(sink.paths) > 3 else "")
                summary.lines.append(f"exported {len(sink.paths)} file(s): {shown}")
            for text in sink.notes:
                summary.note(text)


def draw_result(estimator: Any, opts: Any, image: np.ndarray, result: PoseResult,
                kpt_thr: float | None = None) -> np.ndarray:
    """The drawing of one result: the model's skeleton, or with ``draw_style="openpose"`` an
    OpenPose-style render (`vitpose.formats.draw_openpose`) on a black canvas or on the image
    (``background``)."""
    thr = opts.kpt_thr if kpt_thr is None else kpt_thr
    if getattr(opts, "draw_style", "skeleton") != "openpose":
        return estimator.draw(image, result, thr)
    from ..formats import draw_openpose, to_openpose
    pose = to_openpose(result, min_score=thr)
    background = image if getattr(opts, "background", "black") == "image" else None
    return draw_openpose(pose, background)


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

"""The predict job's entry: options -> the image, video or sharded job."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..inference.io import iter_inputs
from .images import run_images
from .options import PredictOptions
from .report import Notify, Summary, log_notice, repeated_warnings
from .scale import run_sharded, wanted
from .video import run_video

__all__ = ["run"]


def run(opts: PredictOptions, *, notify: Notify = log_notice) -> Summary:
    """Runs `vitpose predict` with these options: images -> a COCO results JSON (+ drawings),
    a video -> per-frame JSON (+ the annotated mp4), under torchrun / ``--out *.jsonl`` / a
    video collection the sharded job (docs/SCALE_OUT.md). Raises `vitpose.errors` kinds for
    the user's mistakes and `Interrupted` when stopped; returns the `Summary`."""
    if opts.input is None:
        raise ValueError("PredictOptions.input is required")
    max_pixels = opts.validate()
    if opts.exports:
        if wanted(opts):
            raise InputError(
                "the output formats (" + ", ".join(sorted({n for n, _, _ in opts.exports}))
                + ") are not written by a sharded run (torchrun, --out *.jsonl, video lists): "
                "run without them, then write them from the merged results in Python "
                "(vitpose.formats.write)")
        from ..formats.options import check_targets
        check_targets(opts.exports, overwrite=opts.overwrite)
    if wanted(opts):  # torchrun, --out *.jsonl, video lists: docs/SCALE_OUT.md
        return run_sharded(opts, max_pixels, notify=notify)
    spec = iter_inputs(opts.input)
    if opts.exports:
        _check_exports_fit(opts, spec.is_video)
    notes: list[str] = []
    with repeated_warnings(notes):
        summary = run_video(opts, spec, Path(opts.out_dir), max_pixels, notify=notify) \
            if spec.is_video else run_images(opts, spec, max_pixels, notify=notify)
    summary.notes.extend(notes)
    return summary


def _check_exports_fit(opts: PredictOptions, video: bool) -> None:
    """Output formats that cannot be written for this input, refused before any work."""
    from ..formats import FORMATS
    for name, _, options in opts.exports:
        if FORMATS[name].video_only and not video:
            raise InputError(f"{FORMATS[name].option} is for videos (the results of images "
                             "have no tracks): use --table for images")
        if name == "openpose" and video and options.get("render") \
                and options.get("background") == "image":
            raise InputError("--openpose-render --background image draws on image files; for "
                             "a video use --background black (or --draw-style openpose "
                             "--background image for the annotated video)")

"""Output formats of pose results for the tools people use next.

Each format takes the per-image results (`PoseResult`) of images or the per-frame results of a
video (with track ids and the frame rate) and writes files. The predict job calls `write` with
a format name from `FORMATS`; each `OutputFormat` carries the command-line option and help text.

=================  ==================  =================================================
format             option              writes
=================  ==================  =================================================
``table``          ``--table PATH``    one row per instance x keypoint (.csv / .parquet)
``tracks``         ``--tracks PATH``   video tracks: .csv / .parquet rows, or .npz arrays
``openpose``       ``--openpose DIR``  one OpenPose JSON per image / frame (+ drawings)
``coco-keypoints`` ``--coco-keypoints  a COCO Keypoints file (CVAT's import; training)
                   PATH``
``label-studio``   ``--label-studio    Label Studio tasks with predictions + interface
                   PATH``
=================  ==================  =================================================

`vitpose.formats.options` adds these options to an argparse parser and turns the parsed
arguments into `write` calls. Python helpers: `to_pandas`, `to_supervision` /
`supervision_edges`, `track_arrays`, `track_table`, `smooth_tracks`, `to_openpose` /
`draw_openpose`, `to_coco_keypoints`, `to_label_studio` / `label_studio_config` /
`label_studio_to_coco`, `select_uncertain`.
The libraries behind them are optional extras (``pip install 'vitpose[formats]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitpose.errors import InputError, OutputError
from vitpose.formats.annotation import (
    label_studio_config,
    label_studio_to_coco,
    select_uncertain,
    to_coco_keypoints,
    to_label_studio,
    write_coco_keypoints,
    write_label_studio,
)
from vitpose.formats.common import prepare_target
from vitpose.formats.openpose import draw_openpose, to_openpose, write_openpose
from vitpose.formats.tables import supervision_edges, to_pandas, to_supervision
from vitpose.formats.tracks import (
    SmoothReport,
    smooth_tracks,
    track_arrays,
    track_table,
    write_track_arrays,
    write_track_table,
)

__all__ = ["FORMATS", "OutputFormat", "SmoothReport", "WriteReport", "draw_openpose",
           "label_studio_config", "label_studio_to_coco", "select_uncertain", "smooth_tracks",
           "supervision_edges", "to_coco_keypoints", "to_label_studio", "to_openpose",
           "to_pandas", "to_supervision", "track_arrays", "track_table", "write"]


@dataclass
class WriteReport:
    """What `write` did: the files written and notes for the user (what a keypoint set could
    not fill, what the smoother did)."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its command-line option, help text and writer."""

    name: str
    option: str
    metavar: str
    help: str
    video_only: bool
    writer: Callable[..., WriteReport]


def _table(results: Any, out: Path, *, fps: float | None, video: bool, meta: Any,
           overwrite: bool, **_: Any) -> WriteReport:
    from vitpose.fileio import atomic_open
    from vitpose.formats.common import require

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise OutputError(f"{out}: a table is written as .csv or .parquet")
    prepare_target(out, overwrite=overwrite)
    table = to_pandas(results, meta=meta, fps=fps, video=video)
    if out.suffix.lower() == ".csv":
        with atomic_open(out, "w") as f:
            table.to_csv(f, index=False)
    else:
        require("pyarrow", "tables")
        with atomic_open(out, "wb") as f:
            table.to_parquet(f, index=False)
    return WriteReport([out])


def _tracks(results: Any, out: Path, *, fps: float | None, meta: Any, overwrite: bool,
            smooth: bool = False, max_gap: int = 5, smooth_window: int = 9,
            **_: Any) -> WriteReport:
    notes = []
    if out.suffix.lower() not in (".csv", ".parquet", ".npz"):
        raise OutputError(f"{out}: tracks are written as .csv, .parquet or .npz")
    prepare_target(out, overwrite=overwrite)
    if smooth:
        results, report = smooth_tracks(results, max_gap=max_gap, window=smooth_window,
                                        meta=meta)
        notes.append(report.summary())
    if out.suffix.lower() == ".npz":
        path = write_track_arrays(results, out, fps=fps, meta=meta, overwrite=True)
    else:
        path = write_track_table(results, out, fps=fps, meta=meta, overwrite=True)
    return WriteReport([path], notes)


def _openpose(results: Any, out: Path, *, video: bool, meta: Any, overwrite: bool,
              openpose_body: str = "coco18", render: bool = False, background: str = "black",
              min_score: float = 0.3, stem: str | None = None,
              show_progress: bool | None = None, **_: Any) -> WriteReport:
    paths, notes = write_openpose(results, out, meta=meta, body=openpose_body, video=video,
                                  render=render, background=background, min_score=min_score,
                                  overwrite=overwrite, stem=stem, show_progress=show_progress)
    return WriteReport(paths, notes)


def _coco(results: Any, out: Path, *, meta: Any, overwrite: bool, select: int | None = None,
          min_score: float = 0.3, image_root: Any = None, **_: Any) -> WriteReport:
    return WriteReport([write_coco_keypoints(results, out, overwrite=overwrite, select=select,
                                             meta=meta, min_score=min_score,
                                             image_root=image_root)])


def _label_studio(results: Any, out: Path, *, meta: Any, overwrite: bool,
                  select: int | None = None, min_score: float = 0.3, image_root: Any = None,
                  image_url: str = "/data/local-files/?d={path}", **_: Any) -> WriteReport:
    return WriteReport(write_label_studio(results, out, overwrite=overwrite, select=select,
                                          meta=meta, min_score=min_score,
                                          image_root=image_root, image_url=image_url))


#: Output formats by name.
FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("table", "--table", "PATH",
                 "one row per person x keypoint (.csv or .parquet): image, frame, time, track, "
                 "keypoint name, x, y, score, box", False, _table),
    OutputFormat("tracks", "--tracks", "PATH",
                 "video: one row per track x frame x keypoint (.csv, .parquet) or per-track "
                 "(T, K, 3) arrays with frame indices and times (.npz); --smooth-tracks "
                 "smooths them first", True, _tracks),
    OutputFormat("openpose", "--openpose", "DIR",
                 "one OpenPose JSON per image or frame (ControlNet, pose editors, Pose2Sim); "
                 "--openpose-body coco18|body25, --openpose-render adds drawings",
                 False, _openpose),
    OutputFormat("coco-keypoints", "--coco-keypoints", "PATH",
                 "pre-annotations as a COCO Keypoints file (CVAT: import as COCO Keypoints "
                 "1.0); --select-uncertain N keeps the N least sure images", False, _coco),
    OutputFormat("label-studio", "--label-studio", "PATH",
                 "pre-annotations as Label Studio tasks with scored predictions, and the "
                 "labelling interface beside them (PATH without .json + .label_config.xml)",
                 False, _label_studio),
)}


def write(name: str, results: Any, out: str | os.PathLike[str], *, fps: float | None = None,
          video: bool | None = None, meta: Any = None, overwrite: bool = False,
          **options: Any) -> WriteReport:
    """Writes ``results`` in the output format ``name`` to ``out``.

    Args:
        name: a key of `FORMATS`.
        results: `PoseResult` objects of images, or of the frames of a video in order (also
            ``(index, result)`` / ``(index, frame, result)`` items).
        out: the file (or, for ``openpose``, the folder) to write; an existing one is refused
            unless ``overwrite``.
        fps: a video's frame rate (``time_s`` columns); giving it marks the results as frames.
        video: the results are frames of one video (default: when ``fps`` is given).
        meta: the keypoint set (default: the results' own).
        options: format options: ``smooth``, ``max_gap``, ``smooth_window`` (tracks);
            ``openpose_body``, ``render``, ``background``, ``min_score``, ``stem`` (the
            name of a video's files), ``show_progress`` (None: a bar on a terminal from 50
            files on; openpose);
            ``select``, ``min_score``, ``image_root``, ``image_url`` (coco-keypoints,
            label-studio).

    Raises:
        InputError: an unknown format, a video format for images, a keypoint set the format
            cannot hold, results without tracks.
        OutputError: the target exists (and not ``overwrite``) or cannot be written.
    """
    if name not in FORMATS:
        raise InputError(f"unknown output format {name!r}; choose one of {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    video = bool(fps) if video is None else bool(video)
    if fmt.video_only and not video:
        raise InputError(f"{fmt.option} is for videos (the results of images have no tracks)")
    try:
        return fmt.writer(results, Path(out), fps=fps, video=video, meta=meta,
                          overwrite=overwrite, **options)
    except OSError as exc:  # full disk, no permission, ...: one line naming the target
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None

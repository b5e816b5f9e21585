"""What the demo's handlers return (`ImageOutput`, `VideoOutput`) and the files of their results
for other tools (`other_formats`: the output formats of `vitpose predict`)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VitPoseError
from ..inference.pipeline import PoseResult

__all__ = ["ImageOutput", "VideoOutput", "other_formats"]

log = logging.getLogger(__name__)


@dataclass
class ImageOutput:
    """What the image tab shows.

    Attributes:
        image: the drawn RGB image (None on error).
        table: one row per instance (`IMAGE_TABLE_HEADERS`).
        json_path: COCO-results JSON of the instances (as `vitpose predict` writes it).
        message: a one-line Markdown status; starts with "Error:" when nothing could be done.
        error: True when the upload or the settings could not be used.
        results: the COCO entries written to ``json_path``.
        downloads: files for other tools (`other_formats`: a CSV table, OpenPose JSON).
    """

    image: np.ndarray | None = None
    table: list[list[Any]] = field(default_factory=list)
    json_path: str | None = None
    message: str = ""
    error: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)


@dataclass
class VideoOutput:
    """What the video tab shows.

    Attributes:
        video_path: the video to play in the page (the mp4 when browsers can play its codec,
            else a WebM preview of it).
        mp4_path: the annotated mp4 (as `vitpose predict` writes it).
        json_path: per-frame results ``[{"frame": i, "instances": [...]}, ...]``.
        table: one row per track (`VIDEO_TABLE_HEADERS`).
        message: Markdown status ("Error: ..." on failure); error: True on failure.
        frames: number of frames processed.
        downloads: files for other tools (`other_formats`: a CSV table, OpenPose JSON zipped).
    """

    video_path: str | None = None
    mp4_path: str | None = None
    json_path: str | None = None
    table: list[list[Any]] = field(default_factory=list)
    message: str = ""
    error: bool = False
    frames: int = 0
    downloads: list[str] = field(default_factory=list)



def other_formats(results: list[PoseResult], out_dir: Path, stem: str,
                  fps: float | None = None) -> list[str]:
    """The downloads for other tools (`vitpose.formats`, as ``vitpose predict --table
    STEM_poses.csv --openpose DIR``): a CSV table (one row per person x keypoint) and the
    OpenPose JSON (one file for an image; a zip of one per frame for a video). A format that
    does not fit (no pandas installed, a keypoint set OpenPose has no layout for) is left out."""
    from ..formats import write
    video = fps is not None
    paths: list[str] = []
    try:
        paths += [str(p) for p in write("table", results, out_dir / f"{stem}_poses.csv",
                                        fps=fps, video=video, overwrite=True).paths]
    except VitPoseError as e:
        log.info("no CSV table: %s", e)
    try:
        folder = out_dir / f"{stem}_openpose"
        written = write("openpose", results, folder, video=video, stem=stem,
                        overwrite=True, show_progress=False).paths
        if video:
            paths.append(shutil.make_archive(str(folder), "zip", folder))
        else:
            paths += [str(p) for p in written]
    except VitPoseError as e:
        log.info("no OpenPose JSON: %s", e)
    return paths

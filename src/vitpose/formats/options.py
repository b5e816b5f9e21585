"""Command-line options of the output formats, for the predict job to add to its parser.

``add_arguments(parser)`` adds them (one option per format plus the format settings);
``requested(args)`` turns parsed arguments into ``(format, path, options)`` requests;
``check_targets(requests, overwrite=...)`` refuses existing outputs before any work is done;
each request is then written with ``vitpose.formats.write(name, results, path, fps=...,
overwrite=..., **options)`` once the results are in.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vitpose.errors import OutputError
from vitpose.formats.openpose import BODY_LAYOUTS

__all__ = ["add_arguments", "check_targets", "requested"]

#: Format name -> argparse destination of its option.
_DEST = {"table": "table", "tracks": "tracks", "openpose": "openpose",
         "coco-keypoints": "coco_keypoints", "label-studio": "label_studio"}


def add_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Adds the output-format options to ``parser`` (in their own help group)."""
    from vitpose.formats import FORMATS

    group = parser.add_argument_group(
        "results for other tools", "extra files in the formats other tools read (the tables "
        "and supervision need pip install 'vitpose[formats]')")
    for name, fmt in FORMATS.items():
        group.add_argument(fmt.option, dest=_DEST[name], metavar=fmt.metavar, default=None,
                           help=fmt.help)
    group.add_argument("--smooth-tracks", action="store_true",
                       help="--tracks: fill gaps of up to --max-gap frames by interpolation and "
                            "smooth each track without lag (offline, over the whole video; "
                            "prints frames filled and jitter before/after)")
    group.add_argument("--max-gap", type=int, default=5, metavar="N",
                       help="--smooth-tracks: longest gap filled, in frames; nothing is invented "
                            "beyond it (default: 5)")
    group.add_argument("--smooth-window", type=int, default=9, metavar="N",
                       help="--smooth-tracks: frames in the smoothing window, odd (default: 9)")
    group.add_argument("--openpose-body", choices=tuple(BODY_LAYOUTS), default="coco18",
                       help="--openpose: body layout, coco18 (ControlNet) or body25 (OpenPose's "
                            "default model, Pose2Sim; feet from a whole-body model) "
                            "(default: coco18)")
    group.add_argument("--openpose-render", action="store_true",
                       help="--openpose: also an OpenPose-style drawing per image or frame")
    group.add_argument("--background", choices=("black", "image"), default="black",
                       help="--openpose-render and --draw-style openpose: draw on a black "
                            "canvas or on the image (images only) (default: black)")
    group.add_argument("--select-uncertain", type=int, default=None, metavar="N",
                       help="--coco-keypoints / --label-studio: only the N images the model is "
                            "least sure about")
    group.add_argument("--export-min-score", type=float, default=0.3, metavar="S",
                       help="--openpose / --coco-keypoints / --label-studio: keypoints scoring "
                            "under S are written as not found (default: 0.3)")
    return group


def requested(args: argparse.Namespace) -> list[tuple[str, Path, dict[str, Any]]]:
    """The ``(format name, path, write options)`` of each output option given."""
    out = []
    for name, dest in _DEST.items():
        path = getattr(args, dest, None)
        if not path:
            continue
        options: dict[str, Any] = {}
        if name == "tracks":
            options = {"smooth": bool(args.smooth_tracks), "max_gap": args.max_gap,
                       "smooth_window": args.smooth_window}
        elif name == "openpose":
            options = {"openpose_body": args.openpose_body, "render": args.openpose_render,
                       "background": args.background, "min_score": args.export_min_score}
        elif name in ("coco-keypoints", "label-studio"):
            options = {"select": args.select_uncertain, "min_score": args.export_min_score}
        out.append((name, Path(path), options))
    return out


def check_targets(requests: list[tuple[str, Path, dict[str, Any]]], *,
                  overwrite: bool = False) -> None:
    """Refuses, before any work, outputs that exist (unless ``overwrite``) or that two options
    would both write."""
    from vitpose.formats.common import prepare_target

    seen: dict[Path, str] = {}
    for name, path, _ in requests:
        key = path.resolve()
        if key in seen:
            raise OutputError(f"{seen[key]} and {name} would both write {path}")
        seen[key] = name
        prepare_target(path, overwrite=overwrite, folder=name == "openpose")

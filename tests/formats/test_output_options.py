"""The output options as the predict job's parser gets them: help, requests, early checks."""

from __future__ import annotations

import argparse
import json

import pytest

import vitpose.formats as formats
from vitpose.errors import OutputError
from vitpose.formats.options import add_arguments, check_targets, requested


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitpose predict")
    parser.add_argument("input")
    add_arguments(parser)
    return parser


def test_help_documents_every_format_option() -> None:
    text = _parser().format_help()
    for fmt in formats.FORMATS.values():
        assert fmt.option in text
    for option in ("--smooth-tracks", "--max-gap", "--openpose-body", "--openpose-render",
                   "--background", "--select-uncertain", "--export-min-score"):
        assert option in text


def test_requests_write_what_the_options_say(tmp_path, coco_results, make_track) -> None:
    args = _parser().parse_args([
        "photos/", "--coco-keypoints", str(tmp_path / "pre.json"), "--select-uncertain", "2",
        "--openpose", str(tmp_path / "op"), "--openpose-body", "body25", "--openpose-render"])
    reqs = requested(args)
    assert [r[0] for r in reqs] == ["openpose", "coco-keypoints"]
    check_targets(reqs)
    for name, path, options in reqs:
        formats.write(name, coco_results, path, **options)
    assert len(formats.FORMATS) == 5
    assert len(json.loads((tmp_path / "pre.json").read_text())["images"]) == 2
    pose = json.loads((tmp_path / "op" / "000000000785_keypoints.json").read_text())
    assert len(pose["people"][0]["pose_keypoints_2d"]) == 75
    assert (tmp_path / "op" / "000000000785_rendered.png").is_file()
    # a second run is refused before any work, unless overwriting
    with pytest.raises(OutputError, match="already holds files"):
        check_targets(reqs)
    with pytest.raises(OutputError, match="pre.json exists"):
        check_targets(reqs[1:])
    check_targets(reqs, overwrite=True)
    _, frames = make_track(frames=10, missing=(4,))
    args = _parser().parse_args(["v.mp4", "--tracks", str(tmp_path / "t.csv"),
                                 "--smooth-tracks", "--max-gap", "2"])
    (name, path, options), = requested(args)
    report = formats.write(name, frames, path, fps=30, **options)
    assert "1 missing frame(s)" in report.notes[0]
    both = _parser().parse_args(["x", "--table", str(tmp_path / "a.csv"), "--tracks",
                                 str(tmp_path / "a.csv")])
    with pytest.raises(OutputError, match="both write"):
        check_targets(requested(both))

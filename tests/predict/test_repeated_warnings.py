"""A per-image warning repeated over a folder is said a few times, then summarised once."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main


def test_repeated_box_warnings_are_summarised(tmp_path: Path, capsys) -> None:
    ckpt = vitpose.save_checkpoint(tiny_simple_model(), tmp_path / "t.pth")
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    # a box larger than every image: clipped in each of the six
    rc = main(["predict", str(folder), "--model", str(ckpt), "--box", "0,0,500,500",
               "--out-dir", str(tmp_path / "out"), "--no-draw", "--device", "cpu",
               "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.count("clipped 1 box(es) for image") == 3 + 1, err  # 3 shown + the summary
    assert 'note: 6 warnings like "clipped 1 box(es) for image 0.png' in err
    assert "(3 shown, 3 more)" in err


def test_warning_kinds_ignore_names_and_numbers() -> None:
    import logging

    from vitpose.predict.report import repeated_warnings
    notes: list[str] = []
    log = logging.getLogger("vitpose.inference.pipeline")
    with repeated_warnings(notes):
        for name in ("a.jpg", "b c.jpg", "d.jpg", "e.jpg"):
            log.warning("clipped 2 box(es) for image %s to the 640x480 image", name)
        log.warning("dropped 1 box(es) for image a.jpg with no area (index 0)")
    assert len(notes) == 1 and notes[0].startswith('4 warnings like "clipped 2 box(es)')

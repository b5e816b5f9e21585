"""Hostile inputs where the user meets them (the command line, the Python API): file names that
are not valid UTF-8, image bombs in every accepted format, files far larger than their image.
docs/RELIABILITY.md lists them with these tests. (TIFF orientation: tests/inference/test_io.py;
many boxes in one image: tests/inference/test_pipeline.py.)

The model is a tiny random ViTPose saved with `vitpose.save_checkpoint` (no download)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main
from vitpose.inference.io import printable_name
from vitpose.inference.results import ResumableResults

ENV = {**os.environ, "PYTHONPATH": str(Path(vitpose.__file__).resolve().parents[1])}
BAD = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not valid UTF-8 (lone surrogate in Python)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return vitpose.save_checkpoint(tiny_simple_model(), tmp_path_factory.mktemp("ckpt") / "t.pth")


def predict(*args: object) -> int:
    return main(["predict", *map(str, args), "--device", "cpu", "--backend", "torch",
                 "--detector", "none"])


def _write(path: Path, size=(96, 80), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _strict_json(path: Path):
    """Parses like a strict JSON reader: UTF-8 only, no NaN, no lone surrogates in strings."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")

    def check(value):
        if isinstance(value, str):
            value.encode("utf-8")  # a lone surrogate (from a \udcXX escape) raises
        elif isinstance(value, dict):
            for k, v in value.items():
                check(k)
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)
        return value

    return check(json.loads(path.read_bytes().decode("utf-8"), parse_constant=refuse))


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# File names that are not valid UTF-8
# ---------------------------------------------------------------------------------------------

def test_names_that_are_not_utf8_give_strict_json(tmp_path: Path, ckpt: Path) -> None:
    """`results.json` held lone surrogates (``"\\udce9"``) that strict parsers reject; the name
    is now written with a backslash escape, in an output folder that is not UTF-8 either."""
    folder = tmp_path / "in"
    _write(folder / f"{BAD}.jpg")
    _write(folder / "plain.jpg", seed=1)
    out = tmp_path / f"out-{BAD}"
    assert predict(folder, "--weights", ckpt, "--out-dir", out, "--no-draw") == 0
    results = _strict_json(out / "results.json")
    assert sorted({r["image_id"] for r in results}) == ["caf\\xe9.jpg", "plain.jpg"]
    assert not list(out.glob("*.partial.jsonl"))


def test_journal_of_names_that_are_not_utf8_resumes(tmp_path: Path) -> None:
    """The journal is strict JSON too, and a rerun finds the work of such names in it."""
    path = tmp_path / "results.json"
    settings = {"input": str(tmp_path / BAD)}
    first = ResumableResults(path, settings)
    first.start()
    first.add(f"{BAD}.jpg", [{"image_id": f"{BAD}.jpg", "score": 1.0}])
    first.finish(order=[f"{BAD}.jpg", "b.jpg"], complete=False)
    rows = [json.loads(line.decode("utf-8")) for line in first.partial.read_bytes().splitlines()]
    assert rows[1]["key"] == "caf\\xe9.jpg" and rows[0]["settings"]["input"].endswith("caf\\xe9")
    again = ResumableResults(path, settings)
    assert again.resumed and f"{BAD}.jpg" in again.done
    again.start()
    again.add("b.jpg", [])
    again.finish(order=[f"{BAD}.jpg", "b.jpg"])
    assert _strict_json(path) == [[{"image_id": printable_name(f"{BAD}.jpg"), "score": 1.0}], []]


def test_drawings_of_names_that_are_not_utf8(tmp_path: Path, ckpt: Path) -> None:
    """`predict` segfaulted (exit 139) in OpenCV's writer, on every rerun. In a child process,
    so that a crash fails this test only."""
    folder = tmp_path / "in"
    _write(folder / f"{BAD}.jpg")
    out = tmp_path / f"out-{BAD}"
    run = subprocess.run([sys.executable, "-m", "vitpose", "predict", os.fsencode(folder),
                          "--weights", str(ckpt), "--out-dir", os.fsencode(out), "--device",
                          "cpu", "--backend", "torch", "--detector", "none"],
                         env=ENV, capture_output=True, timeout=600)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    drawn = out / f"{BAD}_pose.jpg"
    assert drawn.exists() and cv2.imdecode(np.fromfile(drawn, np.uint8), 1) is not None
    assert _strict_json(out / "results.json")[0]["image_id"] == "caf\\xe9.jpg"


# ---------------------------------------------------------------------------------------------
# Image bombs and huge files
# ---------------------------------------------------------------------------------------------

def _jp2_bomb(h: int, w: int) -> bytes:
    ok, buf = cv2.imencode(".jp2", np.zeros((64, 64, 3), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    ihdr = data.index(b"ihdr") + 4
    data[ihdr:ihdr + 8] = struct.pack(">II", h, w)
    siz = data.index(b"\xff\x4f\xff\x51") + 8
    data[siz:siz + 16] = struct.pack(">IIII", w, h, 0, 0)
    return bytes(data)


BOMBS = {
    "bomb.jp2": lambda: _jp2_bomb(20000, 20000),
    "bomb.hdr": lambda: b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(99),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_the_header_reader_did_not_parse_are_refused_undecoded(
        tmp_path: Path, ckpt: Path, capsys, monkeypatch, name: str) -> None:
    """A 3.9 KB .jp2 of 20000x20000 cost 6.2 GB before it was refused: now it is refused from
    its header, alone (exit 2, one line) and in a folder (skipped, the rest kept, exit 1)."""
    decoded: list[int] = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: decoded.append(len(buf)) or
                        real(buf, flags))
    bomb = tmp_path / "in" / name
    bomb.parent.mkdir()
    bomb.write_bytes(BOMBS[name]())
    assert predict(bomb, "--weights", ckpt, "--out-dir", tmp_path / "one") == 2
    assert "20000x20000 = 400.0 MP, above the pixel budget" in _one_error_line(
        capsys.readouterr().err)
    _write(tmp_path / "in" / "ok.jpg")
    assert predict(tmp_path / "in", "--weights", ckpt, "--out-dir", tmp_path / "all") == 1
    assert [r["image_id"] for r in _strict_json(tmp_path / "all" / "results.json")] == ["ok.jpg"]
    assert name in capsys.readouterr().err
    assert len(decoded) == 1  # ok.jpg only


def test_a_2gb_jpeg_is_refused_without_being_read(tmp_path: Path, ckpt: Path, capsys) -> None:
    """A 2 GB .jpg was read whole before the budget refused it (sparse file: no disk used)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((10, 10, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0") + 5
    data[sof:sof + 4] = struct.pack(">HH", 40000, 40000)
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(2 << 30)
    tracemalloc.start()
    try:
        rc = predict(path, "--weights", ckpt, "--out-dir", tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 2
    assert "above the pixel budget" in _one_error_line(capsys.readouterr().err)
    assert peak < 256 << 20, f"{peak / 1e6:.0f} MB"

"""Fuzz tests (issue 12, "done when"): random images, boxes, annotation and results files fed to
the readers and to the command line. Whatever comes in: no exception other than `InputError`
from the readers, exit codes 0/1/2 from the CLI (never a traceback or a crash), strictly valid
JSON, and nothing lost (every readable image with a usable box has its results).

Bounded for CI: a few dozen examples per reader, a handful of CLI runs with a tiny model."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import tiny_simple_model

import vitpose
from vitpose.cli.main import main
from vitpose.errors import InputError
from vitpose.inference.builder import read_image_ids
from vitpose.inference.detectors import (
    load_box_mapping,
    load_coco_detections,
    load_image_ids,
    sanitize_boxes,
)
from vitpose.inference.io import header_size, read_image

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

@st.composite
def encoded_images(draw) -> bytes:
    """A real encoded image, often damaged: bytes flipped, cut, or a header lying about size."""
    h, w = draw(st.integers(8, 48)), draw(st.integers(8, 48))
    channels = draw(st.sampled_from([1, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    ext = draw(st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp"]))
    if ext in (".jpg", ".bmp", ".webp"):
        dtype = np.uint8
    if ext == ".jpg" and channels == 4:
        channels = 3
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, (h, w, channels),
                                                  dtype=dtype, endpoint=True)
    ok, buf = cv2.imencode(ext, pixels[..., 0] if channels == 1 else pixels)
    data = bytearray(buf.tobytes() if ok else b"")
    damage = draw(st.sampled_from(["none", "none", "none", "flip", "cut", "huge", "junk"]))
    if damage == "flip" and data:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif damage == "cut" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif damage == "huge" and ext == ".png":  # IHDR claims 60000 x 60000
        data[16:24] = struct.pack(">II", 60000, 60000)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    elif damage == "junk":
        data = bytearray(draw(st.binary(max_size=200)))
    return bytes(data)


# mostly inside the (small) images, sometimes outside, sometimes NaN / inf / huge
numbers = st.one_of(st.floats(0, 30), st.integers(0, 30), st.floats(0, 30),
                    st.integers(-10, 100), st.floats(allow_nan=True, allow_infinity=True))
boxes = st.integers(4, 5).flatmap(  # one image's boxes: x, y, w, h[, score]; rarely mixed
    lambda n: st.lists(st.lists(numbers, min_size=n, max_size=n), min_size=1, max_size=3))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(
                                ["images", "id", "file_name", "image_id", "bbox", "score",
                                 "category_id", "keypoints", "annotations", "x"]),
                                inner, max_size=5)),
    max_leaves=20)


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------

@FAST
@given(data=encoded_images())
def test_read_image_returns_rgb_or_input_error(data):
    assert header_size(data) is None or len(header_size(data)) == 2
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.img"
        path.write_bytes(data)
        try:
            image = read_image(path)
        except InputError as e:
            assert "x.img" in str(e)
            return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= 100_000_000


@FAST
@given(value=json_values)
def test_annotation_and_detection_readers_take_any_json(value):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.json"
        path.write_text(json.dumps(value))
        for reader in (read_image_ids, load_image_ids, load_coco_detections, load_box_mapping):
            try:
                reader(str(path))
            except InputError:
                pass


# numbers of every kind JSON can hold: some beyond a float, infinite, fractional
json_numbers = st.one_of(st.integers(-5, 10**6), st.integers(10**300, 10**400),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
detection_entries = st.lists(st.fixed_dictionaries(
    {"image_id": json_numbers, "bbox": st.lists(json_numbers, min_size=3, max_size=5)},
    optional={"score": json_numbers, "category_id": st.sampled_from([1, 2])}), max_size=4)
image_entries = st.lists(st.fixed_dictionaries(
    {"id": st.one_of(st.integers(0, 3), json_numbers),
     "file_name": st.one_of(st.sampled_from(["a.jpg", "b.jpg", "d/a.jpg"]), json_values)}),
    max_size=4)


@FAST
@given(dets=detection_entries, images=image_entries, boxes=st.lists(json_numbers, max_size=5))
def test_detection_files_with_any_numbers_give_boxes_or_input_error(dets, images, boxes):
    """Detections, images and box files whose numbers are huge, infinite, fractional or text:
    boxes keyed as documented, or one InputError (never an OverflowError or a lost image)."""
    with tempfile.TemporaryDirectory() as d:
        det_path, images_path, box_path = (Path(d) / n for n in ("d.json", "i.json", "b.json"))
        det_path.write_text(json.dumps(dets))
        images_path.write_text(json.dumps({"images": images}))
        box_path.write_text(json.dumps({"a.jpg": [boxes]}))
        for read in (lambda: load_coco_detections(det_path),
                     lambda: load_coco_detections(det_path, images_path),
                     lambda: load_image_ids(images_path), lambda: load_box_mapping(box_path)):
            try:
                out = read()
            except InputError as e:
                assert ".json" in str(e)
                continue
            assert all(not isinstance(v, np.ndarray) or (v.dtype == np.float32 and
                                                          v.shape[1:] == (5,))
                       for v in out.values())
        try:
            ids = load_image_ids(images_path)
        except InputError:
            return
        names = {im["file_name"] for im in images}
        assert set(load_coco_detections(det_path if _readable(det_path) else _empty(d),
                                        images_path)) == names  # every listed image kept
        assert len(set(ids.values())) == len({im["id"] for im in images})


def _readable(path: Path) -> bool:
    try:
        load_coco_detections(path)
    except InputError:
        return False
    return True


def _empty(folder: str) -> Path:
    path = Path(folder) / "none.json"
    path.write_text("[]")
    return path


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return vitpose.save_checkpoint(tiny_simple_model(), tmp_path_factory.mktemp("fz") / "t.pth")


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"invalid JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _predict_error(*args: object) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["predict", *map(str, args), "--device", "cpu", "--backend", "torch"])
    return rc, err.getvalue()


@pytest.mark.parametrize("option", ["--det-file", "--boxes-json"])
@pytest.mark.parametrize("content", ["[" * 100_000, "[" + "9" * 5000 + "]",
                                     '{"a.jpg": [[0, 0, 1' + "0" * 400 + ', 5]]}'])
def test_predict_with_a_malformed_box_file_is_one_error(ckpt, data_dir, tmp_path, option,
                                                        content):
    """Deep nesting, a 5000-digit integer, a number beyond a float: exit 2 with one line
    naming the file, nothing written (a RecursionError / ValueError / OverflowError traceback
    before)."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "out"
    rc, err = _predict_error(data_dir / "coco" / "000000000785.jpg", "--model", ckpt, option,
                             bad, "--out-dir", out)
    assert rc == 2 and err.startswith("error:") and "bad.json" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("images, message", [
    ([(785, "000000000785.jpg"), (785, "000000040083.jpg")], "image id 785 is given to two files"),
    ([(785, "000000000785.jpg"), (786, "000000000785.jpg")], "is listed twice, with ids 785 and 786"),
])
def test_predict_refuses_an_images_file_that_would_lose_detections(ckpt, data_dir, tmp_path,
                                                                   images, message):
    """``--images-file`` giving one id to two files (or two ids to one file) would give one
    image's detections to the other: refused before anything runs (accepted silently
    before)."""
    images_file = tmp_path / "images.json"
    images_file.write_text(json.dumps({"images": [{"id": i, "file_name": n} for i, n in images]}))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 785, "bbox": [10, 10, 50, 80], "score": 0.9,
                                 "category_id": 1}]))
    out = tmp_path / "out"
    rc, err = _predict_error(data_dir / "coco", "--model", ckpt, "--det-file", dets,
                             "--images-file", images_file, "--out-dir", out)
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not out.exists()


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(files=st.lists(encoded_images(), min_size=1, max_size=4),
       box_lists=st.lists(boxes, min_size=4, max_size=4), draw=st.booleans())
def test_predict_on_random_folders_and_boxes(ckpt, files, box_lists, draw):
    logging.disable(logging.WARNING)  # the warnings about bad boxes are expected here
    try:
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d) / "in"
            folder.mkdir()
            names = [f"im{i}.png" for i in range(len(files))]
            for name, data in zip(names, files):
                (folder / name).write_bytes(data)
            box_file = Path(d) / "boxes.json"
            box_file.write_text(json.dumps(dict(zip(names, box_lists))))
            out = Path(d) / "out"
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main(["predict", str(folder), "--model", str(ckpt), "--boxes-json",
                           str(box_file), "--out-dir", str(out), "--device", "cpu"]
                          + ([] if draw else ["--no-draw"]))
            assert rc in (0, 1, 2), err.getvalue()
            assert "Traceback" not in err.getvalue()
            try:
                mapping = load_box_mapping(box_file)
            except InputError:  # a malformed box file: refused before anything is written
                hypothesis.event("box file refused")
                assert rc == 2 and not out.exists()
                return
            expected: dict[str, int] = {}  # readable image -> usable boxes
            for name in names:
                try:
                    image = read_image(folder / name)
                except InputError:
                    assert rc != 0 and (len(names) == 1 or name in err.getvalue())
                    continue
                kept, _ = sanitize_boxes(mapping[name], image.shape[:2])
                expected[name] = len(kept)
            if rc == 2:  # a single unreadable image: nothing written
                assert len(names) == 1 and not (out / "results.json").exists()
                return
            hypothesis.event(f"exit {rc}, {sum(map(bool, expected.values()))} image(s) with "
                             "results")
            results = _strict((out / "results.json").read_text())
            got: dict[str, int] = {}
            for r in results:
                got[r["image_id"]] = got.get(r["image_id"], 0) + 1
            assert got == {n: k for n, k in expected.items() if k}  # nothing lost, no extra
            assert not (out / "results.json.partial.jsonl").exists()
            if draw:
                assert {p.name for p in out.glob("*_pose.png")} == \
                    {n.replace(".png", "_pose.png") for n in expected}
    finally:
        logging.disable(logging.NOTSET)


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.one_of(json_values, st.fixed_dictionaries({
    "image_id": st.one_of(st.sampled_from([785, 40083, "000000000785.jpg", "nope.jpg"]),
                          json_values),
    "category_id": st.sampled_from([1, 2, "1"]),
    "keypoints": st.lists(numbers.filter(math.isfinite),
                          min_size=0, max_size=51),
    "score": numbers.filter(lambda v: not math.isnan(v))})), max_size=4))
def test_evaluate_on_random_results_files(data_dir, entries):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.json"
        path.write_text(json.dumps(entries))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["evaluate", "--dataset", "coco", "--ann",
                       str(data_dir / "coco" / "test_coco.json"), "--results", str(path),
                       "--json"])
        assert rc in (0, 2), err.getvalue()
        if rc == 0:
            _strict(out.getvalue())
        else:
            assert err.getvalue().startswith("error:") and "Traceback" not in err.getvalue()

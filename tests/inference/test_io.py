"""Tests for vitpose.inference.io: image decoding edge cases and input discovery."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from vitpose.errors import InputError
from vitpose.inference.io import (
    HARD_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    apply_exif_orientation,
    exif_orientation,
    header_size,
    iter_inputs,
    json_safe,
    opencv_path,
    printable_name,
    read_image,
    write_image,
)

# ------------------------------------------------------------------ helpers: hand-built files


def _tiff_block(orientation: int, order: str = "MM") -> bytes:
    e = ">" if order == "MM" else "<"
    ifd = struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return order.encode() + struct.pack(e + "HI", 42, 8) + ifd + struct.pack(e + "I", 0)


def _jpeg_with_exif(jpeg: bytes, orientation: int, order: str = "MM") -> bytes:
    payload = b"Exif\x00\x00" + _tiff_block(orientation, order)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _png_insert_exif(png: bytes, orientation: int) -> bytes:
    """Inserts an eXIf chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    cut = 8 + 25
    return png[:cut] + _png_chunk(b"eXIf", _tiff_block(orientation, "II")) + png[cut:]


def _palette_png(indices: np.ndarray, palette: list[tuple[int, int, int]]) -> bytes:
    h, w = indices.shape
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8-bit, colour type 3 (palette)
    raw = b"".join(b"\x00" + bytes(row.astype(np.uint8).tolist()) for row in indices)
    plte = b"".join(bytes(c) for c in palette)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", plte)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _marker_image() -> np.ndarray:
    """40x60 BGR image, dark, with a bright red block in the stored top-left corner."""
    img = np.full((40, 60, 3), 20, np.uint8)
    img[:10, :20] = (0, 0, 255)
    return img


def _red_centroid(rgb: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero((rgb[..., 0] > 150) & (rgb[..., 1] < 100))
    return float(ys.mean()), float(xs.mean())


# ------------------------------------------------------------------ read_image


def test_read_coco_jpeg_matches_opencv_rgb(data_dir: Path) -> None:
    path = data_dir / "coco" / "000000000785.jpg"
    img = read_image(path)
    ref = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert img.dtype == np.uint8 and img.shape == ref.shape == (425, 640, 3)
    np.testing.assert_array_equal(img, ref)


def test_grayscale_png_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (7, 1))
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), gray)
    img = read_image(path)
    assert img.shape == (7, 25, 3) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], gray)


def test_rgba_is_composited_over_background(tmp_path: Path) -> None:
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., :3] = (255, 128, 0)  # BGR: RGB (0, 128, 255)
    bgra[:, :2, 3] = 255  # opaque
    bgra[:, 2:4, 3] = 0  # transparent
    bgra[:, 4:, 3] = 128  # half
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), bgra)
    img = read_image(path)
    assert img.shape == (4, 6, 3)
    np.testing.assert_array_equal(img[:, :2], np.broadcast_to([0, 128, 255], (4, 2, 3)))
    np.testing.assert_array_equal(img[:, 2:4], 0)
    np.testing.assert_allclose(img[:, 4:], np.broadcast_to([0, 64, 128], (4, 2, 3)), atol=1)
    white = read_image(path, background=(255, 255, 255))
    np.testing.assert_array_equal(white[:, 2:4], 255)


def test_sixteen_bit_is_scaled_to_eight_bit(tmp_path: Path) -> None:
    g16 = np.array([[0, 257 * 100, 65535, 65535 // 2]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    cv2.imwrite(str(path), g16)
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (1, 4, 3)
    np.testing.assert_array_equal(img[0, :, 0], [0, 100, 255, 127])

    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[..., 2] = 65535  # red
    bgr16[..., 0] = 257 * 10  # a little blue
    path = tmp_path / "c16.png"
    cv2.imwrite(str(path), bgr16)
    np.testing.assert_array_equal(read_image(path)[0, 0], [255, 0, 10])


def test_palette_png(tmp_path: Path) -> None:
    idx = np.array([[0, 1, 1], [1, 0, 2]])
    palette = [(10, 20, 30), (200, 100, 50), (0, 255, 0)]
    path = tmp_path / "pal.png"
    path.write_bytes(_palette_png(idx, palette))
    img = read_image(path)
    assert img.shape == (2, 3, 3)
    np.testing.assert_array_equal(img, np.asarray(palette, np.uint8)[idx])


@pytest.mark.parametrize("order", ["MM", "II"])
def test_exif_orientation_matches_opencv_for_all_values(tmp_path: Path, order: str) -> None:
    ok, buf = cv2.imencode(".jpg", _marker_image(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}_{order}.jpg"
        path.write_bytes(_jpeg_with_exif(buf.tobytes(), orientation, order))
        assert exif_orientation(path.read_bytes()) == orientation
        img = read_image(path)
        ref = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]  # OpenCV's own EXIF handling
        np.testing.assert_array_equal(img, ref)
        expect_hw = (40, 60) if orientation <= 4 else (60, 40)
        assert img.shape[:2] == expect_hw


def test_exif_orientation_six_turns_clockwise(tmp_path: Path) -> None:
    _, buf = cv2.imencode(".jpg", _marker_image(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    path = tmp_path / "rot.jpg"
    path.write_bytes(_jpeg_with_exif(buf.tobytes(), 6))
    img = read_image(path)
    assert img.shape == (60, 40, 3)
    cy, cx = _red_centroid(img)
    # stored top-left block ends up top-right after a clockwise quarter turn
    assert cy < 15 and cx > 25


def test_png_exif_with_alpha_is_rotated(tmp_path: Path) -> None:
    bgra = np.zeros((40, 60, 4), np.uint8)
    bgra[..., 3] = 255
    bgra[:10, :20] = (0, 0, 255, 255)
    _, buf = cv2.imencode(".png", bgra)
    path = tmp_path / "rot.png"
    path.write_bytes(_png_insert_exif(buf.tobytes(), 8))
    img = read_image(path)
    assert img.shape == (60, 40, 3)
    cy, cx = _red_centroid(img)
    assert cy > 45 and cx < 15  # counter-clockwise quarter turn: top-left -> bottom-left


def test_apply_exif_orientation_is_invertible_for_flips() -> None:
    a = np.arange(12).reshape(3, 4)
    for o in (2, 3, 4):
        np.testing.assert_array_equal(apply_exif_orientation(apply_exif_orientation(a, o), o), a)
    assert apply_exif_orientation(a, 6).shape == (4, 3)
    np.testing.assert_array_equal(apply_exif_orientation(a, 1), a)


def test_malformed_exif_is_ignored(tmp_path: Path) -> None:
    _, buf = cv2.imencode(".jpg", _marker_image())
    payload = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff"  # IFD offset far past the end
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = buf.tobytes()[:2] + app1 + buf.tobytes()[2:]
    assert exif_orientation(data) == 1
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(data)
    assert read_image(path).shape == (40, 60, 3)


@pytest.mark.parametrize(
    "name, content",
    [("garbage.jpg", b"this is not an image at all"), ("empty.png", b""), ("trunc.png", None)],
)
def test_unreadable_files_raise_input_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    if content is None:
        _, buf = cv2.imencode(".png", _marker_image())
        content = buf.tobytes()[:40]
    path.write_bytes(content)
    with pytest.raises(InputError, match=name):
        read_image(path)


def test_missing_file_and_folder_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


# ------------------------------------------------------------------ iter_inputs


def _touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")


def test_iter_inputs_single_image_and_video(data_dir: Path) -> None:
    img = data_dir / "coco" / "000000000785.jpg"
    spec = iter_inputs(str(img))
    assert spec.kind == "image" and spec.image_paths == (img,) and not spec.is_video
    vid = iter_inputs(data_dir / "video" / "demo.mp4")
    assert vid.kind == "video" and vid.is_video and vid.video_source.endswith("demo.mp4")
    assert vid.image_paths == ()


def test_iter_inputs_folder_is_filtered_and_naturally_sorted(tmp_path: Path) -> None:
    _touch_images(tmp_path / "f", ["img10.jpg", "img2.PNG", "img1.jpeg", "notes.txt", ".hid.jpg"])
    (tmp_path / "f" / "sub").mkdir()
    spec = iter_inputs(tmp_path / "f")
    assert spec.kind == "folder"
    assert [p.name for p in spec.image_paths] == ["img1.jpeg", "img2.PNG", "img10.jpg"]
    assert len(spec) == 3


def test_iter_inputs_recursive_folder(tmp_path: Path) -> None:
    _touch_images(tmp_path / "r", ["a.jpg"])
    _touch_images(tmp_path / "r" / "deeper", ["b.jpg"])
    assert len(iter_inputs(tmp_path / "r")) == 1
    assert len(iter_inputs(tmp_path / "r", recursive=True)) == 2


def test_iter_inputs_glob(tmp_path: Path) -> None:
    _touch_images(tmp_path / "g", ["x1.png", "x3.png", "y.png", "x2.mp4"])
    spec = iter_inputs(str(tmp_path / "g" / "x*"))
    assert spec.kind == "glob"
    assert [p.name for p in spec.image_paths] == ["x1.png", "x3.png"]
    with pytest.raises(InputError, match="no image"):
        iter_inputs(str(tmp_path / "g" / "z*.png"))
    with pytest.raises(InputError, match="only videos"):
        iter_inputs(str(tmp_path / "g" / "*.mp4"))


def test_iter_inputs_webcam_and_stream() -> None:
    assert iter_inputs("0").kind == "webcam" and iter_inputs("0").video_source == 0
    assert iter_inputs(1).video_source == 1
    s = iter_inputs("rtsp://camera.local/stream")
    assert s.kind == "stream" and s.is_video


def test_iter_inputs_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        iter_inputs(tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        iter_inputs(str(tmp_path / "missing.jpg"))
    (tmp_path / "data.xyz").write_bytes(b"1")
    with pytest.raises(InputError, match="extension"):
        iter_inputs(tmp_path / "data.xyz")
    with pytest.raises(InputError):
        iter_inputs("")


# ------------------------------------------------------------------ pixel budget (issue 12 item 1)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".gif"])
def test_header_size_matches_the_decoded_size(ext: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image[..., 0] if ext == ".pgm" else image)
    if not ok:
        pytest.skip(f"no {ext} encoder in this OpenCV build")
    data = buf.tobytes()
    assert header_size(data) == cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).shape[:2] == (37, 53)
    assert header_size(data[:40]) in (None, (37, 53))  # a cut header never raises


def test_header_size_of_lossless_webp_and_unknown_formats() -> None:
    image = np.zeros((21, 34, 3), np.uint8)
    ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])  # VP8L
    assert ok and header_size(buf.tobytes()) == (21, 34)
    assert header_size(b"") is None and header_size(b"hello world") is None


def test_budget_refuses_before_decoding(tmp_path: Path, monkeypatch) -> None:
    image = np.zeros((40, 50, 3), np.uint8)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), image)
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    with pytest.raises(InputError, match=r"x\.png is 50x40 = 0\.0 MP, above the pixel budget"):
        read_image(path, max_pixels=1999)
    assert not decoded  # refused from the header
    assert read_image(path, max_pixels=2000).shape == (40, 50, 3)
    monkeypatch.setenv("VITPOSE_MAX_PIXELS", "1999")
    with pytest.raises(InputError, match="pixel budget"):
        read_image(path)
    monkeypatch.setenv("VITPOSE_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="VITPOSE_MAX_PIXELS"):
        read_image(path)
    with pytest.raises(InputError, match="between 1 and"):
        read_image(path, max_pixels=HARD_MAX_PIXELS + 1)


def _no_decode(monkeypatch) -> list[int]:
    """Records every cv2.imdecode call (the tests assert none happened)."""
    decoded: list[int] = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    return decoded


@pytest.mark.parametrize("ext", [".jp2", ".hdr", ".pic", ".sr", ".ras", ".avif", ".pbm", ".exr"])
def test_header_size_of_the_other_accepted_formats(ext: str) -> None:
    """Every accepted format's header gives the decoded size (encoders this OpenCV has)."""
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    if ext in (".hdr", ".pic", ".exr"):
        image = image.astype(np.float32) / 255
    try:
        ok, buf = cv2.imencode(ext, image[..., 0] if ext == ".pbm" else image)
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"no {ext} encoder in this OpenCV build")
    assert header_size(buf.tobytes()) == (37, 53)
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if decoded is not None:
        assert decoded.shape[:2] == (37, 53)


def _jp2_bomb(h: int, w: int) -> bytes:
    """A small JPEG 2000 file whose header declares h x w (a real encoding, header patched)."""
    ok, buf = cv2.imencode(".jp2", np.zeros((64, 64, 3), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    ihdr = data.index(b"ihdr") + 4
    data[ihdr:ihdr + 8] = struct.pack(">II", h, w)
    siz = data.index(b"\xff\x4f\xff\x51") + 8
    data[siz:siz + 16] = struct.pack(">IIII", w, h, 0, 0)
    return bytes(data)


def test_bombs_in_every_accepted_format_are_refused_before_decoding(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """JPEG 2000 and Radiance HDR bombs (a few KB declaring 20000x20000) were decoded before the
    budget was checked (6.2 GB); now their headers are read like the others'."""
    decoded = _no_decode(monkeypatch)
    bombs = {
        "bomb.jp2": _jp2_bomb(20000, 20000),
        "bomb.hdr": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(64),
        "bomb.ras": struct.pack(">I7i", 0x59A66A95, 20000, 20000, 24, 0, 1, 0, 0),
    }
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=rf"{name} is 20000x20000 = 400\.0 MP, above the "):
            read_image(tmp_path / name)
    assert not decoded


def test_a_file_whose_header_gives_no_size_is_not_decoded(tmp_path: Path, monkeypatch) -> None:
    decoded = _no_decode(monkeypatch)
    for ext in sorted(IMAGE_EXTENSIONS):
        path = tmp_path / f"x{ext}"
        path.write_bytes(b"\x00" * 100)
        with pytest.raises(InputError, match=r"cannot decode image file .*no image size in its "
                                             r"header"):
            read_image(path)
    assert not decoded


def test_a_huge_file_is_refused_from_its_header_without_being_read(tmp_path: Path) -> None:
    """A 2 GB JPEG was read whole before the budget refused it: now the header decides, and a
    file far larger than the image it declares is not read either (sparse files: no disk)."""
    import tracemalloc

    ok, buf = cv2.imencode(".jpg", np.zeros((10, 10, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0") + 5
    big = bytes(data[:sof]) + struct.pack(">HH", 50000, 50000) + bytes(data[sof + 4:])
    cases = {"big.jpg": (big, "above the pixel budget"), "padded.jpg": (bytes(data), "more than")}
    for name, (content, message) in cases.items():
        path = tmp_path / name
        with open(path, "wb") as f:
            f.write(content)
            f.truncate(2 << 30)
        tracemalloc.start()
        try:
            with pytest.raises(InputError, match=message):
                read_image(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, peak


def _tiff(bgr: np.ndarray, orientation: int) -> bytes:
    """An uncompressed little-endian TIFF (3 or 4 samples) with an Orientation tag."""
    h, w, c = bgr.shape
    pixels = bgr[..., [2, 1, 0, 3][:c]].tobytes()
    n = 11 if c == 4 else 10
    bps_at = 8 + 2 + 12 * n + 4
    data_at = bps_at + 2 * c
    entries = [(256, 4, 1, struct.pack("<I", w)), (257, 4, 1, struct.pack("<I", h)),
               (258, 3, c, struct.pack("<I", bps_at)), (259, 3, 1, struct.pack("<HH", 1, 0)),
               (262, 3, 1, struct.pack("<HH", 2, 0)), (273, 4, 1, struct.pack("<I", data_at)),
               (274, 3, 1, struct.pack("<HH", orientation, 0)),
               (277, 3, 1, struct.pack("<HH", c, 0)), (278, 4, 1, struct.pack("<I", h)),
               (279, 4, 1, struct.pack("<I", len(pixels)))]
    if c == 4:
        entries.append((338, 3, 1, struct.pack("<HH", 2, 0)))  # unassociated alpha
    ifd = struct.pack("<H", n) + b"".join(struct.pack("<HHI", t, k, m) + v
                                          for t, k, m, v in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack(f"<{c}H", *[8] * c) + pixels


@pytest.mark.parametrize("channels", [3, 4])
def test_tiff_orientation_is_applied_once_like_jpeg(tmp_path: Path, channels: int) -> None:
    """OpenCV's TIFF decoder turns TIFFs itself, and the EXIF step turned them again: 3, 6 and
    8 (and the mirrors) ended in the wrong frame. All eight must give JPEG's upright image."""
    marker = _marker_image()
    ok, jpg = cv2.imencode(".png", marker)  # lossless reference through the JPEG-like path
    for orientation in range(1, 9):
        bgr = marker if channels == 3 else np.dstack([marker, np.full(marker.shape[:2], 255,
                                                                       np.uint8)])
        tif = tmp_path / f"o{orientation}.tif"
        tif.write_bytes(_tiff(bgr, orientation))
        png = tmp_path / f"o{orientation}.png"
        png.write_bytes(_png_insert_exif(jpg.tobytes(), orientation))
        np.testing.assert_array_equal(read_image(tif), read_image(png), err_msg=str(orientation))
        ref = _jpeg_with_exif(cv2.imencode(".jpg", marker, [cv2.IMWRITE_JPEG_QUALITY, 100])[1]
                              .tobytes(), orientation)
        (tmp_path / "r.jpg").write_bytes(ref)
        assert _red_centroid(read_image(tif)) == pytest.approx(
            _red_centroid(read_image(tmp_path / "r.jpg")), abs=1.0)


def test_budget_applies_to_radiance_hdr_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "x.hdr"
    ok, buf = cv2.imencode(".hdr", np.ones((40, 50, 3), np.float32))
    if not ok:
        pytest.skip("no Radiance HDR encoder")
    path.write_bytes(buf.tobytes())
    assert header_size(path.read_bytes()) == (40, 50)
    decoded = _no_decode(monkeypatch)
    with pytest.raises(InputError, match="pixel budget"):
        read_image(path, max_pixels=1999)
    assert not decoded
    assert read_image(path, max_pixels=2000).shape == (40, 50, 3)


def test_opencv_size_limit_is_set_before_cv2_is_imported(tmp_path: Path) -> None:
    """The OPENCV_IO_MAX_IMAGE_PIXELS backstop: OpenCV reads it when cv2 is first imported, which
    happened before vitpose set it. A child interpreter imports the io package (which imports
    cv2) and decodes a 28000x28000 PNG header: OpenCV itself must refuse it."""
    comp = zlib.compressobj()
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 28000, 28000,
                                                                   8, 0, 0, 0, 0))
           + _png_chunk(b"IDAT", comp.compress(bytes(28001)) + comp.flush()))
    (tmp_path / "bomb.png").write_bytes(png)
    code = ("import sys; from vitpose.inference.io import HARD_MAX_PIXELS; import cv2, numpy as np\n"
            "data = np.fromfile(sys.argv[1], np.uint8)\n"
            "try:\n    cv2.imdecode(data, cv2.IMREAD_UNCHANGED)\n    print('decoded')\n"
            "except cv2.error as e:\n    print('refused' if 'MAX_IMAGE_PIXELS' in str(e) else e)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    import vitpose
    env["PYTHONPATH"] = str(Path(vitpose.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bomb.png")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "refused", (out.stdout, out.stderr[-2000:])
    assert str(HARD_MAX_PIXELS) == str((2**31 - 1) // 3)


# ------------------------------------------------------------------ names that are not UTF-8


BAD = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not valid UTF-8 (a lone surrogate in Python)


def test_printable_name_and_json_safe() -> None:
    assert printable_name("caf\u00e9.jpg") == "caf\u00e9.jpg"  # valid UTF-8 names are unchanged
    assert printable_name(BAD + ".jpg") == "caf\\xe9.jpg"
    assert printable_name(b"caf\xe9.jpg") == "caf\\xe9.jpg"
    assert printable_name("a\ud800") == "a\\ud800"  # a surrogate that is no escaped byte
    value = json_safe({"image_id": BAD + ".jpg", BAD: [1.5, BAD, None], "n": 3})
    text = json.dumps(value)
    text.encode("utf-8", "strict")
    assert "\\ud" not in text and json.loads(text)["image_id"] == "caf\\xe9.jpg"


def test_images_with_names_that_are_not_utf8_are_read_and_written(tmp_path: Path) -> None:
    """OpenCV's imwrite/imread crash (segfault) on such names; we encode and decode in memory."""
    folder = tmp_path / BAD
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = write_image(folder / f"{BAD}.png", image)
    assert os.fsencode(path).endswith(b"caf\xe9/caf\xe9.png")
    np.testing.assert_array_equal(read_image(path), image)
    assert iter_inputs(str(folder)).image_paths == (path,)


def test_opencv_path_opens_videos_whose_names_are_not_utf8(tmp_path: Path) -> None:
    video = tmp_path / f"{BAD}.avi"
    with opencv_path(video) as name:
        name.encode("ascii")
        writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
        assert writer.isOpened()
        for i in range(3):
            writer.write(np.full((24, 32, 3), 60 * i, np.uint8))
        writer.release()
        link_folder = Path(name).parent
    assert not link_folder.exists()  # the link is removed
    assert video.stat().st_size > 0
    with opencv_path(video) as name:
        cap = cv2.VideoCapture(name)
        frames = 0
        while cap.read()[0]:
            frames += 1
        cap.release()
    assert frames == 3
    plain = tmp_path / "plain.avi"
    with opencv_path(plain) as name:  # UTF-8 names pass through
        assert name == str(plain)

"""Tests for vitpose.inference.io: image decoding edge cases and input discovery."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from vitpose.errors import InputError
from vitpose.inference.io import (
    HARD_MAX_PIXELS,
    apply_exif_orientation,
    exif_orientation,
    header_size,
    iter_inputs,
    read_image,
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


def test_budget_is_checked_after_decoding_formats_without_a_parsed_header(tmp_path: Path) -> None:
    path = tmp_path / "x.hdr"
    if not cv2.imwrite(str(path), np.ones((40, 50, 3), np.float32)):
        pytest.skip("no Radiance HDR encoder")
    assert header_size(path.read_bytes()) is None
    with pytest.raises(InputError, match="pixel budget"):
        read_image(path, max_pixels=1999)
    assert read_image(path, max_pixels=2000).shape == (40, 50, 3)

"""What an encoded image says about itself, read without decoding it: its size (for the pixel
budget) and its EXIF orientation.

Every parser takes a ``read(offset, n) -> bytes`` function, so the same code reads a file
through seeks (a 2 GB file costs a few reads, not 2 GB) or bytes already in memory. Short reads,
damaged or hostile headers give None (size) or 1 (orientation), never an exception.

Sizes are read for every format `read_image` accepts: PNG, JPEG, GIF, BMP, WebP, TIFF (also
BigTIFF), PNM, Sun raster, JPEG 2000 (JP2 boxes and raw codestreams), Radiance HDR, OpenEXR and
AVIF/HEIF (``ispe`` properties).
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable

import numpy as np

__all__ = [
    "apply_exif_orientation",
    "exif_orientation",
    "header_size",
    "neutralize_tiff_orientation",
    "read_header_size",
]

logger = logging.getLogger(__name__)

Reader = Callable[[int, int], bytes]

_ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 100_000  # JPEG segments / boxes walked before giving up (hostile files)


def _bytes_reader(data: bytes | memoryview) -> Reader:
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    return lambda offset, n: bytes(view[offset:offset + n]) if offset >= 0 else b""


def _file_reader(f) -> Reader:
    def read(offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        f.seek(offset)
        return f.read(n)
    return read


# --------------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------------


def _tiff_orientation_entry(read: Reader, base: int = 0) -> tuple[int, int, str] | None:
    """(value, absolute offset of the value, byte order) of the Orientation tag in IFD0 of the
    TIFF structure at `base`, or None."""
    head = read(base, 8)
    if len(head) < 8:
        return None
    end = {b"II": "<", b"MM": ">"}.get(head[:2])
    if end is None:
        return None
    magic, ifd = struct.unpack(end + "HI", head[2:8])
    if magic != 42:
        return None
    raw = read(base + ifd, 2)
    if len(raw) < 2:
        return None
    (count,) = struct.unpack(end + "H", raw)
    entries = read(base + ifd + 2, 12 * count)
    for i in range(len(entries) // 12):
        tag, typ, n = struct.unpack(end + "HHI", entries[12 * i:12 * i + 8])
        if tag != _ORIENTATION_TAG or n < 1:
            continue
        pos = base + ifd + 2 + 12 * i + 8
        if typ == 3:  # SHORT, stored in the first two bytes of the value field
            (value,) = struct.unpack(end + "H", entries[12 * i + 8:12 * i + 10])
        elif typ == 4:  # LONG (non-standard but seen in the wild)
            (value,) = struct.unpack(end + "I", entries[12 * i + 8:12 * i + 12])
        else:
            return None
        return int(value), pos, end
    return None


def _jpeg_exif_offset(read: Reader) -> int | None:
    """Offset of the TIFF block of the first ``Exif`` APP1 segment of a JPEG, or None."""
    pos = 2
    for _ in range(_MAX_SEGMENTS):
        head = read(pos, 4)
        if len(head) < 4 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            return None
        (length,) = struct.unpack(">H", head[2:4])
        if length < 2:
            return None
        if marker == 0xE1 and read(pos + 4, 6) == b"Exif\x00\x00":
            return pos + 10
        pos += 2 + length
    return None


def _png_exif_offset(read: Reader) -> int | None:
    pos = 8
    for _ in range(_MAX_SEGMENTS):
        head = read(pos, 8)
        if len(head) < 8:
            return None
        (length,) = struct.unpack(">I", head[:4])
        ctype = head[4:8]
        if ctype == b"eXIf":
            return pos + 8 + (6 if read(pos + 8, 6) == b"Exif\x00\x00" else 0)
        if ctype == b"IEND":
            return None
        pos += 12 + length
    return None


def _webp_exif_offset(read: Reader) -> int | None:
    pos = 12
    for _ in range(_MAX_SEGMENTS):
        head = read(pos, 8)
        if len(head) < 8:
            return None
        ctype = head[:4]
        (length,) = struct.unpack("<I", head[4:8])
        if ctype == b"EXIF":
            return pos + 8 + (6 if read(pos + 8, 6) == b"Exif\x00\x00" else 0)
        pos += 8 + length + (length & 1)
    return None


def _orientation(read: Reader) -> tuple[int, int, str] | None:
    head = read(0, 12)
    if head[:2] == b"\xff\xd8":
        base = _jpeg_exif_offset(read)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        base = _png_exif_offset(read)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        base = _webp_exif_offset(read)
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        base = 0
    else:
        base = None
    return None if base is None else _tiff_orientation_entry(read, base)


def exif_orientation(data: bytes | memoryview) -> int:
    """Finds the EXIF orientation of an encoded image.

    Args:
        data: the raw bytes of a JPEG, PNG, WebP or TIFF file (any buffer).

    Returns:
        The orientation value 1..8 (1 = upright, also returned when there is no tag or the
        metadata is malformed).
    """
    try:
        found = _orientation(_bytes_reader(data))
    except (struct.error, IndexError, ValueError):  # malformed metadata: keep the pixels as stored
        logger.debug("ignoring malformed EXIF metadata", exc_info=True)
        return 1
    return found[0] if found and 1 <= found[0] <= 8 else 1


def neutralize_tiff_orientation(data: np.ndarray) -> None:
    """Sets the Orientation tag of a TIFF file held in `data` (a writable uint8 array) to 1.

    OpenCV's TIFF decoder applies the tag itself, even for ``IMREAD_UNCHANGED``, where it leaves
    it alone for JPEG, PNG and WebP. With the tag set to 1 every format decodes as stored and
    `apply_exif_orientation` turns it once. Files that are not TIFF, or carry no tag, are left
    as they are.
    """
    if bytes(data[:4]) not in (b"II*\x00", b"MM\x00*"):
        return
    try:
        found = _tiff_orientation_entry(_bytes_reader(memoryview(data)))
    except (struct.error, IndexError, ValueError):
        return
    if found is None or found[0] == 1:
        return
    _, pos, end = found
    data[pos:pos + 2] = np.frombuffer(struct.pack(end + "H", 1), np.uint8)


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turns an image decoded as stored into its upright view.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array as stored in the file.
        orientation: EXIF orientation 1..8 (other values are treated as 1).

    Returns:
        A C-contiguous array; for orientations 5..8 height and width are swapped.
    """
    if orientation == 2:  # mirrored left-right
        out = image[:, ::-1]
    elif orientation == 3:  # rotated 180
        out = image[::-1, ::-1]
    elif orientation == 4:  # mirrored top-bottom
        out = image[::-1]
    elif orientation == 5:  # transpose (mirror about the main diagonal)
        out = image.swapaxes(0, 1)
    elif orientation == 6:  # stored rotated 90 counter-clockwise: turn 90 clockwise
        out = image[::-1].swapaxes(0, 1)
    elif orientation == 7:  # transverse (mirror about the anti-diagonal)
        out = image[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:  # stored rotated 90 clockwise: turn 90 counter-clockwise
        out = image[:, ::-1].swapaxes(0, 1)
    else:
        return image
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------------------------
# Image size from the header
# --------------------------------------------------------------------------------------------

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(read: Reader) -> tuple[int, int] | None:
    pos = 2
    for _ in range(_MAX_SEGMENTS):
        head = read(pos, 4)
        if len(head) < 4 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[2:4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", read(pos + 5, 4))
            return h, w
        if marker in (0xDA, 0xD9) or length < 2:
            return None
        pos += 2 + length
    return None


def _tiff_size(read: Reader) -> tuple[int, int] | None:
    head = read(0, 16)
    end = "<" if head[:2] == b"II" else ">"
    (magic,) = struct.unpack(end + "H", head[2:4])
    if magic == 43:  # BigTIFF: 8-byte offsets and counts, 20-byte entries
        (ifd,) = struct.unpack(end + "Q", head[8:16])
        (count,) = struct.unpack(end + "Q", read(ifd, 8))
        entries, size, first = read(ifd + 8, 20 * min(count, 65535)), 20, 12
    else:
        (ifd,) = struct.unpack(end + "I", head[4:8])
        (count,) = struct.unpack(end + "H", read(ifd, 2))
        entries, size, first = read(ifd + 2, 12 * count), 12, 8
    found: dict[int, int] = {}
    for i in range(len(entries) // size):
        entry = entries[i * size:(i + 1) * size]
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
            fmt = end + {3: "H", 4: "I", 16: "Q"}.get(typ, "I")
            (found[tag],) = struct.unpack(fmt, entry[first:first + struct.calcsize(fmt)])
    return (found[257], found[256]) if len(found) == 2 else None


def _pnm_size(read: Reader) -> tuple[int, int] | None:
    text = re.sub(rb"#[^\n]*", b" ", read(2, 510))  # comments may sit between the numbers
    numbers = re.findall(rb"\d+", text)
    return (int(numbers[1]), int(numbers[0])) if len(numbers) >= 2 else None


def _j2k_codestream_size(read: Reader, pos: int) -> tuple[int, int] | None:
    """SIZ marker right after SOC: Xsiz, Ysiz, XOsiz, YOsiz."""
    siz = read(pos, 24)
    if siz[:4] != b"\xff\x4f\xff\x51":
        return None
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", siz[8:24])
    return max(ysiz - yo, 0), max(xsiz - xo, 0)


def _boxes(read: Reader, start: int, stop: int | None):
    """(type, content offset, content end) of the ISO/JP2 boxes between start and stop."""
    pos = start
    for _ in range(_MAX_SEGMENTS):
        if stop is not None and pos + 8 > stop:
            return
        head = read(pos, 16)
        if len(head) < 8:
            return
        (length,) = struct.unpack(">I", head[:4])
        kind = head[4:8]
        body = pos + 8
        if length == 1:  # 64-bit length
            if len(head) < 16:
                return
            (length,) = struct.unpack(">Q", head[8:16])
            body = pos + 16
        elif length == 0:  # to the end of the file (or of the parent)
            yield kind, body, stop
            return
        if length < body - pos:
            return
        yield kind, body, pos + length
        pos += length


def _jp2_size(read: Reader) -> tuple[int, int] | None:
    for kind, body, end in _boxes(read, 0, None):
        if kind == b"jp2h":
            for sub, sbody, _ in _boxes(read, body, end):
                if sub == b"ihdr":
                    h, w = struct.unpack(">II", read(sbody, 8))
                    return h, w
        if kind == b"jp2c":
            return _j2k_codestream_size(read, body)
    return None


def _isobmff_size(read: Reader) -> tuple[int, int] | None:
    """AVIF/HEIF: the largest ``ispe`` (image spatial extent) in ``meta/iprp/ipco``."""
    sizes: list[tuple[int, int]] = []
    for kind, body, end in _boxes(read, 0, None):
        if kind != b"meta":
            continue
        for sub, sbody, send in _boxes(read, body + 4, end):  # meta is a full box
            if sub != b"iprp":
                continue
            for prop, pbody, pend in _boxes(read, sbody, send):
                if prop != b"ipco":
                    continue
                for item, ibody, _ in _boxes(read, pbody, pend):
                    if item == b"ispe":
                        w, h = struct.unpack(">II", read(ibody + 4, 8))
                        sizes.append((h, w))
        break
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def _radiance_size(read: Reader) -> tuple[int, int] | None:
    """Radiance HDR: text header lines, a blank line, then ``-Y H +X W`` (any signs/order)."""
    head = read(0, 1 << 16)
    blank = head.find(b"\n\n")
    if blank < 0:
        return None
    line = head[blank + 2:].split(b"\n", 1)[0]
    m = re.match(rb"\s*([-+])([XY])\s+(\d+)\s+([-+])([XY])\s+(\d+)", line)
    if not m or m.group(2) == m.group(5):
        return None
    dims = {m.group(2): int(m.group(3)), m.group(5): int(m.group(6))}
    return dims[b"Y"], dims[b"X"]


def _exr_size(read: Reader) -> tuple[int, int] | None:
    """OpenEXR: the ``dataWindow`` (box2i: xMin, yMin, xMax, yMax) among the header attributes."""
    head = read(8, 1 << 16)
    pos = 0
    for _ in range(1000):
        name_end = head.find(b"\x00", pos)
        if name_end <= pos:  # an empty name ends the header
            return None
        type_end = head.find(b"\x00", name_end + 1)
        if type_end < 0 or type_end + 5 > len(head):
            return None
        (size,) = struct.unpack("<i", head[type_end + 1:type_end + 5])
        value = head[type_end + 5:type_end + 5 + size]
        if head[pos:name_end] == b"dataWindow" and len(value) >= 16:
            x0, y0, x1, y1 = struct.unpack("<iiii", value[:16])
            return max(y1 - y0 + 1, 0), max(x1 - x0 + 1, 0)
        if size < 0:
            return None
        pos = type_end + 5 + size
    return None


def _size(read: Reader) -> tuple[int, int] | None:
    data = read(0, 32)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return h, w
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(read)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack("<HH", data[6:10])
        return h, w
    if data[:2] == b"BM":
        w, h = struct.unpack("<ii", data[18:26])
        return abs(h), abs(w)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return h, w
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return h & 0x3FFF, w & 0x3FFF
        return None
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_size(read)
    if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 2:
        return _pnm_size(read)
    if data[:4] == b"\x59\xa6\x6a\x95":  # Sun raster
        w, h = struct.unpack(">ii", data[4:12])
        return abs(h), abs(w)
    if data[4:12] == b"jP  \r\n\x87\n":  # JP2 signature box
        return _jp2_size(read)
    if data[:4] == b"\xff\x4f\xff\x51":  # raw JPEG 2000 codestream (.j2k)
        return _j2k_codestream_size(read, 0)
    if data[:2] == b"#?":  # Radiance HDR (#?RADIANCE, #?RGBE)
        return _radiance_size(read)
    if data[:4] == b"\x76\x2f\x31\x01":  # OpenEXR
        return _exr_size(read)
    if data[4:8] == b"ftyp":  # AVIF / HEIF
        return _isobmff_size(read)
    return None


def _safe_size(read: Reader) -> tuple[int, int] | None:
    try:
        return _size(read)
    except (struct.error, IndexError, ValueError, KeyError, OverflowError):
        logger.debug("unreadable image header", exc_info=True)
        return None


def header_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """The ``(H, W)`` an encoded image declares in its header, read without decoding.

    Args:
        data: the file's bytes (the first few KB are enough for all but JPEGs with large
            metadata segments and TIFFs that keep their directory at the end).

    Returns:
        ``(H, W)`` for PNG, JPEG, GIF, BMP, WebP, TIFF, PNM, Sun raster, JPEG 2000, Radiance
        HDR, OpenEXR and AVIF files; None for other formats or a header too damaged to read.
    """
    return _safe_size(_bytes_reader(data))


def read_header_size(f) -> tuple[int, int] | None:
    """`header_size` of an open binary file, read through a few seeks (not the whole file)."""
    return _safe_size(_file_reader(f))

"""A tiny PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium writes) for checking screenshots."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        start = x * self.channels
        r, g, b = self.rows[y][start : start + 3]
        return r, g, b


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytearray, prior: bytes, bpp: int) -> bytes:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prior[i]
        corner = prior[i - bpp] if i >= bpp else 0
        predictor = (0, left, up, (left + up) // 2, _paeth(left, up, corner))[kind]
        line[i] = (line[i] + predictor) & 0xFF
    return bytes(line)


def read_png(data: bytes, max_rows: int | None = None) -> Image:
    """Decode ``data`` (its first ``max_rows`` rows if given).

    Raises:
        ValueError: Not an 8-bit, non-interlaced RGB(A) PNG.
    """
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat, header = len(SIGNATURE), b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _c, _f, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    channels = CHANNELS[colour]
    raw, stride = zlib.decompress(idat), width * channels
    rows, prior = [], bytes(stride)
    height = min(height, max_rows) if max_rows else height
    for y in range(height):
        start = y * (stride + 1)
        prior = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), prior, channels)
        rows.append(prior)
    return Image(width, height, channels, rows)


Box = tuple[int, int, int, int]


def colours(image: Image, box: Box | None = None) -> Counter[tuple[int, int, int]]:
    """How many pixels have each RGB colour (inside ``box`` = x0, y0, x1, y1 exclusive, if given)."""
    x0, y0, x1, y1 = box or (0, 0, image.width, image.height)
    found: Counter[tuple[int, int, int]] = Counter()
    step = image.channels
    for row in image.rows[y0:y1]:
        part = row[x0 * step : x1 * step]
        found.update(zip(part[0::step], part[1::step], part[2::step], strict=True))
    return found


def bounding_box(image: Image, colour: tuple[int, int, int]) -> Box | None:
    """The smallest box holding every pixel of exactly ``colour``; None when there is none."""
    xs, ys = [], []
    step = image.channels
    target = bytes(colour)
    for y, row in enumerate(image.rows):
        for x in range(image.width):
            if row[x * step : x * step + 3] == target:
                xs.append(x)
                ys.append(y)
    return (min(xs), min(ys), max(xs) + 1, max(ys) + 1) if xs else None


def count_near(
    found: Counter[tuple[int, int, int]], colour: tuple[int, int, int], tolerance: int = 12
) -> int:
    """Pixels within ``tolerance`` (per channel) of ``colour``."""
    return sum(n for c, n in found.items() if all(abs(c[i] - colour[i]) <= tolerance for i in range(3)))

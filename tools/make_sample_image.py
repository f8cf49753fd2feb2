#!/usr/bin/env python3
"""Generate garrison/sample_app/static/caesar.png with the standard library only.

The sample app needs one real image so that a deployment visibly proves nginx
serves static files itself. Drawing it here (zlib + struct, no Pillow) keeps
the picture reproducible and its licence unambiguous; only the resulting PNG
is shipped in the package.

The picture: a gold-to-laurel-green gradient with a laurel wreath (two arcs of
leaves, open at the top, tied with a red ribbon at the bottom) around a gold
disc. A faint deterministic grain gives it a parchment feel (and keeps the file
in the 20-60 KB range the tests and docs expect).

Usage: python3 tools/make_sample_image.py [output.png]
"""

from __future__ import annotations

import math
import random
import struct
import sys
import zlib
from pathlib import Path

WIDTH, HEIGHT = 480, 320
SUPERSAMPLE = 2  # 2x2 samples per pixel: cheap anti-aliasing for the leaf edges

GOLD = (232, 196, 98)
LAUREL = (86, 122, 58)
LEAF_DARK = (46, 86, 34)
LEAF_LIGHT = (112, 160, 70)
DISC = (214, 170, 60)
DISC_RIM = (150, 110, 30)
RIBBON = (170, 34, 40)

CX, CY = WIDTH / 2, HEIGHT / 2 + 6
WREATH_R = 112.0

Colour = tuple[int, int, int]
# (centre x, centre y, cos, sin, half length, half width, colour)
Leaf = tuple[float, float, float, float, float, float, Colour]


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _leaves() -> list[Leaf]:
    """Leaves along both arcs of the wreath, alternately outside and inside."""
    leaves: list[Leaf] = []
    # Angles measured from the bottom of the circle, going up each side; the
    # wreath stays open over the top (about 60 degrees left free).
    steps = 11
    for side in (-1, 1):
        for i in range(steps):
            a = math.radians(18 + i * (130 / (steps - 1)))
            offset = 12 if i % 2 == 0 else -12
            r = WREATH_R + offset
            # Position: angle 0 is straight down; side picks left or right arc.
            x = CX + side * r * math.sin(a)
            y = CY + r * math.cos(a)
            # Leaves point along the tangent (towards the top), tilted outwards
            # or inwards depending on which row they belong to.
            tangent = math.atan2(-math.sin(a), side * math.cos(a))
            tilt = math.radians(25) * (1 if offset > 0 else -1) * side
            theta = tangent + tilt
            colour = LEAF_LIGHT if i % 2 == 0 else LEAF_DARK
            leaves.append((x, y, math.cos(theta), math.sin(theta), 20.0, 7.5, colour))
    return leaves


def _sample(x: float, y: float, leaves: list[Leaf]) -> Colour:
    # Background: diagonal gradient from gold (top left) to laurel (bottom right).
    t = min(1.0, max(0.0, (x / WIDTH) * 0.55 + (y / HEIGHT) * 0.45))
    colour = _mix(GOLD, LAUREL, t)

    # Central gold disc with a darker rim.
    d = math.hypot(x - CX, y - CY)
    if d < 62:
        colour = _mix(DISC, GOLD, max(0.0, 1 - d / 62) * 0.6)
    elif d < 66:
        colour = DISC_RIM

    # Wreath stem: a thin arc under the leaves.
    if abs(d - WREATH_R) < 2.2 and y > CY - WREATH_R * 0.5:
        colour = LEAF_DARK

    for lx, ly, c, s, half_len, half_w, leaf_colour in leaves:
        dx, dy = x - lx, y - ly
        if abs(dx) > half_len or abs(dy) > half_len:
            continue
        u = dx * c + dy * s
        v = -dx * s + dy * c
        # Pointed leaf: the width shrinks towards both tips.
        k = 1 - (u / half_len) ** 2
        if k > 0 and abs(v) < half_w * k:
            colour = leaf_colour
            if abs(v) < 0.8:  # the midrib
                colour = _mix(leaf_colour, GOLD, 0.35)

    # Ribbon: two small triangles hanging from the bottom of the wreath.
    bx, by = CX, CY + WREATH_R
    if by - 6 <= y <= by + 34:
        for side in (-1, 1):
            ox = (x - bx) * side
            oy = y - by
            if 0 <= ox <= 26 and abs(oy - ox * 0.9) < 5 + ox * 0.12:
                colour = RIBBON
        if math.hypot(x - bx, y - by) < 7:
            colour = RIBBON
    return colour


def render() -> bytes:
    """Return the picture as raw PNG scanlines (filter byte + RGB per row)."""
    leaves = _leaves()
    grain = random.Random(1776)  # fixed seed: same bytes on every run
    rows = bytearray()
    n = SUPERSAMPLE * SUPERSAMPLE
    for py in range(HEIGHT):
        rows.append(0)  # PNG filter type 0 (None) for this scanline
        for px in range(WIDTH):
            r = g = b = 0
            for sy in range(SUPERSAMPLE):
                for sx in range(SUPERSAMPLE):
                    cr, cg, cb = _sample(
                        px + (sx + 0.5) / SUPERSAMPLE, py + (sy + 0.5) / SUPERSAMPLE, leaves
                    )
                    r += cr
                    g += cg
                    b += cb
            # Sparse grain: one pixel in fifty is nudged by a couple of levels.
            noise = grain.choice((-2, 2)) if grain.random() < 0.02 else 0
            rows += bytes(
                min(255, max(0, round(v / n) + noise)) for v in (r, g, b)
            )
    return bytes(rows)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def encode_png(raw: bytes, width: int, height: int) -> bytes:
    """Wrap raw RGB scanlines into a minimal PNG (IHDR, IDAT, IEND)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parent.parent / "garrison/sample_app/static/caesar.png"
    out = Path(argv[1]) if len(argv) > 1 else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_png(render(), WIDTH, HEIGHT))
    print(f"wrote {out} ({out.stat().st_size} bytes, {WIDTH}x{HEIGHT})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""A PNG timeline of drill rounds, drawn in pure Python (no plotting library).

One panel per round, time relative to the fault: a lane per frontend with a tick per
probe (green answered, red failed) and the longest gap shaded; a lane of VRRP adverts
and one of gratuitous ARPs, coloured by sender (blue: the host the fault hit, orange: the
others); the fault as a red line and a pink band until the restore.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence

from halb.drill.model import ANNOUNCEMENTS, RoundRecord, family
from halb.drill.report import RoundFigures

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
GREY: RGB = (150, 150, 150)
LIGHT: RGB = (232, 232, 232)
GREEN: RGB = (30, 150, 60)
RED: RGB = (210, 30, 30)
PINK: RGB = (255, 222, 222)
BLUE: RGB = (40, 90, 200)
ORANGE: RGB = (235, 130, 20)
GAP: RGB = (255, 200, 120)

# 5x7 glyphs, one 5-bit row each, top to bottom (lower case is drawn as upper case).
FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (14, 17, 19, 21, 25, 17, 14),
    "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2),
    "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14),
    "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17),
    "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31),
    "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15),
    "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17),
    "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17),
    "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13),
    "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30),
    "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10),
    "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4),
    "Z": (31, 1, 2, 4, 8, 16, 31),
    ".": (0, 0, 0, 0, 0, 12, 12),
    ",": (0, 0, 0, 0, 12, 4, 8),
    ":": (0, 12, 12, 0, 12, 12, 0),
    "-": (0, 0, 0, 31, 0, 0, 0),
    "+": (0, 4, 4, 31, 4, 4, 0),
    "#": (10, 10, 31, 10, 31, 10, 10),
    "/": (0, 1, 2, 4, 8, 16, 0),
    "(": (2, 4, 8, 8, 8, 4, 2),
    ")": (8, 4, 2, 2, 2, 4, 8),
    "=": (0, 0, 31, 0, 31, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 31),
    ">": (8, 4, 2, 1, 2, 4, 8),
    "<": (2, 4, 8, 16, 8, 4, 2),
    "?": (14, 17, 1, 2, 4, 0, 4),
}


class Canvas:
    def __init__(self, width: int, height: int, bg: RGB = WHITE) -> None:
        self.w = width
        self.h = height
        self.px = bytearray(bytes(bg) * (width * height))

    def rect(self, x0: int, y0: int, x1: int, y1: int, c: RGB) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        if x0 >= x1 or y0 >= y1:
            return
        row = bytes(c) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i : i + len(row)] = row

    def text(self, x: int, y: int, s: str, c: RGB = BLACK, scale: int = 1) -> int:
        """Draw `s` with its top-left at (x, y); returns the x after it."""
        for ch in s.upper():
            rows = FONT.get(ch, FONT["?"])
            for r, bits in enumerate(rows):
                for col in range(5):
                    if bits & (16 >> col):
                        px, py = x + col * scale, y + r * scale
                        self.rect(px, py, px + scale, py + scale, c)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        head = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", head)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


WIDTH = 1400
LEFT = 110  # lane labels
RIGHT = 20
LANE = 26
TITLE = 24
MAX_PANELS = 24


def _ticks(span: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60):
        if span / step <= 14:
            return step
    return 120.0


def lanes_of(rec: RoundRecord) -> list[str]:
    """The lanes of a round's panel, top to bottom (the plot's series)."""
    fams = {family(a) for a in rec.vips.values()}
    announced = {frozenset({4}): "garps", frozenset({6}): "nas"}.get(frozenset(fams), "garps+nas")
    return [*rec.frontends, "adverts", announced]


def draw_round(c: Canvas, y: int, rec: RoundRecord, fig: RoundFigures) -> int:
    lanes = lanes_of(rec)
    t0 = rec.t_start - rec.t_fault
    t1 = max(rec.t_end - rec.t_fault, t0 + 0.1)
    plot_w = c.w - LEFT - RIGHT

    def x_of(t: float) -> int:
        return LEFT + int((t - rec.t_fault - t0) / (t1 - t0) * plot_w)

    take = "-" if fig.takeover_s is None else f"{fig.takeover_s:.3f} S BY {fig.new_holder}"
    by = "NA" if family(next(iter(rec.vips.values()), "")) == 6 else "GARP"
    outs = "  ".join(f"{fe} {v:.3f}" for fe, v in fig.outage_s.items())
    second = "  ".join(f"{fe} {v:.3f}" for fe, v in fig.second_outage_s.items())
    x = c.text(8, y + 6, f"{rec.fault} #{rec.index} ON {rec.target}", scale=2) + 16
    c.text(x, y + 4, f"TAKEOVER {by} {take}   OUTAGE {outs}")
    c.text(x, y + 15, f"SECOND OUTAGE {second}   FAILED {sum(fig.failed.values())}")
    top = y + TITLE + 6
    bottom = top + LANE * len(lanes)
    c.rect(LEFT, top, c.w - RIGHT, bottom, LIGHT)
    c.rect(x_of(rec.t_fault), top, x_of(rec.t_restore), bottom, PINK)
    for i, name in enumerate(lanes):
        ly = top + i * LANE
        c.rect(LEFT, ly + LANE - 1, c.w - RIGHT, ly + LANE, WHITE)
        c.text(6, ly + 8, name[:17], BLACK)
    for i, fe in enumerate(rec.frontends):
        ly = top + i * LANE
        oks = sorted(p.end for p in rec.probes if p.frontend == fe and p.ok)
        gap_a, gap_b = _largest_gap(oks, rec.t_fault, rec.t_restore)
        if gap_b > gap_a:
            c.rect(x_of(gap_a), ly + 2, max(x_of(gap_b), x_of(gap_a) + 1), ly + LANE - 3, GAP)
        for p in rec.probes:
            if p.frontend != fe:
                continue
            x = x_of(p.start)
            if p.ok:
                c.rect(x, ly + 13, x + 1, ly + LANE - 4, GREEN)
            else:
                c.rect(x, ly + 3, x + 1, ly + 13, RED)
    holder_mac = rec.macs.get(rec.target, "").lower()
    holder_ip = rec.lb_addresses.get(rec.target, "")
    for pk in rec.packets:
        if pk.kind == "advert":
            ly = top + len(rec.frontends) * LANE
            # IPv6 adverts come from the holder's IPv6 or link-local address
            mine = pk.src == holder_ip or (family(pk.src) == 6 and pk.mac.lower() == holder_mac)
            tall = (pk.prio or 0) > 0
        elif pk.kind in ANNOUNCEMENTS:
            ly = top + (len(rec.frontends) + 1) * LANE
            mine = pk.mac.lower() == holder_mac
            tall = True
        else:
            continue
        if not rec.t_start <= pk.ts <= rec.t_end:
            continue
        x = x_of(pk.ts)
        y0 = ly + 3 if tall else ly + 15
        c.rect(x, y0, x + 2, ly + LANE - 4, BLUE if mine else ORANGE)
    # the fault and the restore
    c.rect(x_of(rec.t_fault), top - 4, x_of(rec.t_fault) + 2, bottom + 4, RED)
    c.rect(x_of(rec.t_restore), top - 4, x_of(rec.t_restore) + 2, bottom + 4, GREY)
    # time axis, seconds from the fault
    step = _ticks(t1 - t0)
    k = int(t0 / step) - 1
    while k * step <= t1:
        t = k * step
        if t >= t0:
            x = x_of(rec.t_fault + t)
            c.rect(x, bottom, x + 1, bottom + 5, BLACK)
            c.text(x - 8, bottom + 8, f"{t:g}", GREY)
        k += 1
    return bottom + 24


def _largest_gap(times: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    before = [t for t in times if t <= lo]
    seq = [before[-1] if before else lo, *(t for t in times if t > lo)]
    best = (0.0, 0.0)
    for a, b in itertools.pairwise(seq):
        if a >= hi:
            break
        if b - a > best[1] - best[0]:
            best = (a, b)
    return best


def legend(c: Canvas, y: int) -> None:
    x = c.text(8, y, "TIME IN S FROM THE FAULT.  ", BLACK)
    for color, label in (
        (GREEN, "ANSWERED"),
        (RED, "FAILED"),
        (GAP, "LONGEST GAP"),
        (PINK, "FAULT UNTIL RESTORE"),
        (BLUE, "FROM THE HOST HIT"),
        (ORANGE, "FROM ITS PEERS"),
    ):
        c.rect(x, y, x + 10, y + 8, color)
        x = c.text(x + 14, y, label + "   ", BLACK)
    c.text(x, y, "SHORT ADVERT TICK: PRIORITY 0", BLACK)


def timeline_png(records: Sequence[RoundRecord], figs: Sequence[RoundFigures]) -> bytes:
    shown = list(zip(records, figs, strict=True))[:MAX_PANELS]
    heights = [TITLE + 6 + LANE * len(lanes_of(r)) + 24 + 8 for r, _ in shown]
    c = Canvas(WIDTH, 24 + sum(heights) + 8)
    legend(c, 8)
    y = 24
    for (rec, fig), h in zip(shown, heights, strict=True):
        draw_round(c, y, rec, fig)
        y += h
    return c.png()

#!/usr/bin/env python3
"""Draws a CSV table as an SVG chart (no dependencies beyond Python's standard library).

One series per distinct value of the --series columns; each row is a point (x, y). With --median,
rows of a series that share an x are drawn as their median (repeated benchmark runs). Lines join
a series' points in x order (--points: markers only, each labelled from --label when given).
--hline VALUE:TEXT draws a dashed reference line (a baseline). Axes may be logarithmic.

    python3 tools/svg_chart.py DATA.csv --x prompt_tokens --y decode_tokens_per_second \
        --series binary model --median --title "..." --out FIGURE.svg
"""
import argparse
import csv
import os
import math
import statistics
import sys
from xml.sax.saxutils import escape

PLOT_WIDTH, HEIGHT = 560, 460
LEFT, TOP, BOTTOM = 78, 48, 62  # margins around the plot area; the right one holds the legend
# Okabe & Ito's colour-blind-safe palette.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]


def nice_ticks(low, high, count=6):
    """Round tick values covering [low, high] on a linear axis (steps of 1, 2 or 5 x 10^k)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def log_ticks(low, high):
    """Ticks at m x 10^k covering [low, high] on a logarithmic axis (low > 0), the ends rounded out
    to ticks; m from 1-9 within a decade or two, 1, 2 and 5 up to four, powers of ten beyond."""
    decades = math.log10(high / low)
    multiples = (1, 2, 3, 4, 5, 6, 7, 8, 9) if decades <= 1.3 else (1, 2, 5) if decades <= 4 else (1,)
    candidates = [m * 10.0 ** k for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
                  for m in multiples]
    first = max(c for c in candidates if c <= low * 1.0001)
    last = min(c for c in candidates if c >= high / 1.0001)
    return [c for c in candidates if first <= c <= last]


def label_of(value):
    if value == 0:
        return "0"
    if abs(value) >= 1000 and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.6g}"


class Axis:
    def __init__(self, values, log, start, end, include_zero):
        if log and any(v <= 0 for v in values):
            raise SystemExit(f"svg_chart: a logarithmic axis needs values above 0 (got {min(values):g})")
        low, high = min(values), max(values)
        self.log = log
        if log:
            self.ticks = log_ticks(low, high)
        else:
            if include_zero:
                low = min(low, 0.0)
            self.ticks = nice_ticks(low, high)
        self.low, self.high = self.ticks[0], self.ticks[-1]
        self.start, self.end = start, end

    def to_pixel(self, value):
        if self.log:
            f = (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            f = (value - self.low) / (self.high - self.low)
        return self.start + f * (self.end - self.start)


def read_series(path, x, y, series, label, median):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"svg_chart: {path} has no rows")
    for column in [x, y] + series + ([label] if label else []):
        if column not in rows[0]:
            raise SystemExit(f"svg_chart: {path} has no column '{column}' (it has {', '.join(rows[0])})")
    grouped = {}
    for row in rows:
        key = " · ".join(row[c] for c in series) if series else y
        try:
            point = (float(row[x]), float(row[y]), row[label] if label else "")
        except ValueError as error:
            raise SystemExit(f"svg_chart: {path}: not a number in row {row}: {error}")
        grouped.setdefault(key, []).append(point)
    result = {}
    for key, points in grouped.items():
        if median:
            by_x = {}
            for px, py, text in points:
                by_x.setdefault(px, ([], text))[0].append(py)
            points = [(px, statistics.median(ys), text) for px, (ys, text) in by_x.items()]
        result[key] = sorted(points)
    return result


def draw(series, args):
    hlines = []
    for spec in args.hline:
        value, _, text = spec.partition(":")
        hlines.append((float(value), text))
    xs = [p[0] for points in series.values() for p in points]
    ys = [p[1] for points in series.values() for p in points] + [v for v, _ in hlines]
    legend_width = 50 + 7 * max(len(name) for name in series)
    width = LEFT + PLOT_WIDTH + legend_width
    plot_right, plot_bottom = LEFT + PLOT_WIDTH, HEIGHT - BOTTOM
    ax = Axis(xs, args.log_x, LEFT, plot_right, args.x_from_zero)
    ay = Axis(ys, args.log_y, plot_bottom, TOP, args.y_from_zero)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
           f'viewBox="0 0 {width} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{width}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{escape(args.title)}</text>']
    for tick in ax.ticks:
        px = ax.to_pixel(tick)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{plot_bottom}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{px:.1f}" y="{plot_bottom + 18}" text-anchor="middle">{label_of(tick)}</text>')
    for tick in ay.ticks:
        py = ay.to_pixel(tick)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{plot_right}" y2="{py:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 8}" y="{py + 4:.1f}" text-anchor="end">{label_of(tick)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_right - LEFT}" height="{plot_bottom - TOP}" '
               'fill="none" stroke="#444"/>')
    out.append(f'<text x="{(LEFT + plot_right) / 2}" y="{HEIGHT - 18}" text-anchor="middle">{escape(args.x_label or args.x)}</text>')
    out.append(f'<text transform="translate(20 {(TOP + plot_bottom) / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(args.y_label or args.y)}</text>')
    for value, text in hlines:
        py = ay.to_pixel(value)
        out.append(f'<line class="reference" x1="{LEFT}" y1="{py:.1f}" x2="{plot_right}" y2="{py:.1f}" '
                   'stroke="#777" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{LEFT + 6}" y="{py - 5:.1f}" fill="#555">{escape(text)}</text>')
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        pixels = [(ax.to_pixel(px), ay.to_pixel(py), text) for px, py, text in points]
        if not args.points and len(pixels) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in pixels)
            out.append(f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py, text in pixels:
            out.append(f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>')
            if text:
                out.append(f'<text x="{px + 7:.1f}" y="{py - 6:.1f}" fill="{colour}" font-size="11">{escape(text)}</text>')
        ly = TOP + 10 + 20 * index
        out.append(f'<rect x="{plot_right + 14}" y="{ly - 6}" width="14" height="12" fill="{colour}"/>')
        out.append(f'<text class="legend" x="{plot_right + 34}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--x", required=True, help="column of the x values")
    parser.add_argument("--y", required=True, help="column of the y values")
    parser.add_argument("--series", nargs="*", default=[], help="columns whose values name a series")
    parser.add_argument("--label", help="column whose text labels each point")
    parser.add_argument("--median", action="store_true", help="one point per x: the median of its rows")
    parser.add_argument("--points", action="store_true", help="markers only, no lines")
    parser.add_argument("--log-x", action="store_true")
    parser.add_argument("--log-y", action="store_true")
    parser.add_argument("--x-from-zero", action="store_true", help="a linear x axis starts at 0")
    parser.add_argument("--y-from-zero", action="store_true", help="a linear y axis starts at 0")
    parser.add_argument("--hline", action="append", default=[], help="VALUE:TEXT, a dashed reference line")
    parser.add_argument("--title", default="")
    parser.add_argument("--x-label")
    parser.add_argument("--y-label")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    svg = draw(read_series(args.csv, args.x, args.y, args.series, args.label, args.median), args)
    temporary = args.out + ".partial"
    with open(temporary, "w") as f:
        f.write(svg)
    os.replace(temporary, args.out)  # never a half-written figure


if __name__ == "__main__":
    main(sys.argv[1:])

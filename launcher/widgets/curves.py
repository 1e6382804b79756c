"""Training curves drawn with plotext (`textual-plotext`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual.reactive import reactive
from textual_plotext import PlotextPlot


MAX_POINTS = 300
"""A curve with more points is drawn as this many bucket means: plotext's cost grows with
the points (about 40 ms for 300, 180 ms for 2000 at 160x48), and a long run logs a
step point every second; a 70-column braille plot shows no more than ~140 anyway."""


def downsample(x: tuple[float, ...], y: tuple[float, ...], limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most `limit` points: the means of consecutive equal-count buckets (also smooths step noise)."""
    n = len(x)
    if n <= limit:
        return list(x), list(y)
    xs, ys = [], []
    for bucket in range(limit):
        start, stop = bucket * n // limit, (bucket + 1) * n // limit
        xs.append(sum(x[start:stop]) / (stop - start))
        ys.append(sum(y[start:stop]) / (stop - start))
    return xs, ys


@dataclass(frozen=True)
class Curve:
    """One line of a plot: its legend label and points."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    marker: str | None = None
    """plotext's marker; None: braille lines (a single point: a dot). Plots whose series
    must stay apart without colour (Compare) give each its own (`SERIES_MARKERS`)."""


SERIES_MARKERS = ("braille", "dot", "+", "x", "*", "o", "@", "%")
"""Distinct legend glyphs, one a series, in order."""


class CurvesPlot(PlotextPlot):
    """A line plot of several curves against the epoch.

    Args:
        title: the plot's title.
        percent: show values (fractions) as percentages.
    """

    curves: reactive[tuple[Curve, ...]] = reactive(tuple)
    """The curves drawn; setting it redraws."""

    def __init__(self, title: str, percent: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plot_title = title
        self.percent = percent
        self._version = 0
        self._cache: tuple | None = None

    def render(self):
        """The plot, built again only when the curves, the size or the theme changed.

        plotext builds the whole figure on every call (tens of ms at 160x48); Textual
        asks again on every refresh, e.g. each time the Curves tab is shown.
        """
        key = (self._version, self.size, self.app.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]

    def on_mount(self) -> None:
        self.replot()

    def watch_curves(self) -> None:
        self.replot()

    def replot(self) -> None:
        """Draws `curves` again."""
        plt = self.plt
        self._version += 1
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.plot_title)
        plt.xlabel("epoch")
        drawn = False
        for curve in self.curves:
            if not curve.x:
                continue
            x, y = downsample(curve.x, curve.y)
            y = [100 * v for v in y] if self.percent else y
            if len(x) == 1:
                plt.scatter(x, y, label=curve.label, marker=curve.marker or "dot")
            else:
                plt.plot(x, y, label=curve.label, marker=curve.marker or "braille")
            drawn = True
        if drawn:
            # Epoch axis from the whole epoch before the first point to the one after the last:
            # step points sit at fractional epochs (0.1 = a tenth into epoch 1).
            lo = math.floor(min(x for curve in self.curves for x in curve.x))
            hi = max(math.ceil(max(x for curve in self.curves for x in curve.x)), lo + 1)
            ticks = list(range(lo, hi + 1))
            stride = max(1, -(-len(ticks) // 8))
            plt.xticks(ticks[::stride])
            plt.xlim(lo, hi)
        self.refresh()

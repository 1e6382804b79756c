"""How the launcher shows numbers: percentages, counts with units, durations, losses."""

from __future__ import annotations

import math


def format_percent(value: float | None, digits: int = 1) -> str:
    """`0.4123` -> `"41.2%"`; None -> `"-"`."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:.{digits}f}%"


def format_count(value: float | None) -> str:
    """A parameter or MAC count with a unit: `812345` -> `"0.81 M"`, `2.56e9` -> `"2.56 G"`."""
    if value is None:
        return "-"
    value = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale or (unit == "M" and abs(value) >= 1e5):
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def format_duration(seconds: float | None) -> str:
    """`3725` -> `"1h 02m"`, `65` -> `"1m 05s"`, `4.2` -> `"4.2s"`; None -> `"-"`."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_number(value: float | None, digits: int = 4) -> str:
    """A loss or learning rate, compact: `0.1` -> `"0.1"`, `1.93456` -> `"1.935"`."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.{digits}g}"

"""`eval.json`'s confusion matrix as a colored table."""

from __future__ import annotations

from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from launcher.formatting import format_percent


def _shade(fraction: float, diagonal: bool) -> Style:
    """Green for the diagonal, red off it, stronger with the row fraction."""
    fraction = max(0.0, min(1.0, fraction))
    base = (20, 24, 28)
    full = (40, 160, 70) if diagonal else (190, 50, 50)
    rgb = tuple(int(b + (f - b) * fraction) for b, f in zip(base, full))
    return Style(bgcolor=Color.from_rgb(*rgb), color="white" if fraction > 0.05 else "grey50")


class ConfusionMatrix(DataTable):
    """Rows: true class; columns: predicted class; cells shaded by their share of the row.

    A last column gives the per-class accuracy. The row labels (`3 cat`) stay put
    when the table scrolls sideways; where the class names do not fit above the
    columns (10 classes at 80 columns), the columns are headed by the class number.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", fixed_columns=1, **kwargs)
        self._evaluation: dict[str, Any] | None = None
        self._width = 0

    def on_resize(self) -> None:
        if self._evaluation is not None and self.size.width != self._width:
            self.show(self._evaluation)

    def show(self, evaluation: dict[str, Any] | None) -> None:
        """Fills the table from an `eval.json` object (clears it for None)."""
        self._evaluation = evaluation
        self._width = self.size.width
        self.clear(columns=True)
        matrix = (evaluation or {}).get("confusion_matrix")
        if not matrix:
            return
        k = len(matrix)
        names = [str(n) for n in (evaluation.get("class_names") or [])][:k]
        names += [str(i) for i in range(len(names), k)]
        layout = confusion_layout(names, matrix, self.size.width or self.app.size.width)
        cell, label_width, by_number = layout
        self.add_column(Text("true \\ pred", style="bold"), key="true", width=label_width)
        for index, name in enumerate(names):
            header = str(index) if by_number else name[:cell]
            self.add_column(Text(header, style="bold"), key=f"c{index}", width=cell)
        self.add_column(Text("acc", style="bold"), key="acc", width=6)
        per_class = evaluation.get("per_class_accuracy") or []
        for i, row in enumerate(matrix):
            total = sum(row) or 1
            label = f"{i} {names[i]}" if by_number else names[i]
            cells: list[Any] = [Text(label[:label_width], style="bold")]
            for j, count in enumerate(row):
                cells.append(Text(f"{count:>{cell}}", style=_shade(count / total, i == j)))
            accuracy = per_class[i] if i < len(per_class) else (row[i] / total if i < len(row) else None)
            cells.append(format_percent(accuracy))
            self.add_row(*cells, key=str(i))


def confusion_layout(names: list[str], matrix: list[list[int]], width: int) -> tuple[int, int, bool]:
    """(cell width, row-label width, columns headed by class number) that fit `width` columns.

    Each column takes its width plus 2 of padding. Names head the columns when they
    fit (cut to at most 8); else numbers do, and the row labels say `3 cat`.
    """
    k = len(matrix)
    digits = max(len(str(v)) for row in matrix for v in row)
    longest = max(len(n) for n in names)
    named = max(digits, min(8, longest), 3)
    label_width = min(12, max(len("true \\ pred"), longest))
    if label_width + 2 + k * (named + 2) + 8 <= width:
        return named, label_width, False
    cell = max(digits, len(str(k - 1)), 2)
    label_width = min(12, max(len("true \\ pred"), len(str(k - 1)) + 1 + longest))
    spare = width - (k * (cell + 2) + 8) - 2
    return cell, max(6, min(label_width, spare)), True

"""`eval.json`'s confusion matrix as a colored table."""

from __future__ import annotations

from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from launcher.runs import format_percent


def _shade(fraction: float, diagonal: bool) -> Style:
    """Green for the diagonal, red off it, stronger with the row fraction."""
    fraction = max(0.0, min(1.0, fraction))
    base = (20, 24, 28)
    full = (40, 160, 70) if diagonal else (190, 50, 50)
    rgb = tuple(int(b + (f - b) * fraction) for b, f in zip(base, full))
    return Style(bgcolor=Color.from_rgb(*rgb), color="white" if fraction > 0.05 else "grey50")


class ConfusionMatrix(DataTable):
    """Rows: true class; columns: predicted class; cells shaded by their share of the row.

    A last column gives the per-class accuracy.
    """

    def show(self, evaluation: dict[str, Any] | None) -> None:
        """Fills the table from an `eval.json` object (clears it for None)."""
        self.clear(columns=True)
        matrix = (evaluation or {}).get("confusion_matrix")
        if not matrix:
            return
        names = list(evaluation.get("class_names") or [str(i) for i in range(len(matrix))])
        width = max(3, min(8, max(len(str(n)) for n in names)))
        self.add_column(Text("true \\ pred", style="bold"), key="true")
        for index, name in enumerate(names):
            self.add_column(Text(str(name)[:width], style="bold"), key=f"c{index}")
        self.add_column(Text("acc", style="bold"), key="acc")
        per_class = evaluation.get("per_class_accuracy") or []
        for i, row in enumerate(matrix):
            total = sum(row) or 1
            cells: list[Any] = [Text(str(names[i] if i < len(names) else i), style="bold")]
            for j, count in enumerate(row):
                cells.append(Text(f"{count:>{width}}", style=_shade(count / total, i == j)))
            accuracy = per_class[i] if i < len(per_class) else (row[i] / total if i < len(row) else None)
            cells.append(format_percent(accuracy))
            self.add_row(*cells, key=str(i))

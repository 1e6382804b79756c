"""The selected recipe's facts and the selected variant's size."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from launcher.model_info import ModelInfo
from launcher.formatting import format_count, format_number


class RecipeDetails(Static):
    """Dataset, schedule and batch size of a recipe; parameters and MACs of a variant.

    The launch screen sets `facts` (from `launcher.recipes.recipe_facts`),
    `summary`, `variant`, `description` and `info` (a `gdfr info` lookup);
    any change redraws. Counts show "…" while `gdfr info` runs.
    """

    facts: reactive[dict[str, Any] | None] = reactive(None, layout=True)
    summary: reactive[str] = reactive("", layout=True)
    variant: reactive[str] = reactive("", layout=True)
    description: reactive[str] = reactive("", layout=True)
    info: reactive[ModelInfo] = reactive(ModelInfo, layout=True)

    def render(self) -> Group | Text:
        facts = self.facts
        if facts is None:
            return Text("Select a recipe.", style="dim")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        dataset = facts.get("dataset") or "?"
        extra = [f"{facts['num_classes']} classes"] if facts.get("num_classes") else []
        if facts.get("image_size"):
            extra.append(f"{facts['image_size']} px")
        grid.add_row("Dataset", " · ".join([str(dataset), *extra]))
        grid.add_row("Schedule", schedule_text(facts))
        grid.add_row("Batch", str(facts.get("batch_size") or "?"))
        grid.add_row("Variant", Text(self.variant, style="bold"))
        grid.add_row("Size", self._counts())
        if self.description:
            grid.add_row("", Text(self.description, style="italic"))
        parts: list[Any] = []
        if facts.get("error"):
            parts.append(Text(str(facts["error"]), style="bold red"))
        elif self.summary:
            parts.append(Text(self.summary, style="italic dim"))
        parts.append(grid)
        if self.info.error:
            parts.append(Text(f"gdfr info: {self.info.error}", style="red"))
        return Group(*parts)

    def _counts(self) -> Text:
        info = self.info
        if info.pending:
            params = macs = "…"
        elif info.data is not None:
            params, macs = format_count(info.data.get("params")), format_count(info.data.get("macs"))
        elif info.error:
            return Text("unknown (see below)", style="red")
        else:
            params = macs = "-"
        return Text.assemble((params, "bold"), " params · ", (macs, "bold"), " MACs")


def schedule_text(facts: dict[str, Any]) -> str:
    """`200 epochs · lr 0.1, x0.2 at 60, 120, 160` from a recipe's facts."""
    parts = [f"{facts['epochs']} epochs" if facts.get("epochs") else "? epochs"]
    lr = f"lr {format_number(facts['lr'])}" if facts.get("lr") is not None else "lr ?"
    milestones = facts.get("milestones")
    if milestones:
        gamma = facts.get("gamma")
        factor = f"x{format_number(gamma)}" if gamma is not None else "decay"
        lr += f", {factor} at {', '.join(str(m) for m in milestones)}"
    parts.append(lr)
    return " · ".join(parts)

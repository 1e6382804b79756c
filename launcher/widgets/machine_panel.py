"""The machine panel: the run's process, the host and the GPUs, with the run's pace."""

from __future__ import annotations

import datetime
import io

from rich.console import Console
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from launcher.machine import MachineSample, format_bytes
from launcher.formatting import format_duration
from launcher.runs import RunState


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def machine_table(state: RunState, status: str, sample: MachineSample, pid: int | None, owner) -> Table:
    """Two-column key/value grid; every figure is '-' when unknown."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    live = status in ("running", "stopping", "starting")
    host = (owner.host if owner and owner.host else "this host")
    grid.add_row("trainer", Text.assemble((f"pid {pid}" if pid else "no live process", "bold"),
                                          f" on {host}" if pid else ""))
    grid.add_row("backend", state.backend or (owner.backend if owner else None) or "-")
    if state.devices:
        grid.add_row("devices", ", ".join(map(str, state.devices)))
    if (state.replicas or 1) > 1:  # one-device runs keep the panel short
        grid.add_row("parallel", f"{state.replicas} replicas in {state.processes or 1} process(es) · "
                                 f"batch {state.batch_size} = {state.per_device_batch:g} a device · "
                                 f"{state.distribution or ''}".rstrip(" ·"))
    rate = state.images_per_second() if live else None
    grid.add_row("images/s", Text(f"{rate:.1f}" if rate else "-", style="bold"))
    started = state.started
    grid.add_row("started", datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S") if started else "-")
    end = (state.end or {}).get("time") if not live else sample.time
    grid.add_row("elapsed", format_duration(end - state.segment_start) if end and state.segment_start else "-")
    grid.add_row("ETA", format_duration(state.eta_seconds(status)))
    if pid and sample.process_cpu is not None:
        grid.add_row("process", f"CPU {_percent(sample.process_cpu)} · RSS {format_bytes(sample.process_rss)}"
                                f" · {sample.process_threads} threads")
    if sample.host_cpu is not None:
        grid.add_row("host", f"CPU {_percent(sample.host_cpu)} of {sample.host_cores} cores · memory "
                             f"{format_bytes(sample.host_memory_used)} / {format_bytes(sample.host_memory_total)}")
    for gpu in sample.gpus:
        grid.add_row(f"GPU {gpu.index}", f"{gpu.name} · util {_percent(gpu.utilization)} · memory "
                                         f"{format_bytes(gpu.memory_used)} / {format_bytes(gpu.memory_total)}")
    if sample.gpu_note:
        grid.add_row("GPU", Text(sample.gpu_note, style="dim"))
    return grid


class MachinePanel(Static):
    """Filled by the run screen every couple of seconds from a `launcher.machine.Sampler`."""

    table: Table | None = None

    def update_panel(self, state: RunState, status: str, sample: MachineSample, pid: int | None, owner) -> None:
        self.table = machine_table(state, status, sample, pid, owner)
        self.update(self.table)

    @property
    def text(self) -> str:
        """What the panel shows, as plain text (for tests and logs)."""
        if self.table is None:
            return ""
        console = Console(width=200, file=io.StringIO(), record=True)
        console.print(self.table)
        return console.export_text()

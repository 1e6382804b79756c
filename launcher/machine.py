"""The machine panel's figures: the run's process and the host (psutil), the GPUs (NVML).

psutil is part of the `tui` extra; NVIDIA's management library comes from the
optional `nvidia-ml-py` package (`pip install keras-gdfr[gpu-monitor]`) and is
used only when it imports and finds a driver. Nothing here needs Textual or Keras.
"""

from __future__ import annotations

import dataclasses
import time

try:
    import psutil
except ImportError:  # pragma: no cover - the tui extra installs it
    psutil = None


@dataclasses.dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization: float | None  # percent
    memory_used: int | None  # bytes
    memory_total: int | None


@dataclasses.dataclass(frozen=True)
class MachineSample:
    """One reading. None: unknown (no psutil, no such process, no permission)."""

    process_cpu: float | None = None  # percent of one core, summed over threads (can exceed 100)
    process_rss: int | None = None
    process_threads: int | None = None
    host_cpu: float | None = None  # percent of all cores
    host_cores: int | None = None
    host_memory_used: int | None = None
    host_memory_total: int | None = None
    gpus: tuple[GpuSample, ...] = ()
    gpu_note: str = ""
    time: float = 0.0


class Sampler:
    """Keeps psutil's per-process state between readings (cpu_percent needs two)."""

    def __init__(self) -> None:
        self._processes: dict[int, object] = {}
        self._nvml = None
        self._nvml_note = ""
        if psutil is not None:
            psutil.cpu_percent(None)  # the first reading of a pair

    def sample(self, pid: int | None) -> MachineSample:
        fields: dict = {"time": time.time()}
        if psutil is not None:
            fields.update(self._host())
            if pid:
                fields.update(self._process(pid))
        gpus, note = self._gpus()
        return MachineSample(**fields, gpus=gpus, gpu_note=note)

    def _host(self) -> dict:
        memory = psutil.virtual_memory()
        return dict(host_cpu=psutil.cpu_percent(None), host_cores=psutil.cpu_count(),
                    host_memory_used=memory.total - memory.available, host_memory_total=memory.total)

    def _process(self, pid: int) -> dict:
        try:
            process = self._processes.get(pid)
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
                process.cpu_percent(None)
            with process.oneshot():
                return dict(process_cpu=process.cpu_percent(None), process_rss=process.memory_info().rss,
                            process_threads=process.num_threads())
        except (psutil.Error, OSError):
            self._processes.pop(pid, None)
            return {}

    def _gpus(self) -> tuple[tuple[GpuSample, ...], str]:
        if self._nvml is None and not self._nvml_note:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except ImportError:
                self._nvml_note = "no GPU figures: pip install nvidia-ml-py"
            except Exception as error:  # noqa: BLE001 - NVMLError: no driver, no device
                self._nvml_note = f"no NVIDIA GPU ({error})"
        if self._nvml is None:
            return (), self._nvml_note
        nvml, gpus = self._nvml, []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                gpus.append(GpuSample(index, name.decode() if isinstance(name, bytes) else str(name),
                                      float(rates.gpu), int(memory.used), int(memory.total)))
        except Exception as error:  # noqa: BLE001
            return tuple(gpus), f"NVML: {error}"
        return tuple(gpus), ""


def format_bytes(value: int | None) -> str:
    """`1536 * 2**20` -> `"1.5 GiB"`; None -> `"-"`."""
    if value is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"

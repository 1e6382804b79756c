"""`gdfr bench`'s instruments: the machine and version it reports, device syncs,
torch.compile's counters, peak memory, and the synthetic batches it times."""

from __future__ import annotations

import platform
import resource


def git_commit() -> str:
    """The short commit of this source (see `keras_gdfr.provenance.git_commit`), "unknown" outside git."""
    from keras_gdfr.provenance import git_commit as commit

    return commit(short=True) or "unknown"


def device_info(backend: str) -> dict:
    info = {"device": platform.processor() or platform.machine(), "accelerator": None}
    if backend == "torch":
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["accelerator"] = torch.cuda.get_device_name(0)
            info["device"] = "cuda"
        else:
            info["device"] = "cpu"
            info["torch_threads"] = torch.get_num_threads()
    elif backend == "jax":
        import jax

        info["device"] = str(jax.devices()[0].platform)
    elif backend == "tensorflow":
        from keras_gdfr.data.tf_runtime import import_tensorflow

        gpus = import_tensorflow().config.list_physical_devices("GPU")
        info["device"] = "gpu" if gpus else "cpu"
    return info


class DeviceSync:
    """Wait for the device to finish the queued work (torch CUDA; a weight read elsewhere)."""

    def __init__(self, model, backend: str):
        self.model, self.backend = model, backend
        self.cuda = False
        if backend == "torch":
            import torch

            self.cuda = torch.cuda.is_available()

    def __call__(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        else:
            import keras

            keras.ops.convert_to_numpy(self.model.trainable_weights[-1])


class DynamoCount:
    """torch.compile's own counters (`torch._dynamo.utils.counters`): graphs compiled and graph breaks.

    ``compiled_graphs_warmup``: graphs dynamo compiled during the warm-up (1 for the
    train step compiled once); ``recompiles_after_warmup``: graphs compiled after it
    (0 when nothing recompiled); ``graph_breaks``: breaks recorded. Graphs, not frames:
    a `fullgraph=True` compile (keras_gdfr.training.torch_compile) bypasses the frame counter.
    """

    def __init__(self, backend: str, jit: bool):
        self.active = backend == "torch" and jit
        self.start = self.warm = 0
        if self.active:
            self.start = self._graphs()

    @staticmethod
    def _graphs() -> int:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])

    def mark_warm(self) -> None:
        if self.active:
            self.warm = self._graphs()

    def result(self) -> dict:
        if not self.active:
            return {}
        from torch._dynamo.utils import counters

        return {"compiled_graphs_warmup": self.warm - self.start, "recompiles_after_warmup": self._graphs() - self.warm,
                "graph_breaks": int(sum(counters["graph_break"].values()))}


def peak_memory_mib(backend: str) -> tuple[float, str]:
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss (whole process)"


def synthetic_batches(keras, n_batches: int, batch: int, shape, num_classes: int, memory_format: str, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        x = keras.ops.convert_to_tensor(rng.standard_normal((batch, *shape), dtype=np.float32))
        if memory_format == "channels_last":
            import torch

            x = x.contiguous(memory_format=torch.channels_last)
        y = keras.ops.convert_to_tensor(np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)])
        batches.append((x, y))
    return batches


def cycle_dataset(keras, batches, length: int):
    class Cycle(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self):
            return length

        def __getitem__(self, i):
            return batches[i % len(batches)]

    return Cycle()

"""Data-parallel `gdfr train` with each backend's own engine (docs/distributed.md).

- jax: `keras.distribution.DataParallel` over the local devices (several hosts:
  `keras.distribution.initialize()` from the JAX_COORDINATOR_ADDRESS /
  JAX_NUM_PROCESSES / JAX_PROCESS_ID environment). Under the sharded jit, batch
  moments are already global: BatchNorm is synchronized by construction.
- tensorflow: `tf.distribute.MirroredStrategy` on one host (GPUs, or the CPU split
  into N logical devices when there is no GPU: the simulated case),
  `MultiWorkerMirroredStrategy` when TF_CONFIG is set; synchronized BatchNorm is
  Keras's `synchronized=True`.
- torch: one process per device, started by `torchrun`; the process group comes
  from its environment (NCCL on GPUs, gloo on CPUs). Gradients are all-reduced
  inside `model.fit`'s train step (a wrapper around the optimizer's `apply`, so
  fit, callbacks, progress bar and checkpoints are Keras's own); synchronized
  BatchNorm all-reduces the batch moments in our fused BatchNorm
  (`keras_gdfr.layers.batch_norm.TRAINING_HOOK`).

The recipe's `train.batch_size` is the global batch; each replica gets
batch_size / replicas of it. Every epoch's batches are the single-device run's
((seed, epoch) order, `augment.epoch_plan`); torch rank r takes the r-th slice of
each global batch. With more than one replica an epoch's last partial batch is cut
to a multiple of the replica count (at most replicas - 1 images of an epoch unseen;
every replica then has the same batch shape, which jax and tf.distribute need).

Only rank 0 writes the run directory: the trainer asks `writes()` before each
checkpoint, model, JSON or TensorBoard write, and other ranks get `NullEvents`,
which drop every event except a failure, appended as an `error` event naming the rank.

Why one file of ~490 lines: the three engines share the topology, the batch split
and the rank-0 writer, and read best side by side (sections marked with rule lines).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import pathlib
import sys

ENGINES = {"jax": "keras.distribution.DataParallel", "tensorflow": "tf.distribute.MirroredStrategy",
           "torch": "torchrun + torch.distributed"}


class DistributedError(Exception):
    """A device/process setup that cannot run; the message names the setting."""


@dataclasses.dataclass
class Topology:
    """Where this process stands: replicas (devices in all), processes, its rank, the batch split."""

    backend: str
    replicas: int = 1
    processes: int = 1
    rank: int = 0
    local_rank: int = 0
    global_batch: int = 0
    sync_batchnorm: bool = False
    engine: str = "single device"
    device_names: tuple = ()  # what it trains on (`cpu:0`, `cuda:1`, ...), run_start's `devices`
    strategy: object = None  # tensorflow's strategy
    wanted: object = "auto"  # train.devices as set
    scope: object = None  # the entered tf.distribute scope

    @property
    def per_device_batch(self) -> int:
        return self.global_batch // self.replicas

    @property
    def writer(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0

    def summary(self) -> dict:
        """The run_start / gdfr info fields."""
        return {"devices": list(self.device_names),
                "replicas": self.replicas, "processes": self.processes, "per_device_batch": self.per_device_batch,
                "global_batch": self.global_batch, "sync_batchnorm": self.sync_batchnorm,
                "distribution": self.engine}


_CURRENT: Topology | None = None


def current() -> Topology | None:
    """The topology `start` set up in this process (None: not started, one device)."""
    return _CURRENT


def replicas() -> int:
    return _CURRENT.replicas if _CURRENT else 1


def writes() -> bool:
    """Whether this process writes the run directory (one process, or torchrun's rank 0)."""
    return _CURRENT is None or _CURRENT.writer


# ---------------------------------------------------------------------------
# Setup per backend.


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ
                                                    and "MASTER_ADDR" in os.environ)


def start(recipe) -> Topology:
    """Set up the recipe's devices for this process; returns the topology (also `current()`).

    Called again in one process (tests), the engine is reused when `train.devices` is unchanged.
    """
    global _CURRENT
    import keras

    from keras_gdfr.layers import batch_norm

    backend = keras.backend.backend()
    wanted = recipe.train.devices
    if _CURRENT is not None and _CURRENT.wanted == wanted and _CURRENT.backend == backend:
        topo = _CURRENT
    elif backend == "jax":
        topo = _start_jax(wanted)
    elif backend == "tensorflow":
        topo = _start_tensorflow(wanted)
    else:
        topo = _start_torch(wanted)
    topo.wanted = wanted
    topo.global_batch = recipe.train.batch_size
    _check_batch(topo)
    topo.sync_batchnorm = _sync_setting(topo, recipe.train.sync_batchnorm)
    synced = topo.backend == "torch" and topo.replicas > 1 and topo.sync_batchnorm
    batch_norm.TRAINING_HOOK = _synced_batch_norm if synced else None
    if not topo.writer:
        sys.stdout = open(os.devnull, "w")  # rank 0 shows the progress; errors still reach stderr
    _CURRENT = topo
    return topo


def _count(wanted, available: int, what: str) -> int:
    if wanted == "auto":
        return available
    if wanted > available:
        raise DistributedError(f"train.devices = {wanted}: only {available} {what}")
    return int(wanted)


def _start_jax(wanted) -> Topology:
    import jax
    import keras

    if os.environ.get("JAX_COORDINATOR_ADDRESS") and jax.process_count() == 1:
        keras.distribution.initialize()  # several hosts: coordinator, process count and id from the environment
    devices = jax.devices()
    platform = devices[0].platform
    n = _count(wanted, len(devices), f"{platform} device(s) visible to jax (simulate more on a CPU with "
               "XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    topo = Topology("jax", replicas=n, processes=jax.process_count(), rank=jax.process_index(),
                    device_names=tuple(f"{d.platform}:{d.id}" for d in devices[:n]))
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:n]) if n > 1 else None)
    if n > 1:
        topo.engine = f"{ENGINES['jax']} over {n} {platform} devices"
    return topo


def _start_tensorflow(wanted) -> Topology:
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        ctx = strategy.cluster_resolver.task_id if strategy.cluster_resolver else 0
        topo = Topology("tensorflow", replicas=strategy.num_replicas_in_sync, processes=_tf_workers(),
                        rank=int(ctx or 0), engine="tf.distribute.MultiWorkerMirroredStrategy", strategy=strategy,
                        device_names=tuple(strategy.extended.worker_devices))  # this worker's
        _enter_scope(topo)
        return topo
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        n = _count(wanted, len(gpus), "GPU(s) visible to TensorFlow")
        names = [f"/gpu:{i}" for i in range(n)]
        kind = "GPUs"
    else:
        n = 1 if wanted == "auto" else int(wanted)
        if n > 1:  # no GPU: split the CPU into n logical devices (the simulated case)
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            except RuntimeError as err:
                raise DistributedError(f"train.devices = {n}: TensorFlow is already initialized ({err})") from None
        names = [f"/cpu:{i}" for i in range(n)]
        kind = "logical CPU devices (simulated)"
    topo = Topology("tensorflow", replicas=n, device_names=tuple(names))
    if n > 1:
        topo.strategy = tf.distribute.MirroredStrategy(devices=names)
        _enter_scope(topo)
        topo.engine = f"{ENGINES['tensorflow']} over {n} {kind}"
    return topo


def _enter_scope(topo: Topology) -> None:
    """Enter the strategy's scope for the rest of the process: the model and optimizer are built in it.
    The context object is kept: once garbage-collected, the scope no longer applies."""
    topo.scope = topo.strategy.scope()
    topo.scope.__enter__()


def _tf_workers() -> int:
    import json

    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("worker", "chief"))


def _start_torch(wanted) -> Topology:
    if not under_torchrun():
        if wanted not in ("auto", 1):
            raise DistributedError(
                f"train.devices = {wanted} on torch: start one process per device with "
                f"`torchrun --nproc-per-node {wanted} -m keras_gdfr.cli train ...` (docs/distributed.md)")
        return Topology("torch", device_names=(_torch_device(0),))
    import torch
    import torch.distributed as dist

    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if wanted not in ("auto", world):
        raise DistributedError(f"train.devices = {wanted}, but torchrun started {world} process(es); "
                               "use devices = \"auto\" or the same number")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)  # Keras's "cuda" device is then this rank's GPU
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(_end_process_group)
    topo = Topology("torch", replicas=world, processes=world, rank=rank, local_rank=local_rank,
                    engine=f"{ENGINES['torch']} ({dist.get_backend()}) over {world} processes",
                    device_names=tuple(_torch_device(r) for r in range(world)))  # one a rank
    return topo


def _torch_device(rank: int) -> str:
    import torch

    return f"cuda:{rank}" if torch.cuda.is_available() else f"cpu:{rank}"


def _end_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _check_batch(topo: Topology) -> None:
    if topo.global_batch % topo.replicas:
        raise DistributedError(
            f"train.batch_size = {topo.global_batch} (the global batch) does not divide over {topo.replicas} "
            f"devices; pick a multiple of {topo.replicas}")


def _sync_setting(topo: Topology, setting: bool) -> bool:
    if topo.replicas == 1:
        return False
    if topo.backend == "jax" and not setting:
        raise DistributedError("train.sync_batchnorm = false: not available on jax, whose DataParallel "
                               "computes batch moments over the global batch (sharded jit)")
    return bool(setting)


# ---------------------------------------------------------------------------
# Hooks called from keras_gdfr.training.run.


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch: ceil(n / batch), less the last one when it is cut to nothing (module docstring)."""
    full, rest = divmod(n, batch_size)
    rest -= rest % replicas()
    return full + (1 if rest else 0)


def batch_bounds(n: int, batch_size: int, step: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) in the epoch's order of rank `rank`'s part of global batch `step` (world = replicas)."""
    start = step * batch_size
    size = min(batch_size, n - start)
    size -= size % world
    part = size // world
    return start + rank * part, start + (rank + 1) * part


def train_data(data, aug, *, batch_size: int, seed: int, start_epoch: int, epochs: int, one_hot: bool):
    """The device pipeline's training batches for this process (its shard under torchrun)."""
    from keras_gdfr.data.device_pipeline import DeviceTrainData

    topo = _CURRENT
    shards = topo.processes if topo.backend == "torch" else 1

    class ShardData(DeviceTrainData):
        def batch(self, epoch, step):
            order, draws = self.plan(epoch)
            if shards > 1:  # this rank's slice of the global batch
                lo, hi = batch_bounds(len(self.data), self.batch_size, step, topo.rank, topo.replicas)
            else:  # one process feeds every replica: the whole (cut) global batch
                lo, hi = batch_bounds(len(self.data), self.batch_size, step, 0, 1)
                hi -= (hi - lo) % topo.replicas
            return self.data.batch(order[lo:hi], draws[lo:hi], self.augment)

    loader = ShardData(data, aug, batch_size=batch_size, seed=seed, start_epoch=start_epoch, epochs=epochs,
                       one_hot=one_hot)
    loader.steps_per_epoch = steps_per_epoch(len(data), batch_size)
    return loader


def prepare(model, stop) -> None:
    """After compile (and checkpoint load): torch ranks start equal and all-reduce gradients;
    tensorflow's BatchNorm layers synchronize."""
    topo = _CURRENT
    if topo is None or topo.replicas == 1:
        return
    if topo.backend == "jax":
        # One jitted step: un-jitted, each sharded op runs on its own and the CPU's
        # simulated devices deadlock in their all-reduce rendezvous.
        model.jit_compile = True
    if topo.backend == "tensorflow" and topo.sync_batchnorm:
        import keras

        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    if topo.backend == "torch":
        _broadcast_weights(model)
        _all_reduce_gradients(model.optimizer, topo, stop)


def _broadcast_weights(model) -> None:
    import torch.distributed as dist

    for v in model.variables:
        dist.broadcast(v.value.data, src=0)


def _all_reduce_gradients(optimizer, topo: Topology, stop) -> None:
    """Wrap `optimizer.apply` (called inside Keras's torch train_step) with one all-reduce of
    every gradient, averaged over the ranks, plus a stop flag so all ranks stop at one step."""
    import torch
    import torch.distributed as dist

    apply = optimizer.apply

    def apply_averaged(grads, trainable_variables=None):
        flat = torch.cat([g.reshape(-1) for g in grads] + [torch.ones(1, dtype=grads[0].dtype, device=grads[0].device)
                                                         * float(bool(stop.signal_name))])
        dist.all_reduce(flat)
        if flat[-1].item() > 0 and not stop.signal_name:
            stop.signal_name = "SIGTERM (another rank)"
        flat = flat[:-1] / topo.processes
        averaged, offset = [], 0
        for g in grads:
            averaged.append(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        return apply(averaged, trainable_variables)

    optimizer.apply = apply_averaged


def _synced_batch_norm(layer, inputs):
    """Training-mode BatchNorm with the moments of the whole global batch (all ranks).

    `_SyncMoments` all-reduces [sum, sum of squared deviations, count] in its forward and the two
    gradient sums in its backward (as `torch.nn.SyncBatchNorm` does), so that each rank's gradient
    is its share of the gradient of the global-batch loss; the optimizer wrapper averages them.
    """
    import keras
    import torch
    from keras import ops

    from keras_gdfr.layers.batch_norm import update_moving_statistic

    if not isinstance(inputs, torch.Tensor) or inputs.device.type == "meta":
        # Keras's shape tracing (meta tensors): every rank must call the same collectives, so none here.
        return keras.layers.BatchNormalization.call(layer, inputs, training=True)
    x = inputs.float() if inputs.dtype in (torch.float16, torch.bfloat16) else inputs
    axis = layer.axis % x.ndim
    gamma = layer.gamma.value if layer.scale else torch.ones(x.shape[axis], dtype=x.dtype, device=x.device)
    beta = layer.beta.value if layer.center else torch.zeros(x.shape[axis], dtype=x.dtype, device=x.device)
    y, mean, var = _sync_moments_function().apply(x, gamma, beta, axis, layer.epsilon)
    with torch.no_grad():
        update_moving_statistic(layer.moving_mean, mean, layer.momentum)
        update_moving_statistic(layer.moving_variance, var, layer.momentum)
    return ops.cast(y, layer.compute_dtype)


_SYNC_FUNCTION = None


def _sync_moments_function():
    """The autograd Function (built on first use: torch is imported only on the torch backend)."""
    global _SYNC_FUNCTION
    if _SYNC_FUNCTION is not None:
        return _SYNC_FUNCTION
    import torch
    import torch.distributed as dist

    class _SyncMoments(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta, axis, eps):
            dims = [d for d in range(x.ndim) if d != axis]
            shape = [1] * x.ndim
            shape[axis] = x.shape[axis]
            packed = torch.cat([x.sum(dims), torch.tensor([x.numel() // x.shape[axis]], dtype=x.dtype,
                                                          device=x.device)])
            dist.all_reduce(packed)
            count = packed[-1]
            mean = packed[:-1] / count
            centered = x - mean.view(shape)
            var = (centered * centered).sum(dims)
            dist.all_reduce(var)
            var = var / count
            invstd = torch.rsqrt(var + eps)
            xhat = centered * invstd.view(shape)
            ctx.save_for_backward(xhat, gamma, invstd, count)
            ctx.dims, ctx.shape = dims, shape
            return xhat * gamma.view(shape) + beta.view(shape), mean, var

        @staticmethod
        def backward(ctx, dy, _dmean, _dvar):
            xhat, gamma, invstd, count = ctx.saved_tensors
            dims, shape = ctx.dims, ctx.shape
            dbeta = dy.sum(dims)
            dgamma = (dy * xhat).sum(dims)
            sums = torch.cat([dbeta, dgamma])  # over this rank; the global sums drive dx
            dist.all_reduce(sums)
            total_dbeta, total_dgamma = sums.split(dbeta.numel())
            dx = (dy - (total_dbeta.view(shape) + xhat * total_dgamma.view(shape)) / count) \
                * (gamma * invstd).view(shape)
            return dx, dgamma, dbeta, None, None

    _SYNC_FUNCTION = _SyncMoments
    return _SYNC_FUNCTION


class NullEvents:
    """Ranks > 0's events: none, except a failure, appended to rank 0's file naming the rank."""

    def __init__(self, run_dir, rank: int):
        self.run_dir, self.rank = pathlib.Path(run_dir), rank

    def emit(self, event: str, **fields) -> dict:
        if event == "error":
            from keras_gdfr.training.events import EventWriter

            fields["message"] = f"rank {self.rank}: {fields.get('message', '')}"
            with EventWriter(self.run_dir) as writer:
                return writer.emit(event, rank=self.rank, **fields)
        return {"event": event, **fields}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self) -> None:
        pass


def run_worker(recipe, run_dir, resume: bool, run_loop, stop_request):
    """A rank > 0: the same training loop, no lock, no run-directory writes (rank 0 holds both)."""
    import time

    run_dir = pathlib.Path(run_dir)
    started = time.perf_counter()
    events = NullEvents(run_dir, _CURRENT.rank)
    with stop_request() as stop:
        try:
            return run_loop(recipe, run_dir, resume, events, stop, started)
        except Exception as error:
            events.emit("error", message=f"{type(error).__name__}: {error}", kind="exception")
            raise


def describe(recipe, backend: str) -> dict:
    """For `gdfr info` / `gdfr bench` without starting anything: what `devices` would give."""
    wanted = recipe.train.devices
    if backend == "torch":
        world = int(os.environ.get("WORLD_SIZE", 1)) if under_torchrun() else 1
        n = world if wanted == "auto" else int(wanted)
    elif backend == "jax":
        import jax

        n = len(jax.devices()) if wanted == "auto" else int(wanted)
    else:
        n = 1 if wanted == "auto" else int(wanted)
    batch = recipe.train.batch_size
    return {"devices": n, "per_device_batch": batch / n if batch % n else batch // n, "global_batch": batch,
            "engine": ENGINES.get(backend) if n > 1 else "single device"}

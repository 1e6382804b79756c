"""`gdfr sweep --engine ray`: each cell of the grid as a Ray task (the optional `ray` extra).

A task asks for `cpus_per_run` CPUs and `gpus_per_run` GPUs (Ray sets its
CUDA_VISIBLE_DEVICES), runs `gdfr train` on whichever node Ray picks with
`sweep.run_cell` (the same retry rule as the local engine: a killed or crashed run
is continued with `gdfr train --resume`), and writes into the runs folder, which
must be a path every node sees (a shared filesystem). A task whose worker or node
is lost is re-run by Ray (`max_retries`); it too resumes from what the run
directory holds. docs/sweeps.md.
"""

from __future__ import annotations

import dataclasses
import pathlib
import socket
from collections.abc import Callable, Sequence

from keras_gdfr.report import sweep as sweeping

INSTALL_HINT = 'the ray engine needs Ray: pip install -e ".[ray]" (or pip install "ray[default]")'
CONNECT_TIMEOUT_S = 5.0


class RayEngineError(RuntimeError):
    """Ray is missing or the cluster does not answer; the message is one line for the user."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayEngineError(INSTALL_HINT) from None
    return ray


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with the address, when nothing listens at HOST:PORT (ray.init would wait a long time).

    "auto" and addresses without a port are left to Ray.
    """
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise RayEngineError(f"no Ray cluster answers at {address} ({error.strerror or error})") from None


def connect(address: str | None, ray=None):
    """ray.init to the cluster at `address` (None: a Ray already initialised in this process, else a local one)."""
    ray = ray or import_ray()
    if ray.is_initialized():
        return ray
    if address:
        check_address(address)
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "a new local instance"
        hint = "; on a node of the cluster, --address auto" if address and address != "auto" else ""
        raise RayEngineError(f"could not connect to Ray at {where}: {str(error).splitlines()[0]}{hint}") from None
    return ray


def _cell_task(step: sweeping.SweepStep, train_args: list[str], command: list[str] | None, retries: int) -> dict:
    """The Ray task: one cell to its end, on a worker (its output to the run's output.log)."""
    step = sweeping.run_cell(step, train_args, command or sweeping.default_train_command(), retries)
    return dataclasses.asdict(step)


def run_on_ray(
    steps: list[sweeping.SweepStep],
    train_args: Sequence[str] = (),
    *,
    address: str | None = None,
    retries: int = sweeping.DEFAULT_RETRIES,
    cpus_per_run: float = 1,
    gpus_per_run: float | None = None,
    command: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[sweeping.SweepStep]:
    """Run the cells as Ray tasks; return the steps with their outcome (as `sweeping.run_steps`).

    Args:
        address: the cluster ("HOST:PORT", "ray://HOST:10001", "auto"); None: the Ray already
            initialised in this process, else a new local instance.
        gpus_per_run: GPUs a run asks for (None: 1 where the cluster has GPUs, else 0).
        command: the train command on the workers (default `python -m keras_gdfr.cli train`
            with the worker's interpreter).
    """
    ray = connect(address)
    if gpus_per_run is None:
        gpus_per_run = 1 if ray.cluster_resources().get("GPU", 0) else 0
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)(_cell_task)
    number = {id(s): i for i, s in enumerate(steps, start=1)}
    futures = {}
    for step in steps:
        step.run_dir = step.run_dir.absolute()  # a worker's current directory is not ours
        if pathlib.Path(step.recipe).is_file():
            step.recipe = str(pathlib.Path(step.recipe).absolute())
        header = f"[sweep {number[id(step)]}/{len(steps)}] {step.name}"
        if step.action == "skip":
            echo(f"{header}: completed in {step.run_dir}, skipped")
            continue
        echo(f"{header}: queued on Ray ({cpus_per_run:g} CPU, {gpus_per_run:g} GPU) -> {step.run_dir}")
        futures[task.remote(step, list(train_args), list(command) if command else None, retries)] = step
    while futures:
        done, _ = ray.wait(list(futures), num_returns=1)
        step = futures.pop(done[0])
        header = f"[sweep {number[id(step)]}/{len(steps)}] {step.name}"
        try:
            result = ray.get(done[0])
        except Exception as error:  # the task itself failed beyond Ray's retries (e.g. its node is gone)
            step.returncode, step.error = -1, f"Ray task failed: {type(error).__name__}: {str(error).splitlines()[0]}"
            echo(f"{header}: {step.error} ({step.run_dir})")
            continue
        step.action, step.returncode, step.attempts, step.error = (
            result["action"], result["returncode"], result["attempts"], result["error"])
        retried = f" after {step.attempts} attempts" if step.attempts > 1 else ""
        if step.failed:
            echo(f"{header}: failed with exit status {step.returncode}{retried}: {step.error} ({step.run_dir})")
        else:
            echo(f"{header}: done{retried}")
    return steps

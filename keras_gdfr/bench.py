"""`gdfr bench`: how fast a variant trains and infers here, and what a 200-epoch schedule would take.

Measures, on the active Keras backend (KERAS_BACKEND) and device:
- train: `model.fit` steps (the paper's loss and TorchSGD, as `gdfr train` compiles
  them) on device-resident batches, after `--warmup` steps (which include any
  `--jit` compilation): images/s, seconds per step;
- inference: `predict_on_batch` on the same batches: images/s;
- peak memory: `torch.cuda.max_memory_allocated` on a GPU, else the process's
  peak resident set (`ru_maxrss`, which includes the framework itself);
- MACs per image (`keras_gdfr.counting`, true MACs) and the achieved TFLOP/s,
  counting a training image as 3 x 2 x MACs (forward, and a backward of about twice
  the forward) and an inference image as 2 x MACs;
- estimates: one epoch of the dataset's train split (plus one pass over its test
  split at the inference rate) and the paper's 200 epochs;
- input pipelines: the device-resident pipeline (`keras_gdfr.data.device_pipeline`,
  any backend) on synthetic uint8 images; with `--data`, the tf.data pipeline
  (`keras_gdfr.data.pipeline.pipeline_rate`) on the real split (if TensorFlow is
  installed) and the device pipeline on the same images.

Timing: two `fit` calls (warm-up, then `--steps`), each closed by a device
synchronisation; no per-batch callback (a batch callback would make Keras read
the logs every step, a GPU sync). The step time is wall time / steps.

Beside it: `bench_instruments.py` (what is measured with: device info, syncs,
compile counters, peak memory, synthetic batches) and `bench_native.py`
(`--against native`, the PyTorch twin).
"""

from __future__ import annotations

import json
import os
import time

import click

from keras_gdfr import bench_instruments as instruments

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DATA_FORMATS = ("channels_first", "channels_last")
MEMORY_FORMATS = ("contiguous", "channels_last")
SCHEDULE_EPOCHS = 200
DEFAULT_DATASET = {32: "cifar10", 256: "imagenette"}


def run_bench(variant: str = "gdfrnet", image_size: int = 32, batch: int | None = None,
              precision: str = "float32", data_format: str | None = None, memory_format: str = "contiguous",
              jit: bool = False, steps: int = 20, warmup: int = 3, infer_steps: int | None = None,
              dataset: str | None = None, data: str | None = None, data_limit: int | None = 5000,
              num_classes: int | None = None, threads: int = 0, seed: int = 0, foreach_sgd: bool = True,
              **overrides) -> dict:
    """Run the benchmark and return its result (the `--json` object)."""
    import keras
    import numpy as np

    from keras_gdfr.counting import count_model
    from keras_gdfr.data.specs import DATASETS
    from keras_gdfr.layers import batch_norm
    from keras_gdfr.models import GDFRNet
    from keras_gdfr.training.optimizer import TorchSGD, compile_for_training
    from keras_gdfr.training.schedule import PAPER_LR

    backend = keras.backend.backend()
    if threads and backend == "torch":
        import torch

        torch.set_num_threads(threads)
    dataset = dataset or DEFAULT_DATASET.get(image_size, "cifar10")
    spec = DATASETS[dataset]
    batch = batch or spec.batch_size
    num_classes = num_classes or spec.num_classes
    if data_format is None:
        data_format = "channels_first" if backend == "torch" else keras.config.image_data_format()
    if memory_format != "contiguous":
        if backend != "torch" or data_format != "channels_first":
            raise click.UsageError("--memory-format channels_last needs the torch backend and --data-format channels_first")
        import torch

        if not torch.cuda.is_available():
            # PyTorch 2.13 CPU: the oneDNN backward of a strided 1x1 conv on NHWC memory
            # segfaults for odd batch sizes; NHWC memory is a GPU (cuDNN) optimisation.
            raise click.UsageError("--memory-format channels_last is for GPUs (on CPU, PyTorch's NHWC conv backward can crash)")
    keras.config.set_image_data_format(data_format)
    keras.mixed_precision.set_global_policy(precision)
    from keras_gdfr.data.tf_runtime import tame_if_installed

    tame_if_installed()  # before set_random_seed imports TensorFlow loudly and with the GPUs
    keras.utils.set_random_seed(seed)
    shape = (image_size, image_size, 3) if data_format == "channels_last" else (3, image_size, image_size)
    load_start = os.getloadavg()

    model = GDFRNet(variant, input_shape=shape, num_classes=num_classes, data_format=data_format, **overrides)
    count = count_model(model)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithms for these shapes
    optimizer = TorchSGD(PAPER_LR)
    optimizer.foreach = foreach_sgd  # torch: TorchSGD's multi-tensor update (the compiled step traces update_step)
    compile_for_training(model, optimizer, jit_compile=jit)
    batches = instruments.synthetic_batches(keras, min(4, max(1, steps)), batch, shape, num_classes, memory_format,
                                            seed)
    sync = instruments.DeviceSync(model, backend)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    compiled = instruments.DynamoCount(backend, jit)
    started = time.perf_counter()
    model.fit(instruments.cycle_dataset(keras, batches, warmup), epochs=1, verbose=0, shuffle=False)
    sync()
    warmup_s = time.perf_counter() - started
    compiled.mark_warm()
    started = time.perf_counter()
    history = model.fit(instruments.cycle_dataset(keras, batches, steps), epochs=1, verbose=0, shuffle=False)
    sync()
    train_s = time.perf_counter() - started
    loss = float(history.history["loss"][-1])

    infer_steps = infer_steps or steps
    for x, _ in batches[:2]:  # warm-up (and compilation) of the predict function
        model.predict_on_batch(x)
    sync()
    started = time.perf_counter()
    for i in range(infer_steps):
        model.predict_on_batch(batches[i % len(batches)][0])
    sync()
    infer_s = time.perf_counter() - started
    peak_mib, peak_kind = instruments.peak_memory_mib(backend)

    train_img_s = steps * batch / train_s
    infer_img_s = infer_steps * batch / infer_s
    epoch_train_s = spec.train_size / train_img_s
    epoch_s = epoch_train_s + spec.test_size / infer_img_s
    result = {
        "variant": variant, "input": image_size, "batch": batch, "precision": precision,
        "data_format": data_format, "memory_format": memory_format, "jit": jit,
        "fused_batchnorm": backend == "torch" and batch_norm.FUSED_TORCH,
        "foreach_sgd": bool(foreach_sgd and backend == "torch" and not jit),
        "backend": backend, "keras": keras.__version__, **instruments.device_info(backend),
        "steps": steps, "warmup": warmup, "warmup_s": warmup_s,
        "train_step_s": train_s / steps, "train_img_s": train_img_s,
        "infer_step_s": infer_s / infer_steps, "infer_img_s": infer_img_s,
        "peak_memory_mib": peak_mib, "peak_memory_kind": peak_kind,
        "params": count.params, "macs": count.macs,
        "train_tflops": train_img_s * 6 * count.macs / 1e12,
        "infer_tflops": infer_img_s * 2 * count.macs / 1e12,
        "dataset": dataset, "train_size": spec.train_size, "test_size": spec.test_size,
        "epoch_train_s": epoch_train_s, "epoch_s": epoch_s,
        f"schedule_{SCHEDULE_EPOCHS}_s": SCHEDULE_EPOCHS * epoch_s,
        "final_loss": loss, "finite": bool(np.isfinite(loss)), **compiled.result(),
        "load_avg_start": list(load_start), "load_avg_end": list(os.getloadavg()),
        "commit": instruments.git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    result.update(_pipeline_rates(backend, spec, batch, image_size, data, data_limit, data_format, seed))
    return result


def _pipeline_rates(backend, spec, batch, image_size, data, data_limit, data_format, seed) -> dict:
    """The input pipelines' own rates: the device pipeline (any backend) and, with `--data`, tf.data."""
    import numpy as np

    from keras_gdfr.data import device_pipeline, tf_runtime
    from keras_gdfr.data.augment import Augmentation
    from keras_gdfr.data.split import SplitData

    out: dict = {}
    if data:
        from keras_gdfr.data import pipeline
        from keras_gdfr.data.sources import load_dataset

        split = load_dataset(spec.name, "train", data_dir=data, limit=data_limit or None)
        out["pipeline_data"] = split.description
        if not tf_runtime.available():  # no TensorFlow (the GPU image)
            out["pipeline_img_s"] = None
            out["pipeline_note"] = "tf.data unavailable: TensorFlow is not installed"
        else:
            out["pipeline_img_s"] = pipeline.pipeline_rate(split, spec, batch_size=batch, seed=seed)
    elif image_size == spec.image_size:
        rng = np.random.default_rng(seed)
        n = max(batch * 8, 1024) if image_size < 64 else batch * 4
        split = SplitData(labels=rng.integers(0, spec.num_classes, n),
                          class_names=[str(i) for i in range(spec.num_classes)],
                          description=f"synthetic uint8 ({n}, {image_size}, {image_size}, 3)", image_size=image_size,
                          images=rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8))
        out["device_pipeline_data"] = split.description
    else:
        return out
    out["device_pipeline_img_s"] = device_pipeline.device_pipeline_rate(
        split, Augmentation.for_spec(spec), batch_size=batch, seed=seed, data_format=data_format)
    return out


def format_table(result: dict) -> str:
    """The result as aligned `name  value` lines."""
    def num(value, digits=1):
        return "-" if value is None else f"{value:,.{digits}f}"

    rows = [
        ("model", f"{result['variant']} @ {result['input']} px, batch {result['batch']}, {result['precision']}, "
                  f"{result['data_format']}{'' if result['memory_format'] == 'contiguous' else ' (NHWC memory)'}, "
                  f"jit {'on' if result['jit'] else 'off'}"),
        ("backend / device", f"{result['backend']} / {result.get('accelerator') or result['device']}"),
        ("params, MACs/image", f"{result['params']:,d}, {result['macs'] / 1e9:.3f} G"),
        ("train", f"{num(result['train_img_s'])} img/s, {result['train_step_s'] * 1e3:.1f} ms/step, "
                  f"{num(result['train_tflops'], 2)} TFLOP/s"
                  + (" (foreach SGD)" if result.get("foreach_sgd") else "")
                  + ("" if result.get("fused_batchnorm") or result["backend"] != "torch" else " (Keras BatchNorm)")),
        ("inference", f"{num(result['infer_img_s'])} img/s, {result['infer_step_s'] * 1e3:.1f} ms/step, "
                      f"{num(result['infer_tflops'], 2)} TFLOP/s"),
        ("warm-up", f"{result['warmup']} steps in {result['warmup_s']:.1f} s"
                    + (f" ({result['compiled_graphs_warmup']} graphs compiled; after warm-up "
                       f"{result['recompiles_after_warmup']} recompiles; {result['graph_breaks']} graph breaks)"
                       if "recompiles_after_warmup" in result else "")),
        ("peak memory", f"{num(result['peak_memory_mib'])} MiB ({result['peak_memory_kind']})"),
        (f"epoch ({result['dataset']})", f"{result['epoch_s']:.1f} s ({result['epoch_train_s']:.1f} s train on "
                                         f"{result['train_size']:,d} + eval on {result['test_size']:,d})"),
        (f"{SCHEDULE_EPOCHS} epochs", f"{result[f'schedule_{SCHEDULE_EPOCHS}_s'] / 3600:.2f} h"),
    ]
    if "device_pipeline_img_s" in result:
        rows.append(("device pipeline", f"{num(result['device_pipeline_img_s'])} img/s"))
    if "pipeline_img_s" in result:
        rows.append(("tf.data pipeline", f"{num(result['pipeline_img_s'])} img/s"
                     + (f" ({result['pipeline_note']})" if result.get("pipeline_note") else "")))
    if "keras_native_ratio" in result:
        rows.append(("Keras / native", f"{result['keras_native_ratio']:.3f}x throughput (Keras {num(result['keras_img_s'])}"
                     f" img/s, native PyTorch {num(result['native_img_s'])} img/s; {result['against_variant']}, batch "
                     f"{result['against_batch']}, {'compiled' if result['against_jit'] else 'eager'}"
                     f"{', foreach SGD' if result.get('against_foreach_sgd') else ''}, "
                     f"{'train_on_batch' if result.get('against_keras_call') == 'train_on_batch' else 'fit steps'}, interleaved, "
                     f"median of {result['against_rounds']} rounds x {result['against_steps']} steps)"))
    rows.append(("load average", " ".join(f"{v:.2f}" for v in result["load_avg_start"]) + " (start)"))
    rows.append(("commit, date", f"{result['commit']}, {result['date']}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


@click.command("bench")
@click.option("--variant", default="gdfrnet", show_default=True, help="Model variant (see `gdfr recipes`).")
@click.option("--input", "image_size", type=click.Choice(["32", "256"]), default="32", show_default=True,
              help="Input image size.")
@click.option("--batch", type=click.IntRange(min=1), help="Batch size (default: the paper's, 128 at 32 px, 64 at 256 px).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True)
@click.option("--data-format", type=click.Choice(DATA_FORMATS),
              help="Image layout (default: channels_first on torch, else keras.config.image_data_format()).")
@click.option("--memory-format", type=click.Choice(MEMORY_FORMATS), default="contiguous", show_default=True,
              help="torch + channels_first: store input batches NHWC (channels_last memory format).")
@click.option("--jit/--no-jit", default=False, show_default=True, help="jit_compile (torch.compile on torch).")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Timed train (and inference) steps.")
@click.option("--warmup", type=click.IntRange(min=1), default=3, show_default=True, help="Untimed train steps first.")
@click.option("--dataset", help="Dataset whose split sizes the estimates use (default: cifar10 at 32 px, imagenette at 256).")
@click.option("--data", "data_path", help="Real data (ImageFolder .zip/dir, packed .npz, ...) to time the input pipelines on.")
@click.option("--data-limit", type=click.IntRange(min=0), default=5000, show_default=True,
              help="Images of --data to load (0: all).")
@click.option("--threads", type=click.IntRange(min=0), default=0, help="torch CPU threads (0: torch's default).")
@click.option("--foreach-sgd/--per-variable-sgd", default=True, show_default=True,
              help="torch, eager: TorchSGD's update as multi-tensor (torch._foreach) ops, the default, or its "
                   "per-variable loop (for A/B timing).")
@click.option("--against", type=click.Choice(["native"]),
              help="Also time the native PyTorch twin (bench/native_gdfrnet.py) interleaved with Keras: the ratio.")
@click.option("--rounds", type=click.IntRange(min=1), default=6, show_default=True,
              help="--against: interleaved rounds (each --steps Keras then --steps native train steps).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel replicas (jax, tensorflow); --batch is the global batch. See docs/distributed.md.")
def bench(variant, image_size, batch, precision, data_format, memory_format, jit, steps, warmup, dataset,
          data_path, data_limit, threads, foreach_sgd, against, rounds, as_json, devices):
    """Train and inference speed, memory, MACs and TFLOP/s of a variant; 200-epoch estimate.

    Uses the backend in KERAS_BACKEND and its default device. Example (CPU, seconds):
    `KERAS_BACKEND=torch gdfr bench --variant tiny --steps 2 --batch 8`.
    """
    from keras_gdfr.variants import VARIANTS

    if variant not in VARIANTS:
        raise click.BadParameter(f"unknown variant {variant!r}; see `gdfr recipes`", param_hint="--variant")
    topology = _bench_devices(devices, batch or (128 if image_size == "32" else 64))
    jit = jit or topology.backend == "jax" and topology.replicas > 1  # jax DataParallel needs the jitted step
    result = run_bench(variant=variant, image_size=int(image_size), batch=batch, precision=precision,
                       data_format=data_format, memory_format=memory_format, jit=jit, steps=steps, warmup=warmup,
                       dataset=dataset, data=data_path, data_limit=data_limit, threads=threads,
                       foreach_sgd=foreach_sgd)
    result.update(devices=topology.replicas, per_device_batch=topology.per_device_batch,
                  distribution=topology.engine,
                  train_img_s_per_device=result["train_img_s"] / topology.replicas)
    if against == "native":
        from keras_gdfr.bench_native import against_native

        result.update(against_native(variant, int(image_size), batch or result["batch"], rounds=rounds,
                                     steps=steps, jit=jit, threads=threads, foreach_sgd=foreach_sgd))
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(format_table(result))
        click.echo(f"{'devices':<20}{topology.replicas} ({topology.engine}), per-device batch "
                   f"{topology.per_device_batch}, {result['train_img_s_per_device']:,.1f} train img/s per device")


def _bench_devices(devices: int, batch: int):
    """Set up `devices` replicas as `gdfr train` does (keras_gdfr.training.distributed)."""
    import types

    from keras_gdfr.training import distributed

    if devices > 1 and os.environ.get("KERAS_BACKEND", "tensorflow") == "torch":
        raise click.BadParameter("torch runs one process per device: time `gdfr train` under torchrun "
                                 "(docs/distributed.md)", param_hint="--devices")
    recipe = types.SimpleNamespace(train=types.SimpleNamespace(devices=devices, batch_size=batch, sync_batchnorm=True))
    try:
        return distributed.start(recipe)
    except distributed.DistributedError as error:
        raise click.BadParameter(str(error), param_hint="--devices") from None

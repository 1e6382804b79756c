"""The `gdfr report`, `gdfr viz` and `gdfr sweep` commands.

Only click is imported here; each command imports what it drives (matplotlib,
keras) in its body, so `gdfr --help` stays fast.
"""

from __future__ import annotations

import pathlib
import sys

import click


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder for report.md and its figures/.")
@click.option("--count/--no-count", default=True, show_default=True,
              help="Build each variant to count parameters and MACs (else use the runs' run_start numbers).")
def report(run_dirs: tuple[str, ...], out_dir: str, count: bool) -> None:
    """Markdown report of RUN_DIRS beside the paper's tables.

    Each RUN_DIR is a run directory or a folder of them (e.g. a sweep's runs/).
    Writes OUT/report.md with measured test accuracy beside Tables 4-7 and 9,
    parameters and MACs beside Table 8, and per run the training curves,
    confusion matrix and ROC curves (from eval.json) as PNGs in OUT/figures/.
    """
    from keras_gdfr.report.report import write_report
    from keras_gdfr.report.runs import find_runs

    runs, skipped = find_runs(run_dirs)
    if not runs:  # an empty report with exit 0 looked like success
        for message in skipped:
            click.echo(f"skipped: {message}", err=True)
        click.echo(f"error: no run directory (recipe.json + events.jsonl) in {', '.join(run_dirs)}", err=True)
        sys.exit(1)
    path, skipped = write_report(run_dirs, out_dir, count=count)
    for message in skipped:
        click.echo(f"skipped: {message}", err=True)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--image", "image_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The image to visualise (any format PIL reads).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for the heatmap PNGs. [default: SOURCE/viz for a run directory, viz/ beside a .keras file]")
@click.option("--dataset", default=None,
              help="Dataset whose mean/std normalise the image, for a bare .keras file (a run directory knows its own).")
@click.option("--reduce", type=click.Choice(["mean", "l2"]), default="mean", show_default=True,
              help="Channel reduction: mean of |feature| or L2 norm.")
def viz(source: str, image_path: str, out_dir: str | None, dataset: str | None, reduce: str) -> None:
    """Feature heatmaps of one image, in the style of the paper's Figure 17.

    SOURCE is a run directory (its model.keras, else its checkpoint) or a .keras
    file. Writes the (a) plain residual block, (b) FRRB, (c) FGCM and (d) FOM
    maps over the image, each as a PNG, plus all of them in one panel.
    """
    from keras_gdfr.data.specs import DATASETS

    if dataset is not None and dataset not in DATASETS:
        raise click.BadParameter(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})", param_hint="--dataset")
    from keras_gdfr.report.viz import visualize

    if out_dir is None:  # beside what made them, never into whatever folder this runs in (a clone)
        out_dir = str(pathlib.Path(source) / "viz" if pathlib.Path(source).is_dir() else pathlib.Path(source).parent / "viz")
    try:
        written = visualize(source, image_path, out_dir, dataset=dataset, reduce=reduce)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    for key, path in written.items():
        click.echo(f"{key:6s} {path}")


def _variant_list(ctx, param, value: str | None) -> list[str]:
    from keras_gdfr.variants import VARIANTS

    if value is None:
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise click.BadParameter(f"unknown variant(s) {unknown or value!r} (known: {', '.join(VARIANTS)})")
    return names


def _parallel(ctx, param, value: str) -> str | int:
    if value == "auto" or (value.isdigit() and int(value) >= 1):
        return value if value == "auto" else int(value)
    raise click.BadParameter(f"{value!r}: a number of processes (1 or more) or auto")


def _assumed_source(engine: str) -> str:
    """How the plan names the assumed throughput: a GPU's, which a run on this machine's CPU does not reach."""
    from keras_gdfr.report import sweep as sweeping

    if engine == "local" and not sweeping.visible_gpus():
        return ("assumed for one data-centre GPU, and no GPU is visible here: on this CPU expect hundreds of "
                "times longer; `gdfr bench --json > bench.json` then --bench bench.json")
    return "assumed; --bench FILE to use a measured figure"


def _split_recipes(items: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """RECIPES are the leading arguments; from the first option on, they are gdfr train's."""
    for index, item in enumerate(items):
        if item.startswith("-"):
            return list(items[:index]), list(items[index:])
    return list(items), []


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("recipes", nargs=-1)
@click.option("--table", "table_names", multiple=True, metavar="NAME",
              help="A paper grid by name (repeatable): 9 = net1..net5, 4 = frm-a..d, 5, 6, 7, 9-tiny "
                   "(tiny-net2..5), 3 and fig8 (no datasets: give RECIPES). Without RECIPES, its datasets.")
@click.option("--variants", callback=_variant_list, help="Comma-separated variants, after the tables' ones.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Repeat each cell with train.seed 0..N-1 (run directories <recipe>-<variant>-s<seed>).")
@click.option("--runs", "runs_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the sweep's run directories (on storage every node sees, for Ray).")
@click.option("--epochs", type=int, default=None, help="Passed to gdfr train.")
@click.option("--data", default=None, help="Passed to gdfr train (made absolute).")
@click.option("--limit-train", type=int, default=None, help="Passed to gdfr train.")
@click.option("--limit-test", type=int, default=None, help="Passed to gdfr train.")
@click.option("--set", "sets", multiple=True, help="Passed to gdfr train (repeatable).")
@click.option("--parallel", default="1", show_default=True, callback=_parallel,
              help="Local engine: runs at once, each on its own GPU (CUDA_VISIBLE_DEVICES) or share of the "
                   "CPU cores; auto = one per visible GPU.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: each run a Ray task on a cluster (pip install -e \".[ray]\").")
@click.option("--address", default=None, help="Ray cluster address (HOST:PORT, ray://HOST:10001, auto); "
              "default: a new local Ray instance.")
@click.option("--cpus-per-run", type=float, default=1.0, show_default=True, help="Ray: CPUs a run asks for.")
@click.option("--gpus-per-run", type=float, default=None, help="Ray: GPUs a run asks for (default 1 if the cluster has GPUs).")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Further attempts of a run that fails or is killed, each with gdfr train --resume.")
@click.option("--bench", "bench_file", type=click.Path(dir_okay=False), default=None,
              help="A `gdfr bench --json` output: its train TFLOP/s prices the plan.")
@click.option("--tflops", type=float, default=None, help="Sustained training TFLOP/s per device for the estimate.")
@click.option("--yes", "-y", is_flag=True, help="Start without asking.")
@click.option("--dry-run", is_flag=True, help="Print the plan and each run's command, run nothing.")
@click.pass_context
def sweep(ctx, recipes, table_names, variants, seeds, runs_dir, epochs, data, limit_train, limit_test, sets,
          parallel, engine, address, cpus_per_run, gpus_per_run, retries, bench_file, tflops, yes, dry_run) -> None:
    """Train a grid of recipes x variants x seeds, several at once, resumably.

    RECIPES are .toml files or recipe names (cifar10, ...); with --table and no
    RECIPES, the table's datasets. Each cell runs as its own `gdfr train` process
    into RUNS/<recipe>-<variant>[-s<seed>]. The plan (runs, epochs, device-hours) is
    printed first and confirmed unless --yes. Run the same command again to resume:
    completed cells are skipped, incomplete ones continue with --resume. Options
    after the known ones are passed to gdfr train unchanged. docs/sweeps.md.
    """
    import os

    from keras_gdfr.report import sweep as sweeping
    from keras_gdfr.report import sweep_plan

    recipes, extra = _split_recipes(recipes)
    train_args = []
    data = os.path.abspath(os.path.expanduser(data)) if data else data
    for flag, value in (("--epochs", epochs), ("--data", data), ("--limit-train", limit_train),
                        ("--limit-test", limit_test)):
        if value is not None:
            train_args += [flag, str(value)]
    for text in sets:
        train_args += ["--set", text]
    train_args += extra + list(ctx.args)
    if engine == "ray" and parallel != 1:
        raise click.UsageError("--parallel is for --engine local; Ray runs as many as the cluster's resources allow")
    try:
        recipes, variants = sweep_plan.resolve_grid(table_names, recipes, variants)
        loaded = sweep_plan.check_recipes(recipes, variants, dict(
            sets=list(sets), epochs=epochs, data=data, limit_train=limit_train, limit_test=limit_test))
        throughput = ((sweep_plan.bench_tflops(bench_file), f"gdfr bench {bench_file}") if bench_file else
                      (tflops, "--tflops") if tflops else (sweep_plan.ASSUMED_TFLOPS, _assumed_source(engine)))
    except sweep_plan.PlanError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if engine == "ray":
        _check_ray(address)
        runs_dir = os.path.abspath(runs_dir)
    slots = sweeping.local_slots(parallel) if engine == "local" else []
    steps = sweeping.plan_cells(recipes, variants, range(seeds) if seeds else None, runs_dir)
    costs = {id(s): sweep_plan.cell_cost(loaded[s.recipe, s.variant], s, sweep_plan.count_macs(loaded[s.recipe, s.variant]))
             for s in steps}
    click.echo(sweep_plan.plan_text(steps, costs, *throughput, slots=len(slots) if engine == "local" else None,
                                    runs_dir=runs_dir))
    if dry_run:
        for step in steps:
            click.echo(f"{step.name:24s} {step.action:7s} gdfr train {' '.join(sweeping.train_arguments(step.recipe, step, train_args))}")
        return
    if not any(s.action != "skip" for s in steps):
        click.echo("every run has completed; nothing to do")
        return
    if not yes and not _confirmed():
        click.echo("nothing started (pass --yes to start without asking)", err=True)
        sys.exit(1)
    sweeping.write_manifest(runs_dir, steps, _sweep_name(table_names, recipes, variants, seeds))
    try:
        if engine == "ray":
            steps = _run_on_ray(steps, train_args, address, retries, cpus_per_run, gpus_per_run)
        else:
            steps = sweeping.run_steps(steps, train_args, retries=retries, slots=slots, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("sweep interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    except sweeping.SweepTerminated as stopped:
        click.echo(f"sweep terminated (SIGTERM): {stopped}, its checkpoint kept; run the same command again "
                   "to resume", err=True)
        sys.exit(143)
    click.echo(sweeping.summary(steps))
    if any(step.interrupted for step in steps):
        sys.exit(130)
    if any(step.failed for step in steps):
        sys.exit(1)


def _confirmed() -> bool:
    try:
        return click.confirm("Start?", default=False)
    except click.Abort:  # no answer (end of input, Ctrl-C)
        click.echo("", err=True)
        return False


def _run_on_ray(steps, train_args, address, retries, cpus_per_run, gpus_per_run):
    from keras_gdfr.report import sweep_ray

    try:
        return sweep_ray.run_on_ray(steps, train_args, address=address, retries=retries,
                                    cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, echo=click.echo)
    except sweep_ray.RayEngineError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _check_ray(address: str | None) -> None:
    """One line and exit 1 when Ray is missing or `address` does not answer (before anything starts)."""
    from keras_gdfr.report import sweep_ray

    try:
        sweep_ray.import_ray()
        if address:
            sweep_ray.check_address(address)
    except sweep_ray.RayEngineError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _sweep_name(table_names, recipes, variants, seeds) -> str:
    """'table 9 x cifar10 x 3 seeds': the sweep's name in its manifest and the TUI."""
    what = " + ".join(f"table {t}" for t in table_names) or ",".join(variants)
    return f"{what} x {','.join(map(str, recipes))}" + (f" x {seeds} seeds" if seeds else "")

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


def _variant_list(ctx, param, value: str) -> list[str]:
    from keras_gdfr.variants import VARIANTS

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise click.BadParameter(f"unknown variant(s) {unknown or value!r} (known: {', '.join(VARIANTS)})")
    return names


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("recipe")
@click.option("--variants", required=True, callback=_variant_list,
              help="Comma-separated variant names, trained in this order, e.g. net1,net2,net3.")
@click.option("--runs", "runs_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the sweep's run directories (<runs>/<recipe>-<variant>).")
@click.option("--epochs", type=int, default=None, help="Passed to gdfr train.")
@click.option("--data", default=None, help="Passed to gdfr train.")
@click.option("--limit-train", type=int, default=None, help="Passed to gdfr train.")
@click.option("--limit-test", type=int, default=None, help="Passed to gdfr train.")
@click.option("--set", "sets", multiple=True, help="Passed to gdfr train (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what each variant would do, run nothing.")
@click.pass_context
def sweep(ctx, recipe, variants, runs_dir, epochs, data, limit_train, limit_test, sets, dry_run) -> None:
    """Train several variants of RECIPE one after another, resumably.

    Each variant runs as its own `gdfr train` process into RUNS/<recipe>-<variant>.
    Run the same command again to resume: completed variants are skipped, an
    incomplete one continues with --resume. Options after the known ones are
    passed to gdfr train unchanged.
    """
    from keras_gdfr.report import sweep as sweeping

    train_args = []
    for flag, value in (("--epochs", epochs), ("--data", data), ("--limit-train", limit_train),
                        ("--limit-test", limit_test)):
        if value is not None:
            train_args += [flag, str(value)]
    for text in sets:
        train_args += ["--set", text]
    train_args += list(ctx.args)
    if dry_run:
        for step in sweeping.plan_sweep(recipe, variants, runs_dir):
            args = sweeping.train_arguments(recipe, step, train_args)
            click.echo(f"{step.variant:16s} {step.action:7s} gdfr train {' '.join(args)}")
        return
    try:
        steps = sweeping.run_sweep(recipe, variants, runs_dir, train_args, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("sweep interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    click.echo(sweeping.summary(steps))
    if any(step.returncode in sweeping.INTERRUPTED_CODES for step in steps):
        sys.exit(130)
    if any(step.failed for step in steps):
        sys.exit(1)

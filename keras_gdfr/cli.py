"""`gdfr`: the command-line entry point. Each command lives beside what it drives."""

from __future__ import annotations

import json
import os
import sys
import time

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-gdfr")
def main() -> None:
    """Train, evaluate, benchmark and report on GDFRNet (keras-gdfr)."""


# Commands are registered below by the modules that own them (click only at import;
# keras and the data stack load inside the command bodies).

from keras_gdfr.training.commands import eval_command, info, recipes, train  # noqa: E402

for _command in (train, eval_command, info, recipes):
    main.add_command(_command)

from keras_gdfr.report.cli import report, sweep, viz  # noqa: E402  (click only; heavy imports in the bodies)

for _command in (report, viz, sweep):
    main.add_command(_command)

from keras_gdfr.bench import bench  # noqa: E402  (click only; keras loads in the bodies)

main.add_command(bench)

from keras_gdfr.export import export_command  # noqa: E402  (click only; keras loads in the bodies)


# `gdfr predict` and `gdfr pack` live here, not beside what they drive: keras_gdfr.predict
# is the Python API (`predict_files`, in the README) and keras_gdfr.data.packed is read by
# every loader; both import without click.
@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="[SOURCE] IMAGES...")
@click.option("--preset", help="A preset (a shipped name, see `gdfr preset list`, or a preset directory) instead of SOURCE.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown per image.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, one a line.")
def predict(paths, preset, top_k, as_json):
    """Class names and probabilities for IMAGES (files or folders) from SOURCE (a run directory or .keras) or --preset.

    An image that cannot be read is reported on stderr (its path and why) and the exit status is 1;
    the others are predicted all the same.
    """
    import pathlib

    from keras_gdfr.predict import predict_files, predict_preset_files

    try:
        if preset is not None:
            rows = predict_preset_files(preset, paths, top_k)
        else:
            source, images = paths[0], paths[1:]
            if not pathlib.Path(source).exists():
                raise ValueError(f"{source}: no such run directory or .keras file (or give --preset NAME)")
            if not images:
                raise ValueError("no IMAGES given (gdfr predict SOURCE IMAGES... or gdfr predict --preset NAME IMAGES...)")
            rows = predict_files(source, images, top_k)
    except ValueError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    failed = [row for row in rows if "error" in row]
    for row in rows:
        if "error" in row:
            click.echo(f"error: {row['path']}: {row['error']}", err=True)
        elif as_json:
            click.echo(json.dumps(row))
        else:
            shown = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
            click.echo(f"{row['path']}: {shown}")
    if failed:
        click.echo(f"error: {len(failed)} of {len(rows)} image(s) could not be read", err=True)
        sys.exit(1)


@click.command("pack")
@click.argument("source", type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--dataset", default="", help="Dataset name to record (e.g. cifar10); loading checks it.")
@click.option("--split", "splits", multiple=True, default=("train", "test"), show_default=True,
              help="Splits to pack (repeatable).")
def pack(source, out, dataset, splits):
    """Pack an ImageFolder (folder, .zip, tar) into ONE compressed numpy file (.npz).

    Every file's bytes (unchanged), label, split and path, and the class names;
    readable without TensorFlow (`keras_gdfr.data.packed`), loadable with
    `--data OUT` wherever a dataset is read.
    """
    from keras_gdfr.data.packed import SUFFIX, PackedError, pack_imagefolder
    from keras_gdfr.data.errors import DataError

    if not out.endswith(SUFFIX):
        raise click.BadParameter(f"the output name must end in {SUFFIX}", param_hint="OUT")
    started = time.perf_counter()
    try:
        packed = pack_imagefolder(source, out, dataset=dataset, splits=splits)
    except (PackedError, DataError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except OSError as err:  # a read-only folder, a full disk: written atomically, nothing torn is left
        click.echo(f"error: {out}: cannot write the packed file ({err.strerror or err}); nothing was written",
                   err=True)
        sys.exit(1)
    size = os.path.getsize(out)
    counts = ", ".join(f"{s} {c:,d}" for s, c in zip(packed.splits, packed.counts))
    click.echo(f"{out}: {size / 2**20:.1f} MiB, {counts}, {len(packed.class_names)} classes "
               f"({time.perf_counter() - started:.1f} s)")


from keras_gdfr.presets.commands import preset  # noqa: E402  (click only; keras loads in the bodies)

for _command in (predict, pack, export_command, preset):
    main.add_command(_command)

if __name__ == "__main__":
    main()

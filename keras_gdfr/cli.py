"""`gdfr`: the command-line entry point. Each command lives beside what it drives."""

from __future__ import annotations

import json
import sys

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

from keras_gdfr.bench import bench, pack  # noqa: E402  (click only; keras loads in the bodies)

for _command in (bench, pack):
    main.add_command(_command)

from keras_gdfr.export import export_command  # noqa: E402  (click only; keras loads in the bodies)


# `gdfr predict` lives here, not in keras_gdfr.predict: that module is the Python API
# (`predict_files`, in the README) and must import without click.
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


from keras_gdfr.presets.commands import preset  # noqa: E402  (click only; keras loads in the bodies)

for _command in (predict, export_command, preset):
    main.add_command(_command)

if __name__ == "__main__":
    main()

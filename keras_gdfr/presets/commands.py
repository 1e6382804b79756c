"""`gdfr preset save` and `gdfr preset list`. Keras loads inside the command bodies."""

from __future__ import annotations

import sys

import click


def _fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
def preset():
    """Presets: trained GDFRNets by name (GDFRNetImageClassifier.from_preset, gdfr predict --preset)."""


@preset.command(name="save")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("name")
@click.option("--dest", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder to write NAME/ into; keras_gdfr/presets ships it inside the package.")
@click.option("--dtype", "weights_dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage dtype of the weights (float16: half the size; they load into the model's dtype).")
@click.option("--description", help="One line for list_presets() (default: variant and dataset).")
@click.option("--zip", "make_zip", is_flag=True, help="Also write NAME.zip and print its sha256 (for from_preset(url, file_hash=...)).")
@click.option("--force", is_flag=True, help="Replace an existing DEST/NAME.")
def save_command(run_dir, name, dest, weights_dtype, description, make_zip, force):
    """Turn the finished run in RUN_DIR (model.keras, recipe.json, eval.json) into the preset DEST/NAME."""
    from keras_gdfr.presets import PresetError
    from keras_gdfr.presets.from_run import save_run_as_preset, zip_preset

    try:
        folder = save_run_as_preset(run_dir, name, dest, weights_dtype, description, force)
    except PresetError as error:
        _fail(str(error))
    from keras_gdfr.presets import read_metadata

    metadata = read_metadata(folder)
    click.echo(f"wrote {folder}: {metadata['class']}, {metadata['dataset']} test top-1 {metadata['test_top1']:.4f}, "
               f"{metadata['parameter_count']} parameters, weights {metadata['dtype']}")
    if make_zip:
        archive, digest = zip_preset(folder)
        click.echo(f"wrote {archive}: sha256 {digest}")


@preset.command(name="list")
def list_command():
    """The presets shipped with this package."""
    from keras_gdfr.presets import list_presets

    presets = list_presets()
    if not presets:
        click.echo("no presets shipped in this version")
    for name, metadata in presets.items():
        top1 = metadata.get("test_top1")
        shown = f"{top1:.4f}" if isinstance(top1, (int, float)) else "?"
        click.echo(f"{name}: {metadata.get('description', '')} (dataset {metadata.get('dataset')}, test top-1 {shown}, "
                   f"weights {metadata.get('dtype')}, commit {str(metadata.get('commit'))[:10]})")

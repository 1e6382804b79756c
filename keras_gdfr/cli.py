"""`gdfr`: the command-line entry point. Each command lives beside what it drives."""

from __future__ import annotations

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
from keras_gdfr.predict import predict  # noqa: E402

from keras_gdfr.presets.commands import preset  # noqa: E402  (click only; keras loads in the bodies)

for _command in (predict, export_command, preset):
    main.add_command(_command)

if __name__ == "__main__":
    main()

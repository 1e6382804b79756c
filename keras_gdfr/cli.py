"""`gdfr`: the command-line entry point. Each command lives beside what it drives."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-gdfr")
def main() -> None:
    """Train, evaluate, benchmark and report on GDFRNet (keras-gdfr)."""


# Commands are registered below by the modules that own them.

if __name__ == "__main__":
    main()

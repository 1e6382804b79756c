"""Where the official archives live by default, and fetching one (`keras.utils.get_file`)."""

from __future__ import annotations

import os
import pathlib

from keras_gdfr.data.errors import DataError
from keras_gdfr.data.specs import DatasetSpec


def default_root(name: str) -> pathlib.Path:
    """``$KERAS_HOME/datasets/<name>`` (``~/.keras/datasets/<name>``)."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return pathlib.Path(home) / "datasets" / name


def download(spec: DatasetSpec, filename: str, url: str, root: pathlib.Path) -> pathlib.Path:
    import keras  # only here: listing and reading local data needs no Keras

    root.mkdir(parents=True, exist_ok=True)
    try:
        return pathlib.Path(keras.utils.get_file(filename, url, cache_dir=str(root), cache_subdir=""))
    except Exception as err:
        raise DataError(
            f"could not download {spec.name} from {url} into {root}: {err} "
            f"(offline: put the archive there yourself and pass its folder as data_dir)"
        ) from err

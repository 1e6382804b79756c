"""Presets: a trained GDFRNet by name, in keras-hub's preset layout.

A preset is a directory (keras-hub's file names):

    config.json           the backbone (`GDFRNetBackbone`, serialised by Keras)
    model.weights.h5      the backbone's weights
    task.json             the classifier (`GDFRNetImageClassifier`, backbone and preprocessor inside)
    task.weights.h5       the head's weights (the layers outside the backbone)
    preprocessor.json     the preprocessor (resize + the dataset's normalisation)
    metadata.json         what it is: dataset, test top-1, recipe, commit, dates, storage
                          dtype, class names, image size, and the sha256 of every file above

A backbone-only preset has the first two (and metadata.json). Presets shipped with the
package live in `keras_gdfr/presets/<name>/` (package data); `list_presets()` lists them.
`from_preset` also takes a local preset directory, or the URL of a `.zip` / `.tar.gz` of
one (fetched by `keras.utils.get_file`, checked against `file_hash` when given).
`gdfr preset save RUN_DIR NAME` writes one from a finished run (`keras_gdfr.presets.save`).

Keras is not imported here (listing presets stays fast); loading and saving are in
`keras_gdfr.models` and `keras_gdfr.presets.save`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import pathlib
import re

SHIPPED_DIR = pathlib.Path(__file__).resolve().parent
CONFIG_FILE = "config.json"
BACKBONE_WEIGHTS_FILE = "model.weights.h5"
TASK_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"
PREPROCESSOR_FILE = "preprocessor.json"
METADATA_FILE = "metadata.json"
# metadata.json: "files": {file name: sha256} of these, checked before anything loads.
CHECKED_FILES = (CONFIG_FILE, BACKBONE_WEIGHTS_FILE, TASK_FILE, TASK_WEIGHTS_FILE, PREPROCESSOR_FILE)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")
URL_SCHEMES = ("http://", "https://", "file://")


class PresetError(ValueError):
    """A preset that cannot be used: unknown, incomplete, corrupt, or not fitting. One line."""


def list_presets() -> dict[str, dict]:
    """{name: metadata} of the presets shipped inside the package, sorted by name.

    Each metadata holds (among others) `description`, `dataset`, `test_top1` (top-1
    accuracy on the dataset's test set, a fraction), `recipe`, `commit`, `date_trained`,
    `dtype` (of the stored weights), `variant`, `image_size`, `class_names`.
    """
    presets = {}
    for folder in sorted(SHIPPED_DIR.iterdir()):
        metadata = folder / METADATA_FILE
        if folder.is_dir() and metadata.is_file():
            presets[folder.name] = json.loads(metadata.read_text())
    return presets


def is_preset_reference(value) -> bool:
    """Whether `value` (a builder's `weights=`) names a preset rather than a weights file."""
    text = str(value)
    return (
        text.startswith(URL_SCHEMES)
        or (pathlib.Path(text).is_dir())
        or bool(NAME_PATTERN.match(text))
    )


def unknown_preset_message(name: str) -> str:
    known = list(list_presets())
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    listed = ", ".join(known) if known else "none shipped in this version"
    return (
        f"unknown preset {name!r}{hint} Known presets: {listed} "
        "(or give a preset directory, or the URL of a zipped one)"
    )


def preset_directory(preset, file_hash: str | None = None) -> pathlib.Path:
    """The local directory of `preset` (a shipped name, a directory, or an archive's URL), its files checked.

    Raises PresetError (one line) for an unknown name (with the known ones), a missing
    directory, a download whose hash is not `file_hash`, or a file whose sha256 is not
    the one metadata.json records.
    """
    text = str(preset)
    if text.startswith(URL_SCHEMES):
        folder = _fetch(text, file_hash)
    elif pathlib.Path(text).is_dir():
        folder = pathlib.Path(text)
    elif pathlib.Path(text).exists() or "/" in text or "\\" in text:
        raise PresetError(f"preset {text!r}: not a preset directory (a file, or does not exist)")
    elif (SHIPPED_DIR / text / METADATA_FILE).is_file():
        folder = SHIPPED_DIR / text
    else:
        raise PresetError(unknown_preset_message(text))
    verify_files(folder)
    return folder


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(folder: pathlib.Path) -> None:
    """Refuse a preset directory without config.json, or whose files differ from metadata.json's sha256."""
    if not (folder / CONFIG_FILE).is_file():
        raise PresetError(f"preset {str(folder)!r}: no {CONFIG_FILE} (not a preset directory)")
    metadata = read_metadata(folder)
    for name, expected in metadata.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise PresetError(f"preset {str(folder)!r}: {name} is missing (metadata.json lists it)")
        if sha256(path) != expected:
            raise PresetError(
                f"preset {str(folder)!r}: {name} is corrupt (its sha256 is not the one in metadata.json); nothing loaded"
            )


def read_metadata(folder: pathlib.Path) -> dict:
    path = pathlib.Path(folder) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PresetError(f"preset {str(folder)!r}: {METADATA_FILE} is not valid JSON ({error})") from None


def read_config(folder: pathlib.Path, file_name: str) -> dict:
    try:
        return json.loads((pathlib.Path(folder) / file_name).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PresetError(f"preset {str(folder)!r}: cannot read {file_name} ({error})") from None


def _fetch(url: str, file_hash: str | None) -> pathlib.Path:
    """Download (or take from Keras's cache) and unpack a zipped preset; refuse a hash mismatch."""
    import os
    import urllib.parse

    import keras

    file_name = pathlib.PurePosixPath(urllib.parse.urlsplit(url).path).name
    if not file_name.endswith((".zip", ".tar.gz", ".tgz")):
        raise PresetError(f"preset {url!r}: a preset URL must name a .zip or .tar.gz of a preset directory")
    # Keras's cache folder (KERAS_HOME, default ~/.keras), named here to remove a bad download.
    cache = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "keras_gdfr_presets"
    cache.mkdir(parents=True, exist_ok=True)  # else get_file falls back to /tmp/.keras
    try:
        extracted = keras.utils.get_file(
            file_name, origin=url, file_hash=file_hash, extract=True, cache_dir=str(cache.parent), cache_subdir=cache.name
        )
    except ValueError as error:
        (cache / file_name).unlink(missing_ok=True)  # get_file keeps the bad download; never reuse it
        if "hash" in str(error):
            raise PresetError(f"preset {url!r}: the download does not match file_hash={file_hash!r} (corrupt or changed); nothing loaded") from None
        raise PresetError(f"preset {url!r}: {error}") from None
    except Exception as error:  # URL fetch failure, a broken archive
        raise PresetError(f"preset {url!r}: cannot fetch or unpack it ({error})") from None
    return _preset_root(pathlib.Path(extracted), url)


def _preset_root(extracted: pathlib.Path, url: str) -> pathlib.Path:
    """The folder holding config.json: the archive's top or its one folder."""
    if (extracted / CONFIG_FILE).is_file():
        return extracted
    found = sorted(path.parent for path in extracted.glob(f"*/{CONFIG_FILE}"))
    if len(found) != 1:
        raise PresetError(f"preset {url!r}: the archive holds no preset directory (no {CONFIG_FILE})")
    return found[0]

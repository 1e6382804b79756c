"""The ImageFolder layout: ``[top/]<split>/<class>/<image>`` in a directory, zip or tar.

Class order is the sorted folder names; files are in name order within a class.
Split names are aliases: ``test``, ``val`` and ``validation`` find one another's
folder (the requested name first), at the top or under one top folder
(``cifar10/train/...``). Imagewoof and packed files are read through this listing too.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from keras_gdfr.data.archives import Tree, is_visible
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.split import SPLIT_ALIASES, split_aliases

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def find_split_prefix(names: Sequence[str], split: str, location: str) -> str:
    """The ``[top/]<split>/`` prefix under which the split's class folders are."""
    folders = set()  # "a/" and "a/b/" for every file a/b/...
    for name in names:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[:depth]) + "/" for depth in (1, 2) if len(parts) >= depth)
    tops = sorted(f for f in folders if f.count("/") == 1)
    for alias in split_aliases(split):
        if alias + "/" in folders:
            return alias + "/"
        nested = [t + alias + "/" for t in tops if t + alias + "/" in folders]
        if len(nested) == 1:
            return nested[0]
    raise DataError(
        f"{location}: no folder for split {split!r} (looked for "
        f"{', '.join(a + '/' for a in split_aliases(split))} at the top or under one top "
        f"folder); top-level entries: {', '.join(tops[:10]) or 'none'}"
    )


def imagefolder_catalog(tree: Tree, split: str, *, official: bool, kind: str) -> Catalog:
    names = tree.names()
    prefix = find_split_prefix(names, split, tree.location)
    pairs = []
    for name in names:
        if not name.startswith(prefix) or not name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        rest = name[len(prefix):].split("/")
        if len(rest) >= 2:
            pairs.append((rest[0], name))
    class_names = sorted({c for c, _ in pairs})
    index = {c: i for i, c in enumerate(class_names)}
    pairs.sort(key=lambda p: (index[p[0]], p[1]))
    return Catalog(
        tree=tree,
        members=[n for _, n in pairs],
        labels=np.array([index[c] for c, _ in pairs], dtype=np.int32),
        class_names=class_names,
        origin=f"{kind} {tree.location}:{prefix}",
        official=official,
    )


def has_split_folders(path: pathlib.Path) -> bool:
    """A directory with split folders (``train/``, ``test/``, ``val/``, ``validation/``), also one level down."""
    names = {a for aliases in SPLIT_ALIASES.values() for a in aliases}

    def direct(p: pathlib.Path) -> bool:
        return any((p / n).is_dir() for n in names)

    if direct(path):
        return True
    subdirs = [p for p in path.iterdir() if p.is_dir() and is_visible(p.name)]
    return len(subdirs) == 1 and direct(subdirs[0])

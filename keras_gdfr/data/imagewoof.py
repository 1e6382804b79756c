"""Imagewoof: the fast.ai ``imagewoof2`` archive (``imagewoof2/train/<wnid>/``, ``imagewoof2/val/<wnid>/``),
as a directory, ``.tgz`` or ``.zip``, downloaded from ``spec.download_url`` when missing and
``download`` is on; read as an ImageFolder whose size is checked as an official split's."""

from __future__ import annotations

import pathlib

from keras_gdfr.data.archives import DirTree, Tree, is_archive, is_visible, open_tree
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.download import default_root, download
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.imagefolder import imagefolder_catalog
from keras_gdfr.data.specs import DatasetSpec


def imagewoof_catalog(spec: DatasetSpec, split: str, data_dir, download_missing: bool) -> Catalog:
    tree = _imagewoof_tree(data_dir, spec, download_missing)
    return imagefolder_catalog(tree, split, official=True, kind="imagewoof")


def has_imagewoof_layout(path: pathlib.Path) -> bool:
    """A directory that is the imagewoof2 folder (train/, val/) or holds it (or its archive).

    A folder merely named imagewoof* (holding the data one level further down) does not
    count: it used to, and the data was then downloaded into it.
    """
    if path.name.lower().startswith("imagewoof") and any((path / s).is_dir() for s in ("train", "val")):
        return True
    return (path / "imagewoof2").is_dir() or any(
        p.name.lower().startswith("imagewoof") and is_archive(p) for p in path.iterdir())


def _imagewoof_tree(root: pathlib.Path | None, spec: DatasetSpec, download_missing: bool) -> Tree:
    explicit = root is not None
    root = pathlib.Path(root) if explicit else default_root(spec.name)
    if root.is_file():
        return open_tree(root)
    if root.is_dir():
        if any((root / s).is_dir() for s in ("train", "val")):
            return DirTree(root)
        if (root / "imagewoof2").is_dir():
            return DirTree(root / "imagewoof2")
        archives = sorted(p for p in root.iterdir()
                          if p.name.lower().startswith("imagewoof") and is_archive(p))
        if archives:
            return open_tree(archives[0])
        if explicit and any(is_visible(p.name) for p in root.iterdir()):  # a user's folder: no download into it
            raise DataError(f"{root}: no imagewoof2 folder or imagewoof2.tgz here (not downloading into a "
                            "folder that holds other files); pass the folder that holds train/ and val/")
    if not download_missing:
        raise DataError(
            f"{root}: no imagewoof2 folder or imagewoof2.tgz there (download is off)"
        )
    filename = spec.download_url.rsplit("/", 1)[-1]
    return open_tree(download(spec, filename, spec.download_url, root))

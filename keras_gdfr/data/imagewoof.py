"""Imagewoof: the fast.ai ``imagewoof2`` archive (``imagewoof2/train/<wnid>/``, ``imagewoof2/val/<wnid>/``),
as a directory, ``.tgz`` or ``.zip``, downloaded from ``spec.download_url`` when missing and
``download`` is on; read as an ImageFolder whose size is checked as an official split's."""

from __future__ import annotations

import pathlib

from keras_gdfr.data.archives import DirTree, Tree, is_archive, open_tree
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.download import default_root, download
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.imagefolder import imagefolder_catalog
from keras_gdfr.data.specs import DatasetSpec


def imagewoof_catalog(spec: DatasetSpec, split: str, data_dir, download_missing: bool) -> Catalog:
    tree = _imagewoof_tree(data_dir, spec, download_missing)
    return imagefolder_catalog(tree, split, official=True, kind="imagewoof")


def has_imagewoof_layout(path: pathlib.Path) -> bool:
    """A directory that is, or holds, the imagewoof2 folder or archive."""
    return (path.name.lower().startswith("imagewoof") or (path / "imagewoof2").is_dir()
            or any(p.name.lower().startswith("imagewoof") for p in path.iterdir()))


def _imagewoof_tree(root: pathlib.Path | None, spec: DatasetSpec, download_missing: bool) -> Tree:
    root = pathlib.Path(root) if root is not None else default_root(spec.name)
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
    if not download_missing:
        raise DataError(
            f"{root}: no imagewoof2 folder or imagewoof2.tgz there (download is off)"
        )
    filename = spec.download_url.rsplit("/", 1)[-1]
    return open_tree(download(spec, filename, spec.download_url, root))

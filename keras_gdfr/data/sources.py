"""Loading a dataset split: choose the source, list it, check it, subset it, read it.

One entry point, `load_dataset(dataset, split, source=..., data_dir=...)`, reads a
split of one of the paper's datasets (`keras_gdfr.data.specs.DATASETS`) and
returns a `keras_gdfr.data.split.SplitData`. The sources, one module each:

- ``"tfds"`` (`keras_gdfr.data.tfds_source`): TensorFlow Datasets by the spec's
  catalog name, in ``data_dir``.
- ``"imagefolder"`` (`keras_gdfr.data.imagefolder`): ``<split>/<class>/<image>``
  in a directory, a ``.zip`` or a tar (`keras_gdfr.data.archives`), at the top
  level or under one top folder.
- ``"gtsrb"`` (`keras_gdfr.data.gtsrb`): the official GTSRB layout, extracted
  and/or as the official zips. Images are resized whole to 32x32 by default (as
  torchvision's GTSRB and most PyTorch code, which the paper's numbers come
  from, do); ``crop_roi=True`` crops to the annotated sign box first.
- ``"imagewoof"`` (`keras_gdfr.data.imagewoof`): the fast.ai ``imagewoof2`` archive.
- ``"packed"`` (`keras_gdfr.data.packed`): one ``.npz`` file made by
  ``gdfr pack`` from an ImageFolder, read without TensorFlow.

The official ones (gtsrb, imagewoof) are downloaded (`keras_gdfr.data.download`)
into ``data_dir`` or ``~/.keras/datasets/<name>`` when missing and ``download`` is on.

``source=None`` means "sniff": with no ``data_dir`` the spec's own source; a
``data_dir`` ending in ``.npz`` is packed; one that is the dataset's own
archive (``GTSRB*``, ``imagewoof*``) or holds its layout means that source; any
other ``.zip``/tar file, or a directory with split folders (``train/``, ``test/``,
``val/``, ``validation/``; also one level down), means ``"imagefolder"``; anything
else is the spec's own source (for tfds: a tfds ``data_dir``). See `resolve_source`.

Every source gives a `keras_gdfr.data.catalog.Catalog` (names and labels, nothing
read). Checks on it: the number of classes must equal the spec's (`DataError`
naming the source, expected vs found). With no ``limit`` and no ``classes``
filter, the split size is compared with the spec's: a mismatch is a `DataError`
for the official sources (tfds, gtsrb, imagewoof: an incomplete download) and a
`DataWarning` for an ImageFolder (a subset is legitimate). Unreadable images count
as present in this check. ``classes`` keeps only the named classes, relabelled
0..k-1 in the given order; then ``limit`` picks a deterministic, class-balanced
subset (`select_subset`: the same images on every call), before anything is decoded.

Decoding (`keras_gdfr.data.decode`, a design choice): the 32-px datasets are
decoded once, here, to ``SplitData.images``; the 256-px ones keep their checked,
still-encoded files in ``SplitData.encoded``. Corrupt or unreadable images are
reported by path: ``on_corrupt="skip"`` skips and counts them (`DataWarning`
naming the first few, ``SplitData.skipped``), ``"fail"`` raises `DataError`
naming the file.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Sequence

from keras_gdfr.data import packed
from keras_gdfr.data.archives import TAR_SUFFIXES, is_visible, open_tree
from keras_gdfr.data.catalog import Catalog, check_classes, check_size, filter_classes, select_subset
from keras_gdfr.data.decode import read_images
from keras_gdfr.data.errors import DataError, DataWarning
from keras_gdfr.data.gtsrb import gtsrb_catalog, has_gtsrb_layout
from keras_gdfr.data.imagefolder import has_split_folders, imagefolder_catalog
from keras_gdfr.data.imagewoof import has_imagewoof_layout, imagewoof_catalog
from keras_gdfr.data.specs import DATASETS, LARGE_IMAGE_SIZE, DatasetSpec
from keras_gdfr.data.split import SplitData, split_role
from keras_gdfr.data.tfds_source import is_tfds_data_dir, tfds_catalog

SOURCES = ("tfds", "imagefolder", "gtsrb", "imagewoof", "packed")
ON_CORRUPT = ("skip", "fail")
SKIPPED_SHOWN = 5


def get_spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}") from None


# --------------------------------------------------------------------------------------
# Choosing the source.


def _has_own_layout(path: pathlib.Path, source: str) -> bool:
    if source == "gtsrb":
        return has_gtsrb_layout(path)
    if source == "imagewoof":
        return has_imagewoof_layout(path)
    return False


def resolve_source(dataset: str, data_dir=None, source: str | None = None) -> str:
    """The source `load_dataset` will use: ``source`` if given, else sniffed from ``data_dir``."""
    spec = get_spec(dataset)
    if source is not None:
        if source not in SOURCES:
            raise DataError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
        return source
    if data_dir is None:
        return spec.source
    path = pathlib.Path(data_dir)
    name = path.name.lower()
    if name.endswith(packed.SUFFIX):
        return "packed"
    if path.is_file() or name.endswith((".zip",) + TAR_SUFFIXES):
        if spec.source in ("gtsrb", "imagewoof") and name.startswith(spec.source):
            return spec.source
        return "imagefolder"
    if path.is_dir():
        if _has_own_layout(path, spec.source):
            return spec.source
        if has_split_folders(path):
            return "imagefolder"
    return spec.source


def _holds_a_layout(path: pathlib.Path, spec: DatasetSpec) -> bool:
    return path.is_dir() and (_has_own_layout(path, spec.source) or has_split_folders(path))


def _nearby_layout(path: pathlib.Path, spec: DatasetSpec) -> pathlib.Path | None:
    """A folder one or two levels up (GTSRB's Final_Training/Images), or one or two down, that holds the data."""
    for up in (path.parent, path.parent.parent):
        if up != path and _holds_a_layout(up, spec):
            return up
    level = [path]
    for _ in range(2):
        level = [c for p in level for c in sorted(p.iterdir()) if c.is_dir() and is_visible(c.name)][:50]
        found = [c for c in level if _holds_a_layout(c, spec)]
        if found:
            return found[0]
    return None


def check_data_dir(dataset: str, data_dir) -> None:
    """Refuse a data_dir whose source had to be guessed and that holds no data, in one line.

    Without this a mistyped, empty or one-level-too-deep path fell through to a
    download (tfds, or the official archive into a folder created on the way).
    """
    spec = get_spec(dataset)
    path = pathlib.Path(data_dir)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (the data path does not exist)")
    if not path.is_dir():
        return
    layouts = "train/ and test/ (or val/) class folders" + (
        f", the official {spec.source} files" if spec.source in ("gtsrb", "imagewoof") else "")
    if not any(is_visible(p.name) for p in path.iterdir()):
        raise DataError(f"{path}: empty folder; pass the folder that holds {layouts}, an archive, or a prepared tfds data_dir")
    if _holds_a_layout(path, spec) or is_tfds_data_dir(path, spec):
        return
    found = _nearby_layout(path, spec)
    hint = f"; pass the folder that holds it: {found}" if found else ""
    tfds = f", or a prepared tfds {spec.tfds_name} data_dir" if spec.tfds_name else ""
    raise DataError(f"{path}: found no {spec.name} data here ({layouts}{tfds}){hint}")


# --------------------------------------------------------------------------------------
# The entry point.


def _catalog(spec: DatasetSpec, split: str, source: str, data_dir, download: bool) -> Catalog:
    role = split_role(split)
    if source == "tfds":
        return tfds_catalog(spec, role, data_dir, download)
    if source == "imagefolder":
        if data_dir is None:
            raise DataError("source 'imagefolder' needs data_dir: a folder, .zip or tar with <split>/<class>/")
        return imagefolder_catalog(open_tree(pathlib.Path(data_dir)), split, official=False, kind="imagefolder")
    if source == "gtsrb":
        return gtsrb_catalog(spec, role, data_dir, download)
    if source == "imagewoof":
        return imagewoof_catalog(spec, split, data_dir, download)
    if source == "packed":
        return packed.packed_catalog(spec, split, data_dir)
    raise DataError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")


def load_dataset(
    dataset: str,
    split: str,
    *,
    source: str | None = None,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    classes: Sequence[str] | None = None,
    on_corrupt: str = "skip",
    download: bool = True,
    crop_roi: bool = False,
) -> SplitData:
    """Read one split of a dataset of the paper.

    Args:
        dataset: a key of `DATASETS` (``"cifar10"``, ``"gtsrb"``, ...).
        split: ``"train"`` or ``"test"`` (``"val"``/``"validation"`` are aliases).
        source: ``"tfds"``, ``"imagefolder"``, ``"gtsrb"``, ``"imagewoof"``,
            ``"packed"`` or None (sniffed, see `resolve_source`).
        data_dir: tfds data_dir, ImageFolder folder/zip/tar, packed file, or the
            folder/archive of the official files (None: the tfds default, or
            ``~/.keras/datasets/<name>``).
        limit: keep a deterministic class-balanced subset of this many images.
        classes: keep only these class names, relabelled 0..k-1 in this order.
        on_corrupt: ``"skip"`` (warn, count in ``skipped``) or ``"fail"`` (DataError).
        download: let tfds / keras.utils.get_file fetch a missing official source.
        crop_roi: GTSRB only: crop to the annotated sign box before resizing.

    Returns:
        SplitData: ``images`` uint8 (N, S, S, 3) for 32-px datasets, else ``encoded``.
    """
    spec = get_spec(dataset)
    if on_corrupt not in ON_CORRUPT:
        raise DataError(f"on_corrupt must be one of {ON_CORRUPT}, not {on_corrupt!r}")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of images, not {limit}")
    if data_dir is not None and source is None:
        check_data_dir(dataset, data_dir)
    source = resolve_source(dataset, data_dir, source)
    if crop_roi and source != "gtsrb":
        raise DataError("crop_roi applies to the gtsrb source only")
    role = split_role(split)
    catalog = _catalog(spec, split, source, data_dir, download)
    check_classes(catalog, spec)
    if limit is None and classes is None:
        check_size(catalog, spec, role)
    total = len(catalog.members)
    if classes is not None:
        catalog = filter_classes(catalog, list(classes))
    if limit is not None:
        catalog = catalog.subset(select_subset(catalog.labels, limit))
    images, kept, skipped = read_images(catalog, spec.image_size, on_corrupt, crop_roi)
    if skipped:
        more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
        warnings.warn(
            f"{catalog.origin}: skipped {len(skipped)} unreadable image(s): "
            f"{', '.join(skipped[:SKIPPED_SHOWN])}{more}",
            DataWarning, stacklevel=2,
        )
    subset = []
    if classes is not None:
        subset.append(f"classes {', '.join(classes)}")
    if limit is not None:
        subset.append(f"limit {limit}, class-balanced")
    description = (
        f"{spec.name} {split}: {len(kept)} of {total} images"
        + (f" ({'; '.join(subset)})" if subset else "")
        + (f", {len(skipped)} unreadable skipped" if skipped else "")
        + f", from {catalog.origin}"
    )
    labels = catalog.labels[kept]
    paths = [catalog.tree.display(catalog.members[i]) for i in kept]
    large = spec.image_size >= LARGE_IMAGE_SIZE
    return SplitData(
        labels=labels,
        class_names=list(catalog.class_names),
        description=description,
        image_size=spec.image_size,
        images=None if large else images,
        encoded=images if large else None,
        paths=paths,
        skipped=skipped,
    )

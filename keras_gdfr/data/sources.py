"""Dataset sources: every one returns the same `SplitData`.

One entry point, `load_dataset(dataset, split, source=..., data_dir=...)`, reads a
split of one of the paper's datasets (`keras_gdfr.data.specs.DATASETS`) from:

- ``"tfds"``: TensorFlow Datasets by the spec's catalog name, in ``data_dir``
  (``tfds.load(spec.tfds_name, split=..., data_dir=..., download=...)``). Online,
  with ``download=True``, tfds fetches and prepares it; offline, a prepared
  ``data_dir`` is read. Images are taken still encoded (``SkipDecoding``) so that a
  ``limit`` decodes only the chosen ones.
- ``"imagefolder"``: ``<split>/<class>/<image>`` in a directory, a ``.zip`` or a
  tar (``.tar``, ``.tgz``, ``.tar.gz``), at the top level or under one top folder
  (``cifar10/train/...``). Archive members are read in memory, never extracted.
  Class order is the sorted folder names. Split names are aliases: ``test``,
  ``val`` and ``validation`` find one another's folder (the requested name first).
- ``"gtsrb"``: the official GTSRB layout, ``GTSRB/Final_Training/Images/000NN/*.ppm``
  (+ ``GT-000NN.csv``) and ``GTSRB/Final_Test/Images/*.ppm`` with the labels of
  ``GT-final_test.csv``; from an extracted directory and/or the official zips
  (``GTSRB_Final_Training_Images.zip``, ``GTSRB_Final_Test_Images.zip``,
  ``GTSRB_Final_Test_GT.zip``) in ``data_dir``, downloaded there from
  ``spec.download_url`` when missing and ``download`` is on. Training labels are
  the class folder numbers; class names are the folder names ``00000``..``00042``.
  Images are resized whole to 32x32 by default (as torchvision's GTSRB and most
  PyTorch code, which the paper's numbers come from, do); ``crop_roi=True`` crops
  to the annotated sign box (``Roi.X1..Roi.Y2``, inclusive) first.
- ``"imagewoof"``: the fast.ai ``imagewoof2`` archive (``imagewoof2/train/<wnid>/``,
  ``imagewoof2/val/<wnid>/``) as a directory, ``.tgz`` or ``.zip``; downloaded from
  ``spec.download_url`` when missing and ``download`` is on.
- ``"packed"``: one ``.tfrecord.gz`` file made by ``gdfr pack`` from an ImageFolder
  (`keras_gdfr.data.packed`), read without TensorFlow; sniffed from the suffix.

``source=None`` means "sniff": with no ``data_dir`` the spec's own source; a
``data_dir`` that is the dataset's own archive (``GTSRB*``, ``imagewoof*``) or
holds its layout means that source; any other ``.zip``/tar file, or a directory
with split folders (``train/``, ``test/``, ``val/``, ``validation/``; also one
level down), means ``"imagefolder"``; anything else is the spec's own source
(for tfds: a tfds ``data_dir``). See `resolve_source`.

Decoding (a design choice): datasets of 32 px (CIFAR, SVHN, GTSRB) are decoded
once, here, to ``SplitData.images``, uint8 (N, S, S, 3) with S the spec's
``image_size`` (other sizes are resized whole, bilinear, antialiased). The
256-px datasets (Imagenette, Imagewoof) keep the still-encoded files in
``SplitData.encoded`` (the full Imagenette would be ~1.9 GB decoded); the input
pipelines decode and resize them (`keras_gdfr.data.augment.prepare_image`: once per
split for the device pipeline, per epoch in tf.data). Every such file is still
decoded once here (at reduced scale where JPEG allows), so corrupt files are
found at load time, by path; files TensorFlow cannot decode (CMYK JPEG, BMP, GIF,
TIFF, ...) are re-encoded as PNG.

Corrupt or unreadable images are reported by path: ``on_corrupt="skip"`` skips
and counts them (`DataWarning` naming the first few, ``SplitData.skipped``),
``"fail"`` raises `DataError` naming the file.

Checks: the number of classes the source has must equal the spec's (`DataError`
naming the source, expected vs found). With no ``limit`` and no ``classes``
filter, the split size is compared with the spec's: a mismatch is a `DataError`
for the official sources (tfds, gtsrb, imagewoof: an incomplete download) and a
`DataWarning` for an ImageFolder (a subset is legitimate). Unreadable images count
as present in this check.

``limit`` picks a deterministic, class-balanced subset (`select_subset`: the same
images on every call), chosen from the file listing before anything is decoded.
``classes`` keeps only the named classes, relabelled 0..k-1 in the given order,
before the limit.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
import pathlib
import re
import tarfile
import warnings
import zipfile
from typing import Sequence

import numpy as np
from PIL import Image

from keras_gdfr.data.specs import DATASETS, DatasetSpec

SOURCES = ("tfds", "imagefolder", "gtsrb", "imagewoof", "packed")  # packed: see _packed_catalog
ON_CORRUPT = ("skip", "fail")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz")
SPLIT_ALIASES = {"train": ("train",), "test": ("test", "val", "validation")}
LIMIT_SEED = 0
LARGE_IMAGE_SIZE = 64  # a spec image_size at or above this keeps encoded files
SKIPPED_SHOWN = 5

GTSRB_ZIPS = {
    "train": ("GTSRB_Final_Training_Images.zip",),
    "test": ("GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip"),
}
GTSRB_TRAIN_IMAGE = re.compile(r"(?:^|/)Final_Training/Images/(\d{5})/([^/]+\.ppm)$", re.I)
GTSRB_TRAIN_CSV = re.compile(r"(?:^|/)Final_Training/Images/(\d{5})/GT-\d{5}\.csv$", re.I)
GTSRB_TEST_IMAGE = re.compile(r"(?:^|/)Final_Test/Images/([^/]+\.ppm)$", re.I)
GTSRB_TEST_GT = re.compile(r"(?:^|/)GT-final_test\.csv$", re.I)


class DataError(Exception):
    """A dataset source is missing, malformed or disagrees with its spec; the message names it."""


class DataWarning(UserWarning):
    """Something about the data worth knowing that does not stop loading."""


@dataclasses.dataclass
class SplitData:
    """One split of a dataset, in memory.

    Attributes:
        labels: int32 (N,), in 0..num_classes-1.
        class_names: the label names, index = label.
        description: where the images came from (source, path, split, subset).
        image_size: S, the spec's training image side.
        images: uint8 (N, S, S, 3) decoded RGB images (32-px datasets), else None.
        encoded: N encoded image files (JPEG/PNG bytes) for the 256-px datasets,
            decoded by the input pipeline, else None.
        paths: N strings naming each image's file (for reports).
        skipped: paths of the unreadable images that were skipped.
    """

    labels: np.ndarray
    class_names: list[str]
    description: str
    image_size: int
    images: np.ndarray | None = None
    encoded: list[bytes] | None = None
    paths: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if (self.images is None) == (self.encoded is None):
            raise ValueError("SplitData needs exactly one of images and encoded")
        if self.images is not None:
            self.images = np.asarray(self.images, dtype=np.uint8)
            expected = (len(self.labels), self.image_size, self.image_size, 3)
            if self.images.shape != expected:
                raise ValueError(f"images have shape {self.images.shape}, expected {expected}")
        elif len(self.encoded) != len(self.labels):
            raise ValueError(f"{len(self.encoded)} encoded images for {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_encoded(self) -> bool:
        """True when the images are still encoded files (256-px datasets)."""
        return self.encoded is not None


# --------------------------------------------------------------------------------------
# Read-only file trees: a directory, a zip, a tar, several of them, or memory.


class _Tree:
    """Files addressed by relative POSIX names; `read_many` returns bytes or the error."""

    location: str

    def names(self) -> list[str]:
        raise NotImplementedError

    def read_many(self, names: Sequence[str]) -> list[bytes | Exception]:
        raise NotImplementedError

    def display(self, name: str) -> str:
        """The name a person can find the file by, e.g. ``/data/x.zip:train/cat/1.jpg``."""
        return f"{self.location}:{name}"


def _visible(name: str) -> bool:
    parts = name.split("/")
    return not any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


class _DirTree(_Tree):
    def __init__(self, root: pathlib.Path):
        self.root = pathlib.Path(root)
        self.location = str(self.root)

    def names(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if _visible(d)]
            rel = pathlib.Path(folder).relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            found.extend(prefix + f for f in files if _visible(f))
        return sorted(found)

    def read_many(self, names):
        out = []
        for name in names:
            try:
                out.append((self.root / name).read_bytes())
            except OSError as err:
                out.append(err)
        return out

    def display(self, name):
        return str(self.root / name)


class _ZipTree(_Tree):
    def __init__(self, path: pathlib.Path):
        self.location = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as err:
            raise DataError(f"cannot open zip archive {path}: {err}") from err

    def names(self):
        return sorted(n for n in self.zip.namelist() if not n.endswith("/") and _visible(n))

    def read_many(self, names):
        out = []
        for name in names:
            try:
                out.append(self.zip.read(name))
            except Exception as err:  # BadZipFile (CRC), zlib.error, KeyError ...
                out.append(err)
        return out


class _TarTree(_Tree):
    """A tar (optionally gzip'd): listing it reads it once; `read_many` reads in file order."""

    def __init__(self, path: pathlib.Path):
        self.location = str(path)
        try:
            self.tar = tarfile.open(path, "r:*")
            members = self.tar.getmembers()
        except (OSError, tarfile.TarError, EOFError) as err:
            raise DataError(f"cannot read tar archive {path}: {err}") from err
        self.members = {m.name[2:] if m.name.startswith("./") else m.name: m
                        for m in members if m.isfile()}

    def names(self):
        return sorted(n for n in self.members if _visible(n))

    def read_many(self, names):
        by_offset = sorted(set(names), key=lambda n: self.members[n].offset_data)
        payload: dict[str, bytes | Exception] = {}
        for name in by_offset:  # forward-only reads: one pass over a .tgz
            try:
                payload[name] = self.tar.extractfile(self.members[name]).read()
            except Exception as err:
                payload[name] = err
        return [payload[n] for n in names]


class _UnionTree(_Tree):
    """Several trees seen as one (an extracted folder beside the official zips)."""

    def __init__(self, trees: Sequence[_Tree], location: str):
        self.location = location
        self.owner: dict[str, _Tree] = {}
        for tree in trees:
            for name in tree.names():
                self.owner.setdefault(name, tree)

    def names(self):
        return sorted(self.owner)

    def read_many(self, names):
        return [self.owner[n].read_many([n])[0] for n in names]

    def display(self, name):
        return self.owner[name].display(name)


class _MemoryTree(_Tree):
    def __init__(self, files: dict[str, bytes], location: str):
        self.files = files
        self.location = location

    def names(self):
        return list(self.files)

    def read_many(self, names):
        return [self.files[n] for n in names]


def _is_tar(path: pathlib.Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


@functools.lru_cache(maxsize=4)
def _cached_zip(path: str, mtime_ns: int, size: int) -> _ZipTree:
    """One open zip per file version: its listing (0.4 s for CIFAR-10's 60,000) is read once."""
    return _ZipTree(pathlib.Path(path))


def _open_tree(path: pathlib.Path) -> _Tree:
    """A directory, .zip or tar as a `_Tree`; DataError when it is none of them."""
    path = pathlib.Path(path)
    if path.is_dir():
        return _DirTree(path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.suffix.lower() == ".zip":
        stat = path.stat()
        return _cached_zip(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if _is_tar(path):
        return _TarTree(path)
    raise DataError(f"{path} is not a directory, .zip or tar archive")


# --------------------------------------------------------------------------------------
# Catalogs: a split listed (names, labels) but not read yet.


@dataclasses.dataclass
class _Catalog:
    tree: _Tree
    members: list[str]
    labels: np.ndarray  # int32 (M,)
    class_names: list[str]
    origin: str
    official: bool
    boxes: dict[str, tuple[int, int, int, int]] | None = None

    def subset(self, keep: np.ndarray, labels: np.ndarray | None = None,
               class_names: list[str] | None = None) -> "_Catalog":
        return dataclasses.replace(
            self,
            members=[self.members[i] for i in keep],
            labels=(self.labels if labels is None else labels)[keep].astype(np.int32),
            class_names=self.class_names if class_names is None else class_names,
        )


def split_role(split: str) -> str:
    """``"train"`` or ``"test"`` for a split name (test, val and validation are aliases)."""
    for role, aliases in SPLIT_ALIASES.items():
        if split in aliases:
            return role
    raise DataError(f"unknown split {split!r}: use train, test, val or validation")


def _split_aliases(split: str) -> tuple[str, ...]:
    aliases = SPLIT_ALIASES[split_role(split)]
    return (split,) + tuple(a for a in aliases if a != split)


def _find_split_prefix(names: Sequence[str], split: str, location: str) -> str:
    """The ``[top/]<split>/`` prefix under which the split's class folders are."""
    folders = set()  # "a/" and "a/b/" for every file a/b/...
    for name in names:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[:depth]) + "/" for depth in (1, 2) if len(parts) >= depth)
    tops = sorted(f for f in folders if f.count("/") == 1)
    for alias in _split_aliases(split):
        if alias + "/" in folders:
            return alias + "/"
        nested = [t + alias + "/" for t in tops if t + alias + "/" in folders]
        if len(nested) == 1:
            return nested[0]
    raise DataError(
        f"{location}: no folder for split {split!r} (looked for "
        f"{', '.join(a + '/' for a in _split_aliases(split))} at the top or under one top "
        f"folder); top-level entries: {', '.join(tops[:10]) or 'none'}"
    )


def _imagefolder_catalog(tree: _Tree, split: str, *, official: bool, kind: str) -> _Catalog:
    names = tree.names()
    prefix = _find_split_prefix(names, split, tree.location)
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
    return _Catalog(
        tree=tree,
        members=[n for _, n in pairs],
        labels=np.array([index[c] for c, _ in pairs], dtype=np.int32),
        class_names=class_names,
        origin=f"{kind} {tree.location}:{prefix}",
        official=official,
    )


def _read_text(tree: _Tree, name: str) -> str:
    payload = tree.read_many([name])[0]
    if isinstance(payload, Exception):
        raise DataError(f"cannot read {tree.display(name)}: {payload}")
    return payload.decode("utf-8-sig", errors="replace")


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def _roi_box(row: dict[str, str]) -> tuple[int, int, int, int]:
    """PIL crop box of a GTSRB row (its Roi.X2/Roi.Y2 are inclusive)."""
    x1, y1, x2, y2 = (int(row[k]) for k in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))
    return x1, y1, x2 + 1, y2 + 1


def _gtsrb_train_catalog(tree: _Tree, spec: DatasetSpec) -> _Catalog:
    names = tree.names()
    pairs, boxes = [], {}
    for name in names:
        match = GTSRB_TRAIN_IMAGE.search(name)
        if match:
            pairs.append((int(match.group(1)), name))
        elif GTSRB_TRAIN_CSV.search(name):
            folder = name.rsplit("/", 1)[0]
            for row in _csv_rows(_read_text(tree, name)):
                boxes[f"{folder}/{row['Filename']}"] = _roi_box(row)
    found = sorted({label for label, _ in pairs})
    if not pairs:
        raise DataError(f"{tree.location}: no GTSRB training images (Final_Training/Images/000NN/*.ppm)")
    if len(found) != spec.num_classes or found[-1] >= spec.num_classes:
        raise DataError(
            f"{tree.location}: expected {spec.num_classes} classes for {spec.name}, found "
            f"{len(found)} class folders under Final_Training/Images (ids {found[0]}..{found[-1]})"
        )
    pairs.sort()
    return _Catalog(
        tree=tree,
        members=[n for _, n in pairs],
        labels=np.array([label for label, _ in pairs], dtype=np.int32),
        class_names=[f"{i:05d}" for i in range(spec.num_classes)],
        origin=f"gtsrb {tree.location} (Final_Training)",
        official=True,
        boxes=boxes,
    )


def _gtsrb_test_catalog(tree: _Tree, spec: DatasetSpec) -> _Catalog:
    names = tree.names()
    images = {}
    for name in names:
        match = GTSRB_TEST_IMAGE.search(name)
        if match:
            images[match.group(1)] = name
    gt_files = [n for n in names if GTSRB_TEST_GT.search(n)]
    if not gt_files:
        raise DataError(
            f"{tree.location}: no GT-final_test.csv with the GTSRB test labels (it is in "
            f"GTSRB_Final_Test_GT.zip; the GT-final_test.test.csv beside the images has no labels)"
        )
    if not images:
        raise DataError(f"{tree.location}: no GTSRB test images (Final_Test/Images/*.ppm)")
    folder = next(iter(images.values())).rsplit("/", 1)[0]
    members, labels, boxes = [], [], {}
    for row in _csv_rows(_read_text(tree, gt_files[0])):
        label = int(row["ClassId"])
        if not 0 <= label < spec.num_classes:
            raise DataError(
                f"{tree.display(gt_files[0])}: ClassId {label} of {row['Filename']} is outside "
                f"0..{spec.num_classes - 1}"
            )
        name = images.get(row["Filename"], f"{folder}/{row['Filename']}")  # missing: unreadable
        members.append(name)
        labels.append(label)
        boxes[name] = _roi_box(row)
    order = np.argsort(np.array(members), kind="stable")
    return _Catalog(
        tree=tree,
        members=[members[i] for i in order],
        labels=np.array(labels, dtype=np.int32)[order],
        class_names=[f"{i:05d}" for i in range(spec.num_classes)],
        origin=f"gtsrb {tree.location} (Final_Test, labels from {tree.display(gt_files[0])})",
        official=True,
        boxes=boxes,
    )


# --------------------------------------------------------------------------------------
# Locating (and downloading) the official archives.


def _default_root(name: str) -> pathlib.Path:
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return pathlib.Path(home) / "datasets" / name


def _download(spec: DatasetSpec, filename: str, url: str, root: pathlib.Path) -> pathlib.Path:
    import keras

    root.mkdir(parents=True, exist_ok=True)
    try:
        return pathlib.Path(keras.utils.get_file(filename, url, cache_dir=str(root), cache_subdir=""))
    except Exception as err:
        raise DataError(
            f"could not download {spec.name} from {url} into {root}: {err} "
            f"(offline: put the archive there yourself and pass its folder as data_dir)"
        ) from err


def _gtsrb_tree(root: pathlib.Path, role: str, spec: DatasetSpec, download: bool) -> _Tree:
    if root.is_file():
        root = root.parent
    needed = GTSRB_ZIPS[role]

    def build() -> _UnionTree:
        trees: list[_Tree] = [_DirTree(root)] if root.is_dir() else []
        trees += [_ZipTree(p) for p in sorted(root.glob("GTSRB*.zip"))] if root.is_dir() else []
        return _UnionTree(trees, str(root))

    tree = build()
    pattern = GTSRB_TRAIN_IMAGE if role == "train" else GTSRB_TEST_IMAGE
    has_images = any(pattern.search(n) for n in tree.names())
    has_labels = role == "train" or any(GTSRB_TEST_GT.search(n) for n in tree.names())
    if has_images and has_labels:
        return tree
    if not download:
        missing = []
        if not has_images:
            folder = "Final_Training/Images/000NN" if role == "train" else "Final_Test/Images"
            missing.append(f"the images (GTSRB/{folder}/*.ppm, or {needed[0]})")
        if not has_labels:
            missing.append(f"the labels (GT-final_test.csv, or {needed[1]})")
        raise DataError(
            f"{root}: GTSRB {role} split not found: missing {' and '.join(missing)} "
            f"(download is off)"
        )
    for filename in needed:
        if not (root / filename).exists():
            _download(spec, filename, spec.download_url + filename, root)
    return build()


def _imagewoof_tree(root: pathlib.Path | None, spec: DatasetSpec, download: bool) -> _Tree:
    root = pathlib.Path(root) if root is not None else _default_root(spec.name)
    if root.is_file():
        return _open_tree(root)
    if root.is_dir():
        if any((root / s).is_dir() for s in ("train", "val")):
            return _DirTree(root)
        if (root / "imagewoof2").is_dir():
            return _DirTree(root / "imagewoof2")
        archives = sorted(p for p in root.iterdir()
                          if p.name.lower().startswith("imagewoof")
                          and (_is_tar(p) or p.suffix.lower() == ".zip"))
        if archives:
            return _open_tree(archives[0])
    if not download:
        raise DataError(
            f"{root}: no imagewoof2 folder or imagewoof2.tgz there (download is off)"
        )
    filename = spec.download_url.rsplit("/", 1)[-1]
    return _open_tree(_download(spec, filename, spec.download_url, root))


TFDS_INSTALL = "pip install tensorflow-datasets tensorflow-cpu"


def _import_tfds(spec: DatasetSpec):
    """tensorflow_datasets (TensorFlow quiet and off the GPUs first), or one DataError saying how to get it."""
    from keras_gdfr.data.tf_runtime import TensorFlowMissing, import_tensorflow

    need = (f"{spec.name} from the tfds catalog ({spec.tfds_name}) needs tensorflow-datasets and TensorFlow "
            f"({TFDS_INSTALL}); or pass an ImageFolder / archive / packed file with --data")
    try:
        import_tensorflow("tfds")
        import tensorflow_datasets as tfds
    except (TensorFlowMissing, ImportError) as err:
        raise DataError(need) from err
    return tfds


def _tfds_catalog(spec: DatasetSpec, role: str, data_dir, download: bool) -> _Catalog:
    tfds = _import_tfds(spec)
    split = spec.splits[0 if role == "train" else 1]
    where = str(data_dir) if data_dir is not None else "the tfds default data_dir"
    try:
        ds, info = tfds.load(
            spec.tfds_name, split=split, data_dir=None if data_dir is None else str(data_dir),
            download=download, with_info=True, as_supervised=True, shuffle_files=False,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
    except ModuleNotFoundError as err:
        raise DataError(
            f"tfds could not prepare {spec.tfds_name} in {where}: missing module {err.name!r} "
            f"(tensorflow-datasets needs it to download and prepare: pip install {err.name})"
        ) from err
    except Exception as err:
        hint = "" if download else " and download is off"
        raise DataError(
            f"tfds dataset {spec.tfds_name!r} (split {split!r}) is not prepared in {where}{hint}: "
            f"prepare it online (tfds.load with download=True, or `tfds build "
            f"{spec.tfds_name} --data_dir ...`), or give an ImageFolder / archive as data_dir. "
            f"tfds said: {err}"
        ) from err
    files, labels = {}, []
    for encoded, label in tfds.as_numpy(ds.batch(1024)):
        for payload in encoded:
            files[f"{split}[{len(files)}]"] = bytes(payload)
        labels.append(label)
    feature = info.features["label"]
    class_names = list(feature.names) if feature.names else [str(i) for i in range(feature.num_classes)]
    tree = _MemoryTree(files, f"tfds {spec.tfds_name} in {where}")
    if len(class_names) != spec.num_classes:
        raise DataError(
            f"{tree.location}: expected {spec.num_classes} classes for {spec.name}, found {len(class_names)}"
        )
    return _Catalog(
        tree=tree,
        members=list(files),
        labels=np.concatenate(labels).astype(np.int32) if labels else np.zeros(0, np.int32),
        class_names=class_names,
        origin=tree.location + f" ({split})",
        official=True,
    )


# --------------------------------------------------------------------------------------
# Choosing the source.


def _has_split_folders(path: pathlib.Path) -> bool:
    names = {a for aliases in SPLIT_ALIASES.values() for a in aliases}

    def direct(p: pathlib.Path) -> bool:
        return any((p / n).is_dir() for n in names)

    if direct(path):
        return True
    subdirs = [p for p in path.iterdir() if p.is_dir() and _visible(p.name)]
    return len(subdirs) == 1 and direct(subdirs[0])


def _has_own_layout(path: pathlib.Path, source: str) -> bool:
    if source == "gtsrb":
        return (path.name.upper() == "GTSRB" or (path / "GTSRB").is_dir()
                or (path / "Final_Training").is_dir() or (path / "Final_Test").is_dir()
                or any(path.glob("GTSRB*.zip")))
    if source == "imagewoof":
        return (path.name.lower().startswith("imagewoof") or (path / "imagewoof2").is_dir()
                or any(p.name.lower().startswith("imagewoof") for p in path.iterdir()))
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
    if name.endswith(PACKED_SUFFIX):
        return "packed"
    if path.is_file() or name.endswith((".zip",) + TAR_SUFFIXES):
        if spec.source in ("gtsrb", "imagewoof") and name.startswith(spec.source):
            return spec.source
        return "imagefolder"
    if path.is_dir():
        if _has_own_layout(path, spec.source):
            return spec.source
        if _has_split_folders(path):
            return "imagefolder"
    return spec.source


def _is_tfds_data_dir(path: pathlib.Path, spec: DatasetSpec) -> bool:
    return spec.tfds_name is not None and (path / spec.tfds_name).is_dir()


def _holds_a_layout(path: pathlib.Path, spec: DatasetSpec) -> bool:
    return path.is_dir() and (_has_own_layout(path, spec.source) or _has_split_folders(path))


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
    if not any(_visible(p.name) for p in path.iterdir()):
        raise DataError(f"{path}: empty folder; pass the folder that holds {layouts}, an archive, or a prepared tfds data_dir")
    if _holds_a_layout(path, spec) or _is_tfds_data_dir(path, spec):
        return
    up = path.parent
    hint = f"; pass the folder that holds it: {up}" if _holds_a_layout(up, spec) else ""
    tfds = f", or a prepared tfds {spec.tfds_name} data_dir" if spec.tfds_name else ""
    raise DataError(f"{path}: found no {spec.name} data here ({layouts}{tfds}){hint}")


def get_spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}") from None


# --------------------------------------------------------------------------------------
# Checks, subsets, decoding.


def _check_classes(catalog: _Catalog, spec: DatasetSpec) -> None:
    if len(catalog.class_names) != spec.num_classes:
        shown = ", ".join(catalog.class_names[:12]) + (" ..." if len(catalog.class_names) > 12 else "")
        raise DataError(
            f"{catalog.origin}: expected {spec.num_classes} classes for {spec.name}, found "
            f"{len(catalog.class_names)} class folders ({shown or 'none'})"
        )


def _check_size(catalog: _Catalog, spec: DatasetSpec, role: str) -> None:
    expected = spec.train_size if role == "train" else spec.test_size
    found = len(catalog.members)
    if found == expected:
        return
    message = f"{catalog.origin}: {found} images, but the official {spec.name} {role} split has {expected}"
    if catalog.official:
        raise DataError(message + " (an incomplete or different archive?)")
    warnings.warn(message + " (a subset or a different copy)", DataWarning, stacklevel=3)


def _filter_classes(catalog: _Catalog, classes: Sequence[str]) -> _Catalog:
    unknown = [c for c in classes if c not in catalog.class_names]
    if unknown or not classes:
        raise DataError(
            f"{catalog.origin}: unknown classes {unknown or list(classes)}; it has "
            f"{', '.join(catalog.class_names)}"
        )
    new_label = np.full(len(catalog.class_names), -1, dtype=np.int32)
    for new, name in enumerate(classes):
        new_label[catalog.class_names.index(name)] = new
    relabelled = new_label[catalog.labels]
    keep = np.flatnonzero(relabelled >= 0)
    return catalog.subset(keep, labels=relabelled, class_names=list(classes))


def select_subset(labels: np.ndarray, limit: int, seed: int = LIMIT_SEED) -> np.ndarray:
    """Sorted indexes of a deterministic class-balanced subset of ``limit`` items.

    A fixed-seed permutation ranks the items of each class; the subset takes rank 0
    of every class, then rank 1, ... so class counts differ by at most one (until a
    class runs out). Same labels, same limit -> same subset.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if limit >= n:
        return np.arange(n)
    permutation = np.random.default_rng(seed).permutation(n)
    rank = np.empty(n, dtype=np.int64)
    permuted_labels = labels[permutation]
    for label in np.unique(labels):
        members = permutation[permuted_labels == label]
        rank[members] = np.arange(len(members))
    position = np.empty(n, dtype=np.int64)
    position[permutation] = np.arange(n)
    chosen = np.lexsort((position, rank))[:limit]
    return np.sort(chosen)


def _decode_small(payload: bytes, size: int, box=None) -> np.ndarray:
    """uint8 (size, size, 3) RGB from an encoded image (cropped to ``box`` first)."""
    with Image.open(io.BytesIO(payload)) as image:
        image = image.convert("RGB")  # a full decode: truncated data raises here
    if box is not None:
        image = image.crop(box)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _checked_encoding(payload: bytes, size: int) -> bytes:
    """``payload`` if TensorFlow can decode it, else a PNG re-encoding; raises if corrupt."""
    with Image.open(io.BytesIO(payload)) as image:
        kind, mode = image.format, image.mode
        if kind == "JPEG":
            image.draft("RGB", (size, size))  # decode at reduced scale: fast
        image.load()
        if (kind == "JPEG" and mode in ("RGB", "L")) or kind == "PNG":
            return payload
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue()


def _read_images(catalog: _Catalog, size: int, on_corrupt: str, crop_roi: bool):
    """(decoded uint8 (N,S,S,3) or encoded list, kept indexes, skipped paths)."""
    large = size >= LARGE_IMAGE_SIZE
    payloads = catalog.tree.read_many(catalog.members)
    items, kept, skipped = [], [], []
    for i, (name, payload) in enumerate(zip(catalog.members, payloads)):
        try:
            if isinstance(payload, Exception):
                raise payload
            if large:
                items.append(_checked_encoding(payload, size))
            else:
                box = catalog.boxes.get(name) if (crop_roi and catalog.boxes) else None
                items.append(_decode_small(payload, size, box))
            kept.append(i)
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
            path = catalog.tree.display(name)
            if on_corrupt == "fail":
                raise DataError(f"unreadable image {path}: {err}") from err
            skipped.append(path)
    if large:
        return items, kept, skipped
    images = np.stack(items) if items else np.zeros((0, size, size, 3), np.uint8)
    return images, kept, skipped


# --------------------------------------------------------------------------------------
# The entry point.


def _catalog(spec: DatasetSpec, split: str, source: str, data_dir, download: bool) -> _Catalog:
    role = split_role(split)
    if source == "tfds":
        if spec.tfds_name is None:
            raise DataError(f"{spec.name} is not in tfds: use source 'imagefolder' or {spec.source!r}")
        return _tfds_catalog(spec, role, data_dir, download)
    if source == "imagefolder":
        if data_dir is None:
            raise DataError("source 'imagefolder' needs data_dir: a folder, .zip or tar with <split>/<class>/")
        return _imagefolder_catalog(_open_tree(pathlib.Path(data_dir)), split, official=False,
                                    kind="imagefolder")
    if source == "gtsrb":
        root = pathlib.Path(data_dir) if data_dir is not None else _default_root(spec.name)
        tree = _gtsrb_tree(root, role, spec, download)
        return _gtsrb_train_catalog(tree, spec) if role == "train" else _gtsrb_test_catalog(tree, spec)
    if source == "imagewoof":
        tree = _imagewoof_tree(data_dir, spec, download)
        return _imagefolder_catalog(tree, split, official=True, kind="imagewoof")
    if source == "packed":
        return _packed_catalog(spec, split, data_dir)
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
        source: ``"tfds"``, ``"imagefolder"``, ``"gtsrb"``, ``"imagewoof"`` or None
            (sniffed, see `resolve_source`).
        data_dir: tfds data_dir, ImageFolder folder/zip/tar, or the folder/archive of
            the official files (None: the tfds default, or ``~/.keras/datasets/<name>``).
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
    _check_classes(catalog, spec)
    if limit is None and classes is None:
        _check_size(catalog, spec, role)
    total = len(catalog.members)
    if classes is not None:
        catalog = _filter_classes(catalog, list(classes))
    if limit is not None:
        catalog = catalog.subset(select_subset(catalog.labels, limit))
    images, kept, skipped = _read_images(catalog, spec.image_size, on_corrupt, crop_roi)
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


# --------------------------------------------------------------------------------------
# The "packed" source: a whole ImageFolder in one gzip'd TFRecord file
# (keras_gdfr.data.packed; made by `gdfr pack`), read without TensorFlow.

PACKED_SUFFIX = ".tfrecord.gz"


@functools.lru_cache(maxsize=2)
def _cached_packed(path: str, mtime_ns: int, size: int):
    """One read per file version (train and test come from the same file)."""
    from keras_gdfr.data import packed

    try:
        data = packed.read_packed(path)
    except packed.PackedError as err:
        raise DataError(str(err)) from err
    return data, _MemoryTree(data.files(), path)


def _packed_catalog(spec: DatasetSpec, split: str, data_dir) -> _Catalog:
    """The split of a packed file, listed as the ImageFolder it was packed from."""
    if data_dir is None:
        raise DataError(f"source 'packed' needs data_dir: a {PACKED_SUFFIX} file made by `gdfr pack`")
    path = pathlib.Path(data_dir)
    if not path.is_file():
        raise DataError(f"packed file {path} does not exist")
    stat = path.stat()
    data, tree = _cached_packed(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if data.dataset and data.dataset != spec.name:
        raise DataError(f"{path}: packed from {data.dataset!r}, not {spec.name!r}")
    catalog = _imagefolder_catalog(tree, split, official=False, kind="packed")
    if catalog.class_names != data.class_names:
        raise DataError(f"{path}: class folders {catalog.class_names} differ from its header's {data.class_names}")
    return catalog

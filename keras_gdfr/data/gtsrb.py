"""GTSRB in its official layout, from an extracted folder and/or the official zips.

``GTSRB/Final_Training/Images/000NN/*.ppm`` (+ ``GT-000NN.csv``) and
``GTSRB/Final_Test/Images/*.ppm`` with the labels of ``GT-final_test.csv``; from an
extracted directory and/or the official zips (``GTSRB_Final_Training_Images.zip``,
``GTSRB_Final_Test_Images.zip``, ``GTSRB_Final_Test_GT.zip``) in ``data_dir``,
downloaded there from ``spec.download_url`` when missing and ``download`` is on.
Training labels are the class folder numbers; class names are the folder names
``00000``..``00042``. Each image's annotated sign box (``Roi.X1..Roi.Y2``, inclusive)
is kept in the catalog for ``crop_roi``.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re

import numpy as np

from keras_gdfr.data.archives import DirTree, Tree, UnionTree, ZipTree
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.download import default_root, download
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.specs import DatasetSpec

GTSRB_ZIPS = {
    "train": ("GTSRB_Final_Training_Images.zip",),
    "test": ("GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip"),
}
GTSRB_TRAIN_IMAGE = re.compile(r"(?:^|/)Final_Training/Images/(\d{5})/([^/]+\.ppm)$", re.I)
GTSRB_TRAIN_CSV = re.compile(r"(?:^|/)Final_Training/Images/(\d{5})/GT-\d{5}\.csv$", re.I)
GTSRB_TEST_IMAGE = re.compile(r"(?:^|/)Final_Test/Images/([^/]+\.ppm)$", re.I)
GTSRB_TEST_GT = re.compile(r"(?:^|/)GT-final_test\.csv$", re.I)


def gtsrb_catalog(spec: DatasetSpec, role: str, data_dir, download_missing: bool) -> Catalog:
    """The train or test split (``role``) of GTSRB in ``data_dir`` (None: the default folder)."""
    root = pathlib.Path(data_dir) if data_dir is not None else default_root(spec.name)
    tree = _gtsrb_tree(root, role, spec, download_missing)
    return _train_catalog(tree, spec) if role == "train" else _test_catalog(tree, spec)


def has_gtsrb_layout(path: pathlib.Path) -> bool:
    """A directory that is, or holds, the official GTSRB files."""
    return (path.name.upper() == "GTSRB" or (path / "GTSRB").is_dir()
            or (path / "Final_Training").is_dir() or (path / "Final_Test").is_dir()
            or any(path.glob("GTSRB*.zip")))


def _read_text(tree: Tree, name: str) -> str:
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


def _train_catalog(tree: Tree, spec: DatasetSpec) -> Catalog:
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
    return Catalog(
        tree=tree,
        members=[n for _, n in pairs],
        labels=np.array([label for label, _ in pairs], dtype=np.int32),
        class_names=[f"{i:05d}" for i in range(spec.num_classes)],
        origin=f"gtsrb {tree.location} (Final_Training)",
        official=True,
        boxes=boxes,
    )


def _test_catalog(tree: Tree, spec: DatasetSpec) -> Catalog:
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
    missing = sorted(set(range(spec.num_classes)) - set(labels))
    if missing:  # Imagenette and Imagewoof refuse a test split without a class too
        shown = ", ".join(f"{i:05d}" for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{tree.display(gt_files[0])}: labels {spec.num_classes - len(missing)} of the {spec.num_classes} "
            f"classes; no test image of class {shown} (an incomplete or different file?)"
        )
    order = np.argsort(np.array(members), kind="stable")
    return Catalog(
        tree=tree,
        members=[members[i] for i in order],
        labels=np.array(labels, dtype=np.int32)[order],
        class_names=[f"{i:05d}" for i in range(spec.num_classes)],
        origin=f"gtsrb {tree.location} (Final_Test, labels from {tree.display(gt_files[0])})",
        official=True,
        boxes=boxes,
    )


def _gtsrb_tree(root: pathlib.Path, role: str, spec: DatasetSpec, download_missing: bool) -> Tree:
    if root.is_file():
        root = root.parent
    needed = GTSRB_ZIPS[role]

    def build() -> UnionTree:
        trees: list[Tree] = [DirTree(root)] if root.is_dir() else []
        trees += [ZipTree(p) for p in sorted(root.glob("GTSRB*.zip"))] if root.is_dir() else []
        return UnionTree(trees, str(root))

    tree = build()
    pattern = GTSRB_TRAIN_IMAGE if role == "train" else GTSRB_TEST_IMAGE
    has_images = any(pattern.search(n) for n in tree.names())
    has_labels = role == "train" or any(GTSRB_TEST_GT.search(n) for n in tree.names())
    if has_images and has_labels:
        return tree
    if not download_missing:
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
            download(spec, filename, spec.download_url + filename, root)
    return build()

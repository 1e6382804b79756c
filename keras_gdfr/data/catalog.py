"""A split listed but not read yet (`Catalog`: file names, labels, class names), and what is done to it
before any image is decoded: the checks against the dataset's spec, the class filter, the
deterministic class-balanced subset (`select_subset`)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np

from keras_gdfr.data.archives import Tree
from keras_gdfr.data.errors import DataError, DataWarning
from keras_gdfr.data.specs import DatasetSpec

LIMIT_SEED = 0


@dataclasses.dataclass
class Catalog:
    tree: Tree
    members: list[str]
    labels: np.ndarray  # int32 (M,)
    class_names: list[str]
    origin: str
    official: bool  # an official source: a size mismatch is an error, not a warning
    boxes: dict[str, tuple[int, int, int, int]] | None = None  # GTSRB sign boxes, by member

    def subset(self, keep: np.ndarray, labels: np.ndarray | None = None,
               class_names: list[str] | None = None) -> "Catalog":
        return dataclasses.replace(
            self,
            members=[self.members[i] for i in keep],
            labels=(self.labels if labels is None else labels)[keep].astype(np.int32),
            class_names=self.class_names if class_names is None else class_names,
        )


def check_classes(catalog: Catalog, spec: DatasetSpec) -> None:
    if len(catalog.class_names) != spec.num_classes:
        shown = ", ".join(catalog.class_names[:12]) + (" ..." if len(catalog.class_names) > 12 else "")
        empty = _empty_class_folders(catalog)
        raise DataError(
            f"{catalog.origin}: expected {spec.num_classes} classes for {spec.name}, found "
            f"{len(catalog.class_names)} class folders with images ({shown or 'none'})"
            + (f"; without images: {', '.join(empty)}" if empty else "")
        )


def _empty_class_folders(catalog: Catalog) -> list[str]:
    """Class folders of a directory split that hold no image (they are not counted as classes)."""
    from keras_gdfr.data.archives import DirTree, is_visible

    if not isinstance(catalog.tree, DirTree) or ":" not in catalog.origin:
        return []
    split = catalog.tree.root / catalog.origin.rsplit(":", 1)[1]
    try:
        folders = sorted(p.name for p in split.iterdir() if p.is_dir() and is_visible(p.name))
    except OSError:
        return []
    return [str(split / name) for name in folders if name not in catalog.class_names]


def check_size(catalog: Catalog, spec: DatasetSpec, role: str) -> None:
    """The split's size against the spec's; the warning points at `load_dataset`'s caller."""
    expected = spec.train_size if role == "train" else spec.test_size
    found = len(catalog.members)
    if found == expected:
        return
    message = f"{catalog.origin}: {found} images, but the official {spec.name} {role} split has {expected}"
    if catalog.official:
        raise DataError(message + " (an incomplete or different archive?)")
    warnings.warn(message + " (a subset or a different copy)", DataWarning, stacklevel=3)


def filter_classes(catalog: Catalog, classes: Sequence[str]) -> Catalog:
    """Only the named classes, relabelled 0..k-1 in the given order."""
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

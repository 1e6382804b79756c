"""One split of a dataset in memory (`SplitData`), and the split names (train; test = val = validation)."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_gdfr.data.errors import DataError

SPLIT_ALIASES = {"train": ("train",), "test": ("test", "val", "validation")}


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


def split_role(split: str) -> str:
    """``"train"`` or ``"test"`` for a split name (test, val and validation are aliases)."""
    for role, aliases in SPLIT_ALIASES.items():
        if split in aliases:
            return role
    raise DataError(f"unknown split {split!r}: use train, test, val or validation")


def split_aliases(split: str) -> tuple[str, ...]:
    """The folder names that hold ``split``, the requested name first."""
    aliases = SPLIT_ALIASES[split_role(split)]
    return (split,) + tuple(a for a in aliases if a != split)

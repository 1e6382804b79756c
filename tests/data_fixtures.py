"""Builders of tiny datasets in the original archive layouts, with known pixels and labels.

Used by tests/test_data_sources.py and tests/test_pipeline.py. Every builder writes
under a folder the test gives (tmp_path) and returns what it wrote.
"""

from __future__ import annotations

import io
import pathlib
import tarfile
import zipfile

import numpy as np
from PIL import Image

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
WOOF_WNIDS = [f"n0209{i:04d}" for i in range(10)]
GTSRB_CLASSES = 43
GTSRB_BORDER = 5  # pixels of background around the ROI in the GTSRB fixture


def color(label: int, index: int) -> tuple[int, int, int]:
    """The constant RGB colour of fixture image ``index`` of class ``label``."""
    return (label * 5 % 256, (index * 40 + 3) % 256, 99)


def solid(rgb, width: int, height: int) -> Image.Image:
    return Image.fromarray(np.full((height, width, 3), rgb, np.uint8))


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def truncated_png() -> bytes:
    """A PNG cut in half: PIL opens it but cannot decode it."""
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)), "PNG")
    return data[: len(data) // 2]


def zip_tree(root: pathlib.Path, zip_path: pathlib.Path, arc_prefix: str = "") -> pathlib.Path:
    """Zip every file under ``root`` as ``arc_prefix + relative path``."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, arc_prefix + path.relative_to(root).as_posix())
    return zip_path


def imagefolder(root: pathlib.Path, *, classes=CIFAR_CLASSES, per_class=(3, 1),
                splits=("train", "val"), size=32, fmt="PNG", ext=".png") -> pathlib.Path:
    """``root/<split>/<class>/<k>.png`` solid images of `color`(label, k); returns root."""
    for split, count in zip(splits, per_class):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                solid(color(label, k), size, size).save(folder / f"{k:04d}{ext}", format=fmt)
    (root / "README.txt").write_text("not an image\n")
    return root


def gtsrb_image(label: int, index: int, width: int, height: int) -> Image.Image:
    """Background colour around a ROI of colour `color`(label, index)."""
    pixels = np.full((height, width, 3), (250, 250, 250), np.uint8)
    b = GTSRB_BORDER
    pixels[b:height - b, b:width - b] = color(label, index)
    return Image.fromarray(pixels)


def _roi_row(filename: str, width: int, height: int, label: int | None) -> str:
    b = GTSRB_BORDER
    cells = [filename, width, height, b, b, width - b - 1, height - b - 1]
    return ";".join(str(c) for c in cells + ([] if label is None else [label]))


HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2"


def gtsrb_tree(root: pathlib.Path, *, per_class=2, test_labels=(0, 5, 42, 7, 5, *range(43)), with_gt=True,
               classes=GTSRB_CLASSES) -> dict:
    """The official GTSRB layout under ``root/GTSRB``; returns the expected labels."""
    train = root / "GTSRB" / "Final_Training" / "Images"
    for label in range(classes):
        folder = train / f"{label:05d}"
        folder.mkdir(parents=True)
        rows = [HEADER + ";ClassId"]
        for k in range(per_class):
            width, height = 40 + k * 3, 36 + label % 5
            filename = f"{k:05d}_{k:05d}.ppm"
            gtsrb_image(label, k, width, height).save(folder / filename, format="PPM")
            rows.append(_roi_row(filename, width, height, label))
        (folder / f"GT-{label:05d}.csv").write_text("\n".join(rows) + "\n")
    test = root / "GTSRB" / "Final_Test" / "Images"
    test.mkdir(parents=True)
    rows, unlabeled = [HEADER + ";ClassId"], [HEADER]
    for i, label in enumerate(test_labels):
        filename = f"{i:05d}.ppm"
        width, height = 44, 38 + i
        gtsrb_image(label, i, width, height).save(test / filename, format="PPM")
        rows.append(_roi_row(filename, width, height, label))
        unlabeled.append(_roi_row(filename, width, height, None))
    (test / "GT-final_test.test.csv").write_text("\n".join(unlabeled) + "\n")
    if with_gt:
        (root / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return {"train": np.repeat(np.arange(classes), per_class), "test": np.array(test_labels)}


def gtsrb_zips(tree_root: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """The three official zips of a `gtsrb_tree`, as published (GT csv at the zip's top)."""
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out / "GTSRB_Final_Training_Images.zip", "w") as archive:
        for path in sorted((tree_root / "GTSRB" / "Final_Training").rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree_root).as_posix())
    with zipfile.ZipFile(out / "GTSRB_Final_Test_Images.zip", "w") as archive:
        for path in sorted((tree_root / "GTSRB" / "Final_Test").rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree_root).as_posix())
    with zipfile.ZipFile(out / "GTSRB_Final_Test_GT.zip", "w") as archive:
        archive.write(tree_root / "GT-final_test.csv", "GT-final_test.csv")
    return out


def imagewoof_tree(root: pathlib.Path, per_class=(2, 1)) -> pathlib.Path:
    """``root/imagewoof2/{train,val}/<wnid>/*.JPEG`` (+ the noisy-labels csv); returns it."""
    top = root / "imagewoof2"
    imagefolder(top, classes=WOOF_WNIDS, per_class=per_class, splits=("train", "val"),
                size=48, fmt="JPEG", ext=".JPEG")
    (top / "README.txt").unlink()
    (top / "noisy_imagewoof.csv").write_text("path,noisy_labels_0\n")
    return top


def tgz(folder: pathlib.Path, tgz_path: pathlib.Path) -> pathlib.Path:
    with tarfile.open(tgz_path, "w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return tgz_path


def tfds_cifar10(data_dir: pathlib.Path, train=12, test=5) -> dict:
    """A real prepared tfds ``cifar10`` in ``data_dir``, written by tfds's own builder.

    The builder's download step is replaced by tiny in-memory examples: image i is
    solid grey ``i * 10``, label ``i % 10``. Returns {split: (grey values, labels)}.
    """
    import pytest
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import cifar

    def split_generators(self, dl_manager):
        def examples(prefix, count):
            for i in range(count):
                yield i, {"id": f"{prefix}{i:05d}", "label": i % 10,
                          "image": np.full((32, 32, 3), i * 10, np.uint8)}

        self.info.features["label"].names = CIFAR_CLASSES
        return {"train": examples("train_", train), "test": examples("test_", test)}

    # tfds 4.9.10 finds its checksums through `importlib_resources`, which it does not
    # install on Python >= 3.9: no URLs are needed here, so skip that look-up. (Set and
    # deleted by hand: MonkeyPatch would read the old value, which is that look-up.)
    assert "url_infos" not in vars(cifar.Cifar10)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cifar.Cifar10, "_split_generators", split_generators)
        cifar.Cifar10.url_infos = None
        try:
            builder = tfds.builder("cifar10", data_dir=str(data_dir))
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        finally:
            del cifar.Cifar10.url_infos
    return {split: (np.arange(count) * 10, np.arange(count) % 10)
            for split, count in (("train", train), ("test", test))}

"""The packed dataset file (`keras_gdfr.data.packed`, `gdfr pack`, the "packed" source).

A small ImageFolder zip is built here (10 classes, JPEG and PNG files, under a top
folder); packing it and loading the packed file must give the same images, labels,
class names and order as loading the zip, without TensorFlow.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from keras_gdfr.data import packed
from keras_gdfr.data.errors import DataError, DataWarning
from keras_gdfr.data.sources import load_dataset, resolve_source

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _image_bytes(rng, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def folder_zip(tmp_path_factory):
    """``mini/<split>/<class>/<n>.jpg|png``: 3 train and 2 test images per class."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("packed") / "mini.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in (("train", 3), ("test", 2)):
            for label, name in enumerate(CLASSES):
                for i in range(count):
                    fmt = "PNG" if (label + i) % 4 == 0 else "JPEG"
                    archive.writestr(f"mini/{split}/{name}/{i:04d}.{fmt.lower().replace('jpeg', 'jpg')}",
                                     _image_bytes(rng, fmt))
    return path


@pytest.fixture(scope="module")
def packed_file(folder_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed-out") / "mini.npz"
    packed.pack_imagefolder(folder_zip, out, dataset="cifar10")
    return out


def _load(split, data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # a subset of CIFAR-10's split size
        return load_dataset("cifar10", split, data_dir=str(data_dir))


def test_pack_stores_every_file_unchanged(folder_zip, packed_file):
    data = packed.read_packed(packed_file)
    assert data.dataset == "cifar10"
    assert data.class_names == CLASSES
    assert data.splits == ["train", "test"] and data.counts == [30, 20]
    with zipfile.ZipFile(folder_zip) as archive:
        for record in data.records:
            assert archive.read(f"mini/{record.split}/{record.path}") == record.image
            assert CLASSES[record.label] == record.path.split("/")[0]


@pytest.mark.parametrize("split", ["train", "test"])
def test_packed_source_equals_zip_source(folder_zip, packed_file, split):
    assert resolve_source("cifar10", str(packed_file)) == "packed"
    mine, theirs = _load(split, packed_file), _load(split, folder_zip)
    np.testing.assert_array_equal(mine.images, theirs.images)
    np.testing.assert_array_equal(mine.labels, theirs.labels)
    assert mine.class_names == theirs.class_names == CLASSES
    assert [p.split(":")[-1] for p in mine.paths] == [p.split(":", 1)[1].removeprefix("mini/") for p in theirs.paths]
    assert "packed" in mine.description and str(packed_file) in mine.description


def test_truncated_and_foreign_files_are_named(packed_file, tmp_path):
    blob = packed_file.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="cut.npz: not a readable .npz file"):
        _load("train", cut)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF  # inside the images' compressed bytes: a bad CRC or stream
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(packed.PackedError, match="flipped.npz: not a readable .npz file"):
        packed.read_packed(tmp_path / "flipped.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez_compressed(foreign, x=np.arange(3))
    with pytest.raises(packed.PackedError, match="not a gdfr-packed-v2 file"):
        packed.read_packed(foreign)
    not_npz = tmp_path / "plain.npz"
    not_npz.write_bytes(b"hello")
    with pytest.raises(DataError, match="plain.npz"):
        _load("train", not_npz)
    with pytest.raises(DataError, match="no such file or folder|does not exist"):
        _load("train", tmp_path / "missing.npz")


def test_records_must_be_grouped_by_split(tmp_path):
    records = [packed.PackedRecord(split, f"a/{i}.jpg", 0, b"x") for i, split in enumerate(["train", "test", "train"])]
    with pytest.raises(packed.PackedError, match=r"grouped by split, not interleaved \(train, test\)"):
        packed.write_packed(tmp_path / "x.npz", records, class_names=["a"])


def test_wrong_dataset_is_refused(packed_file):
    with pytest.raises(DataError, match="packed from 'cifar10', not 'cifar100'"):
        load_dataset("cifar100", "train", data_dir=str(packed_file))


def test_gdfr_pack_command(folder_zip, tmp_path):
    from keras_gdfr.cli import main

    out = tmp_path / "cli.npz"
    result = CliRunner().invoke(main, ["pack", str(folder_zip), str(out), "--dataset", "cifar10"])
    assert result.exit_code == 0, result.output
    assert "train 30, test 20, 10 classes" in result.output
    assert os.path.getsize(out) > 0
    bad = CliRunner().invoke(main, ["pack", str(folder_zip), str(tmp_path / "x.zip")])
    assert bad.exit_code != 0 and "must end in .npz" in bad.output

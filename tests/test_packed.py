"""The packed dataset file (`keras_gdfr.data.packed`, `gdfr pack`, the "packed" source).

A small ImageFolder zip is built here (10 classes, JPEG and PNG files, under a top
folder); packing it and loading the packed file must give the same images, labels,
class names and order as loading the zip, without TensorFlow; TensorFlow (when
installed) must read the same file as an ordinary GZIP TFRecord file.
"""

from __future__ import annotations

import gzip
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
    out = tmp_path_factory.mktemp("packed-out") / "mini.tfrecord.gz"
    packed.pack_imagefolder(folder_zip, out, dataset="cifar10")
    return out


def _load(split, data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # a subset of CIFAR-10's split size
        return load_dataset("cifar10", split, data_dir=str(data_dir))


def test_crc32c_known_value_and_vectorised_agrees():
    assert packed.crc32c(b"123456789") == 0xE3069283
    rng = np.random.default_rng(1)
    items = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (0, 1, 3, 64, 1000, 7, 0, 513)]
    many = packed.crc32c_many(items, group_bytes=1500)  # several groups
    assert [int(v) for v in many] == [packed.crc32c(b) for b in items]


def test_example_round_trip():
    features = {"image": b"\x00\xffabc", "label": 7, "counts": [50000, -3, 0], "names": ["a", "b"]}
    decoded = packed.decode_example(packed.encode_example(features))
    assert decoded == {"image": [b"\x00\xffabc"], "label": [7], "counts": [50000, -3, 0], "names": [b"a", b"b"]}


def test_pack_stores_every_file_unchanged(folder_zip, packed_file):
    data = packed.read_packed(packed_file, verify=True)
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


def test_tensorflow_reads_it_as_a_gzip_tfrecord(packed_file):
    tf = pytest.importorskip("tensorflow")
    records = list(tf.data.TFRecordDataset(str(packed_file), compression_type="GZIP"))
    assert len(records) == 1 + 50
    spec = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64),
            "split": tf.io.FixedLenFeature([], tf.string), "path": tf.io.FixedLenFeature([], tf.string)}
    first = tf.io.parse_single_example(records[1], spec)
    ours = packed.read_packed(packed_file).records[0]
    assert first["image"].numpy() == ours.image and int(first["label"]) == ours.label
    assert first["split"].numpy().decode() == ours.split and first["path"].numpy().decode() == ours.path
    header = tf.io.parse_single_example(records[0], {"class_names": tf.io.VarLenFeature(tf.string)})
    assert [c.decode() for c in header["class_names"].values.numpy()] == CLASSES


def test_truncated_and_foreign_files_are_named(packed_file, tmp_path):
    blob = gzip.decompress(packed_file.read_bytes())
    cut = tmp_path / "cut.tfrecord.gz"
    cut.write_bytes(gzip.compress(blob[: len(blob) // 2]))
    with pytest.raises(DataError, match="cut.tfrecord.gz"):
        _load("train", cut)
    foreign = tmp_path / "foreign.tfrecord.gz"
    foreign.write_bytes(gzip.compress(b"".join(packed.frame_records([packed.encode_example({"x": 1})]))))
    with pytest.raises(packed.PackedError, match="not a gdfr-packed-v1 file"):
        packed.read_packed(foreign)
    not_gzip = tmp_path / "plain.tfrecord.gz"
    not_gzip.write_bytes(b"hello")
    with pytest.raises(DataError, match="plain.tfrecord.gz"):
        _load("train", not_gzip)
    with pytest.raises(DataError, match="no such file or folder|does not exist"):
        _load("train", tmp_path / "missing.tfrecord.gz")


def test_wrong_dataset_is_refused(packed_file):
    with pytest.raises(DataError, match="packed from 'cifar10', not 'cifar100'"):
        load_dataset("cifar100", "train", data_dir=str(packed_file))


def test_gdfr_pack_command(folder_zip, tmp_path):
    from keras_gdfr.cli import main

    out = tmp_path / "cli.tfrecord.gz"
    result = CliRunner().invoke(main, ["pack", str(folder_zip), str(out), "--dataset", "cifar10"])
    assert result.exit_code == 0, result.output
    assert "train 30, test 20, 10 classes" in result.output
    assert os.path.getsize(out) > 0
    bad = CliRunner().invoke(main, ["pack", str(folder_zip), str(tmp_path / "x.zip")])
    assert bad.exit_code != 0 and ".tfrecord.gz" in bad.output

"""Dataset sources: ImageFolder, GTSRB, imagewoof2, tfds, on fixtures built here and the real zips."""

from __future__ import annotations

import io
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from keras_gdfr.data.catalog import select_subset
from keras_gdfr.data.errors import DataError, DataWarning
from keras_gdfr.data.sources import load_dataset, resolve_source
from keras_gdfr.data.split import SplitData
from keras_gdfr.data.specs import DATASETS
from tests import data_fixtures as fx


class _Raising:
    """Context manager: any DataWarning inside becomes an error."""

    def __enter__(self):
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", DataWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


@pytest.fixture
def folder(tmp_path):
    return fx.imagefolder(tmp_path / "mini")


# ----------------------------------------------------------------------------- ImageFolder


def test_imagefolder_directory_labels_pixels_and_alias(folder):
    with pytest.warns(DataWarning, match="30 images, but the official cifar10 train split has 50000"):
        train = load_dataset("cifar10", "train", data_dir=folder)
    assert isinstance(train, SplitData)
    assert train.class_names == fx.CIFAR_CLASSES
    assert train.images.shape == (30, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int32
    np.testing.assert_array_equal(train.labels, np.repeat(np.arange(10), 3))
    for image, label, path in zip(train.images, train.labels, train.paths):
        k = int(path.rsplit("/", 1)[1][:4])
        assert (image == fx.color(label, k)).all()
    assert "imagefolder" in train.description and str(folder) in train.description
    with pytest.warns(DataWarning):
        test = load_dataset("cifar10", "test", data_dir=folder)  # test -> val/ folder
    assert len(test) == 10 and test.paths[0].endswith("val/airplane/0000.png")


def test_imagefolder_zip_under_top_folder_matches_directory(folder, tmp_path):
    archive = fx.zip_tree(folder, tmp_path / "mini.zip", arc_prefix="cifar-mini/")
    direct = load_dataset("cifar10", "validation", data_dir=folder, limit=100)
    zipped = load_dataset("cifar10", "validation", data_dir=archive, limit=100)
    np.testing.assert_array_equal(direct.images, zipped.images)
    np.testing.assert_array_equal(direct.labels, zipped.labels)
    assert zipped.paths[0] == f"{archive}:cifar-mini/val/airplane/0000.png"
    assert not (tmp_path / "cifar-mini").exists()  # read in memory, never extracted


def test_corrupt_image_skip_counts_and_fail_names_path(folder, tmp_path):
    (folder / "train" / "cat" / "broken.png").write_bytes(fx.truncated_png())
    (folder / "train" / "dog" / "empty.jpg").write_bytes(b"")
    archive = fx.zip_tree(folder, tmp_path / "bad.zip")
    with pytest.warns(DataWarning, match=r"skipped 2 unreadable image\(s\): .*train/cat/broken.png"):
        data = load_dataset("cifar10", "train", data_dir=archive, limit=1000)
    assert len(data) == 30 and len(data.skipped) == 2
    assert data.skipped[0] == f"{archive}:train/cat/broken.png"
    assert "2 unreadable skipped" in data.description
    with pytest.raises(DataError, match=r"unreadable image .*bad.zip:train/cat/broken.png"):
        load_dataset("cifar10", "train", data_dir=archive, limit=1000, on_corrupt="fail")
    with pytest.raises(DataError, match="on_corrupt"):
        load_dataset("cifar10", "train", data_dir=archive, on_corrupt="ignore")


def test_class_count_mismatch_names_source(tmp_path):
    root = fx.imagefolder(tmp_path / "three", classes=["a", "b", "c"])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "train", data_dir=root)
    message = str(info.value)
    assert str(root) in message and "expected 10 classes" in message and "found 3" in message


def test_missing_split_folder(folder):
    shutil.rmtree(folder / "val")
    with pytest.raises(DataError, match=r"no folder for split 'test' .*test/, val/, validation/"):
        load_dataset("cifar10", "test", data_dir=folder, source="imagefolder")


def test_limit_is_deterministic_balanced_and_classes_remap(folder):
    first = load_dataset("cifar10", "train", data_dir=folder, limit=12)
    again = load_dataset("cifar10", "train", data_dir=folder, limit=12)
    assert first.paths == again.paths and len(first) == 12
    counts = np.bincount(first.labels, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert "limit 12" in first.description
    two = load_dataset("cifar10", "train", data_dir=folder, classes=["dog", "cat"])
    assert two.class_names == ["dog", "cat"]
    np.testing.assert_array_equal(np.sort(two.labels), [0, 0, 0, 1, 1, 1])
    for image, label in zip(two.images, two.labels):
        original = fx.CIFAR_CLASSES.index(two.class_names[label])
        assert image[0, 0, 0] == fx.color(original, 0)[0]
    with pytest.raises(DataError, match="unknown classes"):
        load_dataset("cifar10", "train", data_dir=folder, classes=["unicorn"])


def test_select_subset_properties():
    labels = np.repeat(np.arange(5), [10, 10, 10, 2, 10])
    chosen = select_subset(labels, 20)
    assert len(chosen) == 20 and (np.diff(chosen) > 0).all()
    counts = np.bincount(labels[chosen], minlength=5)
    assert counts[3] == 2  # the small class gives all it has, the others share the rest
    assert sorted(counts[[0, 1, 2, 4]].tolist()) == [4, 4, 5, 5]
    np.testing.assert_array_equal(chosen, select_subset(labels, 20))
    np.testing.assert_array_equal(select_subset(labels, 100), np.arange(42))


def test_other_sizes_are_resized(tmp_path):
    root = fx.imagefolder(tmp_path / "big", size=45, per_class=(1, 1))
    data = load_dataset("cifar10", "train", data_dir=root, limit=10)
    assert data.images.shape == (10, 32, 32, 3)
    assert (data.images[3] == fx.color(3, 0)).all()


def test_large_images_stay_encoded_and_odd_formats_are_reencoded(tmp_path):
    root = fx.imagefolder(tmp_path / "nette", classes=fx.WOOF_WNIDS, per_class=(1, 1),
                          size=40, fmt="JPEG", ext=".JPEG")
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 0, 0))
    cmyk.save(root / "train" / fx.WOOF_WNIDS[0] / "cmyk.jpg", format="JPEG")
    solid = fx.solid((10, 20, 30), 20, 20)
    solid.save(root / "train" / fx.WOOF_WNIDS[1] / "b.bmp", format="BMP")
    data = load_dataset("imagenette", "train", data_dir=root, limit=100)
    assert data.images is None and data.is_encoded and len(data.encoded) == 12
    by_name = dict(zip((p.rsplit("/", 1)[1] for p in data.paths), data.encoded))
    assert by_name["0000.JPEG"][:2] == b"\xff\xd8"  # kept as it was
    assert by_name["cmyk.jpg"][:4] == b"\x89PNG" and by_name["b.bmp"][:4] == b"\x89PNG"
    assert Image.open(io.BytesIO(by_name["b.bmp"])).getpixel((0, 0)) == (10, 20, 30)


# ----------------------------------------------------------------------------- GTSRB


@pytest.fixture(scope="module")
def gtsrb(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtsrb")
    tree = root / "extracted"
    labels = fx.gtsrb_tree(tree)
    zips = fx.gtsrb_zips(tree, root / "zips")
    return tree, zips, labels


def test_gtsrb_train_from_tree_and_zips(gtsrb):
    tree, zips, labels = gtsrb
    assert resolve_source("gtsrb", tree) == "gtsrb" and resolve_source("gtsrb", zips) == "gtsrb"
    from_tree = load_dataset("gtsrb", "train", data_dir=tree, limit=1000)
    from_zips = load_dataset("gtsrb", "train", data_dir=zips, limit=1000)
    assert from_tree.class_names == [f"{i:05d}" for i in range(43)]
    np.testing.assert_array_equal(from_tree.labels, labels["train"])
    np.testing.assert_array_equal(from_tree.images, from_zips.images)
    np.testing.assert_array_equal(from_tree.labels, from_zips.labels)
    assert from_tree.images.shape == (86, 32, 32, 3)
    for image, label in zip(from_tree.images, from_tree.labels):
        assert (image[16, 16] == fx.color(label, 0)).all() or (image[16, 16] == fx.color(label, 1)).all()
        assert (image[0, 0] == 250).all()  # whole image resized: the background is kept
    assert from_zips.paths[0].endswith(
        "GTSRB_Final_Training_Images.zip:GTSRB/Final_Training/Images/00000/00000_00000.ppm")


def test_gtsrb_size_check_and_roi_crop(gtsrb):
    tree, _, labels = gtsrb
    with pytest.raises(DataError, match=r"86 images, but the official gtsrb train split has 39209"):
        load_dataset("gtsrb", "train", data_dir=tree)
    cropped = load_dataset("gtsrb", "train", data_dir=tree, limit=1000, crop_roi=True)
    for image, label, path in zip(cropped.images, cropped.labels, cropped.paths):
        k = int(path.rsplit("/", 1)[1][:5])
        assert (np.abs(image.astype(int) - fx.color(label, k)) <= 1).all()


def test_gtsrb_test_labels_from_gt_csv(gtsrb):
    tree, zips, labels = gtsrb
    for root in (tree, zips):
        test = load_dataset("gtsrb", "test", data_dir=root, limit=100, crop_roi=True)
        np.testing.assert_array_equal(test.labels, labels["test"])
        assert test.class_names[42] == "00042"
        for i, (image, label) in enumerate(zip(test.images, test.labels)):
            assert (np.abs(image.astype(int) - fx.color(label, i)) <= 1).all()


def test_gtsrb_missing_parts(tmp_path):
    tree = tmp_path / "nogt"
    fx.gtsrb_tree(tree, with_gt=False, per_class=1)
    with pytest.raises(DataError, match=r"missing the labels \(GT-final_test.csv, or GTSRB_Final_Test_GT.zip\)"):
        load_dataset("gtsrb", "test", data_dir=tree, download=False)
    with pytest.raises(DataError, match=r"GTSRB train split not found: missing the images .*GTSRB_Final_Training_Images.zip"):
        load_dataset("gtsrb", "train", data_dir=tmp_path / "empty", source="gtsrb", download=False)
    few = tmp_path / "few"
    fx.gtsrb_tree(few, per_class=1, classes=40)
    with pytest.raises(DataError, match=r"expected 43 classes for gtsrb, found 40 class folders"):
        load_dataset("gtsrb", "train", data_dir=few, limit=10)


# ----------------------------------------------------------------------------- imagewoof


def test_imagewoof_tree_and_tgz(tmp_path):
    top = fx.imagewoof_tree(tmp_path / "dl")
    archive = fx.tgz(top, tmp_path / "imagewoof2.tgz")
    for root in (tmp_path / "dl", top, archive):
        assert resolve_source("imagewoof", root) == "imagewoof"
    with pytest.raises(DataError, match=r"20 images, but the official imagewoof train split has 9025"):
        load_dataset("imagewoof", "train", data_dir=top)
    from_dir = load_dataset("imagewoof", "train", data_dir=tmp_path / "dl", limit=1000)
    from_tgz = load_dataset("imagewoof", "train", data_dir=archive, limit=1000)
    assert from_dir.class_names == fx.WOOF_WNIDS == from_tgz.class_names
    np.testing.assert_array_equal(from_dir.labels, np.repeat(np.arange(10), 2))
    assert from_dir.encoded == from_tgz.encoded and from_dir.images is None
    decoded = np.asarray(Image.open(io.BytesIO(from_dir.encoded[2])))
    assert np.abs(decoded.astype(int) - fx.color(1, 0)).max() <= 3
    val = load_dataset("imagewoof", "test", data_dir=archive, limit=4)
    assert len(val) == 4 and val.paths[0].startswith(f"{archive}:imagewoof2/val/")
    with pytest.raises(DataError, match="no imagewoof2 folder or imagewoof2.tgz"):
        load_dataset("imagewoof", "train", data_dir=tmp_path / "nothing", source="imagewoof",
                     download=False)


# ----------------------------------------------------------------------------- tfds


def test_tfds_prepared_data_dir_is_read(tmp_path):
    expected = fx.tfds_cifar10(tmp_path / "tfds")
    assert resolve_source("cifar10", tmp_path / "tfds") == "tfds"
    for split in ("train", "test"):
        data = load_dataset("cifar10", split, data_dir=tmp_path / "tfds", download=False, limit=100)
        greys, labels = expected[split]
        assert data.class_names == fx.CIFAR_CLASSES
        assert data.images.shape == (len(labels), 32, 32, 3)
        found = sorted(zip(data.images[:, 0, 0, 0].tolist(), data.labels.tolist()))
        assert found == sorted(zip(greys.tolist(), labels.tolist()))
        assert "tfds cifar10" in data.description
    with pytest.raises(DataError, match="12 images, but the official cifar10 train split has 50000"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "tfds", download=False)


def test_tfds_missing_data_dir_message(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "train", source="tfds", data_dir=tmp_path / "none", download=False)
    message = str(info.value)
    assert "'cifar10'" in message and str(tmp_path / "none") in message and "download is off" in message
    with pytest.raises(DataError, match="not in tfds"):
        load_dataset("gtsrb", "train", source="tfds")


# ----------------------------------------------------------------------------- sniffing


def test_resolve_source(tmp_path, folder):
    assert resolve_source("cifar10") == "tfds"
    assert resolve_source("gtsrb") == "gtsrb"
    assert resolve_source("cifar10", folder) == "imagefolder"
    assert resolve_source("cifar10", tmp_path / "x.zip") == "imagefolder"
    assert resolve_source("cifar10", tmp_path / "tfds_home") == "tfds"
    assert resolve_source("cifar10", folder, source="tfds") == "tfds"
    nested = tmp_path / "outer"
    shutil.copytree(folder, nested / "cifar")
    assert resolve_source("cifar10", nested) == "imagefolder"
    with pytest.raises(DataError, match="unknown source"):
        resolve_source("cifar10", source="hf")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("cifar10", "dev", data_dir=folder)


# ----------------------------------------------------------------------------- real data


def test_real_cifar10_zip_limited(cifar10_zip):
    with _Raising():
        data = load_dataset("cifar10", "train", data_dir=cifar10_zip, limit=500)
    assert data.images.shape == (500, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(data.labels), [50] * 10)
    assert data.class_names == fx.CIFAR_CLASSES
    assert 40 < data.images.mean() < 200


def test_real_cifar10_full_test_split_passes_size_check_silently(cifar10_zip):
    with _Raising():
        data = load_dataset("cifar10", "test", data_dir=cifar10_zip)
    assert len(data) == DATASETS["cifar10"].test_size and data.skipped == []


def test_real_imagenette_zip_limited(imagenette_zip):
    with _Raising():
        data = load_dataset("imagenette", "val", data_dir=imagenette_zip, limit=20)
    assert len(data.encoded) == 20 and data.images is None
    assert len(set(data.labels.tolist())) == 10 and data.class_names[0] == "n01440764"
    assert Image.open(io.BytesIO(data.encoded[0])).size == (224, 224)

"""Every `[augment]` key changes the batches it should, in both input pipelines.

The expected images are computed here with numpy (and PIL for resize),
independently of `keras_gdfr.data.augment`: `pad = 0` means no translation,
`normalize = false` leaves the 0-255 scale, `flip = false` never mirrors, and
`resize` sets the side the crop is taken from.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from keras_gdfr.data.augment import Augmentation, epoch_plan
from keras_gdfr.data.device_pipeline import DeviceEvalData, DeviceTrainData
from keras_gdfr.data.split import SplitData
from keras_gdfr.data.specs import DATASETS

SPEC = DATASETS["cifar10"]
N, SEED = 24, 5


def split() -> SplitData:
    rng = np.random.default_rng(3)
    return SplitData(labels=np.arange(N) % 10, class_names=[str(i) for i in range(10)], description="synthetic",
                     image_size=32, images=rng.integers(1, 256, (N, 32, 32, 3), dtype=np.uint8))


def batches(kind: str, aug: Augmentation, train: bool = True) -> np.ndarray:
    """Epoch 0 (train) or the eval pass as one float32 array, from the named pipeline."""
    data = split()
    if kind == "tf.data":
        pytest.importorskip("tensorflow")
        from keras_gdfr.data import pipeline

        ds = (pipeline.train_dataset(data, SPEC, batch_size=N, seed=SEED, epochs=1, augmentation=aug) if train
              else pipeline.eval_dataset(data, SPEC, N, augmentation=aug))
        return np.concatenate([x.numpy() for x, _ in ds])
    ds = (DeviceTrainData(data, aug, batch_size=N, seed=SEED, epochs=1) if train
          else DeviceEvalData(data, aug, batch_size=N))
    return np.concatenate([keras.ops.convert_to_numpy(ds[k][0]) for k in range(len(ds))])


def aug(**keys) -> Augmentation:
    return Augmentation.for_spec(SPEC, **{"normalize": False, **keys})


def reference(images, draws, *, pad, flip, size=32):
    out = []
    for image, (u_row, u_col, u_flip) in zip(images, draws):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
        room = padded.shape[0] - size
        top = min(int(np.floor(u_row * np.float32(room + 1))), room)
        left = min(int(np.floor(u_col * np.float32(room + 1))), room)
        crop = padded[top:top + size, left:left + size]
        out.append(crop[:, ::-1] if flip and u_flip < 0.5 else crop)
    return np.stack(out).astype(np.float32)


PIPELINES = ["device", "tf.data"]


@pytest.mark.parametrize("kind", PIPELINES)
def test_pad_zero_means_no_translation(kind):
    data = split()
    order, draws = epoch_plan(N, SEED, 0)
    got = batches(kind, aug(pad=0, flip=False))
    np.testing.assert_array_equal(got, data.images[order].astype(np.float32))
    shifted = batches(kind, aug(pad=4, flip=False))
    np.testing.assert_array_equal(shifted, reference(data.images[order], draws, pad=4, flip=False))
    assert not np.array_equal(shifted, got)


@pytest.mark.parametrize("kind", PIPELINES)
def test_normalize_false_keeps_the_0_255_scale(kind):
    data = split()
    plain = batches(kind, aug(), train=False)
    np.testing.assert_array_equal(plain, data.images.astype(np.float32))
    assert plain.max() > 200
    normed = batches(kind, aug(normalize=True), train=False)
    expected = (data.images / 255.0 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(normed, expected, atol=1e-5)


@pytest.mark.parametrize("kind", PIPELINES)
def test_flip_false_never_mirrors(kind):
    data = split()
    order, draws = epoch_plan(N, SEED, 0)
    assert (draws[:, 2] < 0.5).sum() >= 3  # flips would be drawn
    flipped = batches(kind, aug(pad=0, flip=True))
    np.testing.assert_array_equal(flipped, reference(data.images[order], draws, pad=0, flip=True))
    unflipped = batches(kind, aug(pad=0, flip=False))
    np.testing.assert_array_equal(unflipped, data.images[order].astype(np.float32))


@pytest.mark.parametrize("kind", PIPELINES)
def test_resize_sets_the_side_the_crop_comes_from(kind):
    data = split()
    resized = np.stack([np.asarray(Image.fromarray(im).resize((40, 40), Image.BILINEAR)) for im in data.images])
    np.testing.assert_array_equal(batches(kind, aug(resize=40, pad=0), train=False),
                                  resized[:, 4:36, 4:36].astype(np.float32))  # eval: the centre crop
    order, draws = epoch_plan(N, SEED, 0)
    np.testing.assert_array_equal(batches(kind, aug(resize=40, pad=0, flip=False)),
                                  reference(resized[order], draws, pad=0, flip=False))


def test_recipe_keys_reach_the_augmentation():
    from keras_gdfr.training.recipe import RecipeError, load_recipe
    from keras_gdfr.training.run import augmentation

    paper = augmentation(load_recipe("cifar10"))
    assert (paper.pad, paper.resize, paper.flip, paper.normalize) == (4, 32, True, True)
    large = augmentation(load_recipe("imagenette"))
    assert (large.size, large.pad, large.resize) == (256, 0, 288)
    assert augmentation(load_recipe("svhn")).flip is False
    changed = augmentation(load_recipe("cifar10", sets=["augment.pad=0", "augment.resize=36",
                                                        "augment.normalize=false", "augment.flip=false"]))
    assert (changed.pad, changed.resize, changed.flip, changed.normalize) == (0, 36, False, False)
    with pytest.raises(RecipeError, match="augment.resize: 30 is smaller than cifar10's 32-px crop"):
        load_recipe("cifar10", sets=["augment.resize=30"])

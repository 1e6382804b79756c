"""The paper's datasets (Table 1): the single source of truth for their facts.

Classes, image size, split sizes, where to get them, whether horizontal flips
keep the label, and the per-channel normalisation statistics.
"""

from __future__ import annotations

import dataclasses

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Facts about one dataset of the paper.

    Attributes:
        name: the recipe's name for it.
        num_classes: number of labels.
        image_size: side of the square training image (Table 1).
        train_size, test_size: official split sizes.
        source: "tfds" (by `tfds_name`), or "gtsrb" / "imagewoof" (official archives).
        tfds_name: the TensorFlow Datasets catalog name, when in tfds.
        splits: (train split, test split) names in the source.
        flip: whether a horizontal flip keeps the label (not for digits, signs).
        mean, std: per-channel normalisation statistics on [0, 1] images.
        batch_size: the paper's batch size (Table 2: 128 at 32 px, 64 at 256 px).
        download_url: official archive, for sources outside tfds.
        stem: the stem every variant uses on this dataset, or None for the
            variant's own. 256-px datasets use ResNet-34's 7x7 stride-2 stem +
            max-pool for all (section 2.5; why Table 9 has no net2 row there).
    """

    name: str
    num_classes: int
    image_size: int
    train_size: int
    test_size: int
    source: str
    tfds_name: str | None
    splits: tuple[str, str]
    flip: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    batch_size: int
    download_url: str | None = None
    stem: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "cifar10", 10, 32, 50_000, 10_000, "tfds", "cifar10", ("train", "test"), True,
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 128,
        ),
        DatasetSpec(
            "cifar100", 100, 32, 50_000, 10_000, "tfds", "cifar100", ("train", "test"), True,
            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 128,
        ),
        DatasetSpec(
            "svhn", 10, 32, 73_257, 26_032, "tfds", "svhn_cropped", ("train", "test"), False,
            (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 128,
        ),
        DatasetSpec(
            "gtsrb", 43, 32, 39_209, 12_630, "gtsrb", None, ("train", "test"), False,
            (0.3403, 0.3121, 0.3214), (0.2724, 0.2608, 0.2669), 128,
            "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/",
        ),
        DatasetSpec(
            "imagenette", 10, 256, 9_469, 3_925, "tfds", "imagenette/full-size-v2",
            ("train", "validation"), True, IMAGENET_MEAN, IMAGENET_STD, 64, stem="7x7",
        ),
        DatasetSpec(
            "imagewoof", 10, 256, 9_025, 3_929, "imagewoof", None, ("train", "val"), True,
            IMAGENET_MEAN, IMAGENET_STD, 64,
            "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2.tgz", stem="7x7",
        ),
    )
}

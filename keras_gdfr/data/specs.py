"""The paper's datasets (Table 1): the single source of truth for their facts.

Classes, image size, split sizes, where to get them, whether horizontal flips
keep the label, and the per-channel normalisation statistics.
"""

from __future__ import annotations

import dataclasses

# A spec image_size at or above this is a 256-px dataset: its split keeps encoded files
# (keras_gdfr.data.decode) and it takes the 256-px augmentation (keras_gdfr.data.augment).
LARGE_IMAGE_SIZE = 64

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


# Readable class names, keyed by the ids the sources give (GTSRB's class folders
# 00000-00042, the WordNet ids of Imagenette and Imagewoof). The other datasets'
# ids are already words.
GTSRB_SIGNS = (
    "Speed limit (20km/h)", "Speed limit (30km/h)", "Speed limit (50km/h)", "Speed limit (60km/h)",
    "Speed limit (70km/h)", "Speed limit (80km/h)", "End of speed limit (80km/h)", "Speed limit (100km/h)",
    "Speed limit (120km/h)", "No passing", "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection", "Priority road", "Yield", "Stop", "No vehicles",
    "Vehicles over 3.5 metric tons prohibited", "No entry", "General caution", "Dangerous curve to the left",
    "Dangerous curve to the right", "Double curve", "Bumpy road", "Slippery road", "Road narrows on the right",
    "Road work", "Traffic signals", "Pedestrians", "Children crossing", "Bicycles crossing",
    "Beware of ice/snow", "Wild animals crossing", "End of all speed and passing limits", "Turn right ahead",
    "Turn left ahead", "Ahead only", "Go straight or right", "Go straight or left", "Keep right", "Keep left",
    "Roundabout mandatory", "End of no passing", "End of no passing by vehicles over 3.5 metric tons",
)

# The class folders of each WordNet dataset, as its archives name them (checked against
# tfds's label files and the real Imagenette folders in tests/test_predict_export.py).
WORDNET_NAMES = {
    "imagenette": {
        "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
        "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
        "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
        "n03888257": "parachute",
    },
    "imagewoof": {
        "n02086240": "Shih-Tzu", "n02087394": "Rhodesian ridgeback", "n02088364": "beagle",
        "n02089973": "English foxhound", "n02093754": "Border terrier", "n02096294": "Australian terrier",
        "n02099601": "golden retriever", "n02105641": "Old English sheepdog", "n02111889": "Samoyed",
        "n02115641": "dingo",
    },
}


def readable_class_name(dataset: str | None, class_id: str) -> str:
    """The words for one raw class id of `dataset` (the id itself when there are none)."""
    class_id = str(class_id)
    if dataset == "gtsrb" and class_id.isdigit() and int(class_id) < len(GTSRB_SIGNS):
        return GTSRB_SIGNS[int(class_id)]
    if dataset in WORDNET_NAMES:
        return WORDNET_NAMES[dataset].get(class_id, class_id)
    return class_id


def readable_class_names(dataset: str | None, class_ids) -> list[str]:
    """`readable_class_name` of each id, in label order.

    >>> readable_class_names("gtsrb", ["00000", "00014"])
    ['Speed limit (20km/h)', 'Stop']
    >>> readable_class_names("imagenette", ["n01440764"])
    ['tench']
    """
    return [readable_class_name(dataset, class_id) for class_id in class_ids]

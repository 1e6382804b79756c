"""`predict_files`: class names and probabilities for image files, from a run or a `.keras` model.

Images are read as the recipe's test split reads them (one source of truth, the
data modules): 32-px datasets resize the whole image to S x S (bilinear, as
`keras_gdfr.data.decode` does), 256-px datasets resize the shorter side to 9/8 S
and take the centre S x S crop (`keras_gdfr.data.augment`, as the eval pipeline does).
The model takes the raw 0-255 pixels (its preprocessing is inside:
`keras_gdfr.saving`).

Python:

    from keras_gdfr.predict import predict_files
    for row in predict_files("runs/cifar10-tiny", ["bird.jpg"], top_k=3):
        print(row["path"], row["top"])   # [{"class": "bird", "probability": 0.91}, ...]

No click here: the `gdfr predict` command that wraps `predict_files` is in `keras_gdfr.cli`,
so the Python API needs only the package's own dependencies (and Pillow to decode).
"""

from __future__ import annotations

import pathlib

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".webp")


def image_files(targets) -> list[pathlib.Path]:
    """The image files named by `targets` (files, or folders searched recursively), sorted per folder.

    Raises ValueError naming the target that is missing or holds no image.
    """
    files = []
    for target in map(pathlib.Path, targets):
        if target.is_dir():
            found = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ValueError(f"{target}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif target.is_file():
            files.append(target)
        else:
            raise ValueError(f"{target}: no such image file or folder")
    return files


def model_image_size(model) -> int:
    """S of a model taking S x S images (channels_last or channels_first)."""
    from keras_gdfr.saving import model_data_format

    shape = model.input_shape
    height = shape[2] if model_data_format(model) == "channels_first" else shape[1]
    if height is None:
        raise ValueError("the model's input size is not fixed; cannot choose the image size")
    return int(height)


def read_images(payloads, size: int, data_format: str = "channels_last", resize: int | None = None):
    """float32 raw 0-255 images (N, S, S, 3) (or (N, 3, S, S)) from encoded files, as the test split reads them.

    ``resize``: the recipe's ``[augment] resize`` for 256-px datasets (default 9/8 S).
    """
    import numpy as np

    from keras_gdfr.data.augment import prepare_image, train_resize
    from keras_gdfr.data.decode import decode_small
    from keras_gdfr.data.specs import LARGE_IMAGE_SIZE

    if size >= LARGE_IMAGE_SIZE:
        # The eval pipeline's steps (keras_gdfr.data.augment): shorter side to R + centre
        # square (prepare_image), then the centre S crop that augment_batch takes when not training.
        resize = int(resize or train_resize(size))
        offset = (resize - size) // 2
        batch = np.stack([prepare_image(payload, resize)[offset:offset + size, offset:offset + size]
                          for payload in payloads]).astype("float32")
    else:
        batch = np.stack([decode_small(payload, size).astype("float32") for payload in payloads])
    return batch.transpose(0, 3, 1, 2) if data_format == "channels_first" else batch


def probabilities(model, images, batch_size: int = 64):
    """Softmax probabilities (N, K) of `model` on raw images (the head gives logits unless told otherwise)."""
    import numpy as np

    from keras_gdfr.evaluation import softmax

    outputs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype="float64")
    head = next((layer for layer in model.layers if layer.name == "head"), None)
    if head is not None and getattr(head.activation, "__name__", "") == "softmax":
        return outputs
    return softmax(outputs)


def predict_files(source, targets, top_k: int = 5) -> list[dict]:
    """[{"path", "top": [{"class", "index", "probability"}, ...]}] for every image of `targets`."""
    import numpy as np

    from keras_gdfr.saving import model_data_format, load_run_model

    loaded = load_run_model(source)
    files = image_files(targets)
    size = loaded.recipe.spec.image_size if loaded.recipe is not None else model_image_size(loaded.model)
    resize = loaded.recipe.augment.resize if loaded.recipe is not None else None
    images = read_images([path.read_bytes() for path in files], size, model_data_format(loaded.model), resize)
    probs = probabilities(loaded.model, images)
    k = min(top_k, probs.shape[1])
    rows = []
    for path, row in zip(files, probs):
        order = np.argsort(-row, kind="stable")[:k]
        top = [{"class": loaded.class_names[i], "index": int(i), "probability": float(row[i])} for i in order]
        rows.append({"path": str(path), "top": top})
    return rows

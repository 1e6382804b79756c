"""Reading a catalog's images: decoded once for the 32-px datasets, kept encoded (but checked) for the 256-px ones.

Datasets of 32 px (CIFAR, SVHN, GTSRB) are decoded to uint8 (N, S, S, 3), S the
spec's ``image_size`` (other sizes are resized whole, bilinear). The 256-px
datasets (Imagenette, Imagewoof) keep the still-encoded files (the full
Imagenette would be ~1.9 GB decoded) for the input pipelines to decode
(`keras_gdfr.data.augment.prepare_image`); each is still decoded once here, at
reduced scale where JPEG allows, so corrupt files are found at load time, by
path, and files TensorFlow cannot decode (CMYK JPEG, BMP, GIF, TIFF, ...) are
re-encoded as PNG.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.specs import LARGE_IMAGE_SIZE


def decode_small(payload: bytes, size: int, box=None) -> np.ndarray:
    """uint8 (size, size, 3) RGB from an encoded image (cropped to ``box`` first)."""
    with Image.open(io.BytesIO(payload)) as image:
        image = image.convert("RGB")  # a full decode: truncated data raises here
    if box is not None:
        image = image.crop(box)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def checked_encoding(payload: bytes, size: int) -> bytes:
    """``payload`` if TensorFlow can decode it, else a PNG re-encoding; raises if corrupt."""
    with Image.open(io.BytesIO(payload)) as image:
        kind, mode = image.format, image.mode
        if kind == "JPEG":
            image.draft("RGB", (size, size))  # decode at reduced scale: fast
        image.load()
        if (kind == "JPEG" and mode in ("RGB", "L")) or kind == "PNG":
            return payload
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue()


def read_images(catalog: Catalog, size: int, on_corrupt: str, crop_roi: bool):
    """(decoded uint8 (N,S,S,3) or encoded list, kept indexes, skipped paths)."""
    large = size >= LARGE_IMAGE_SIZE
    payloads = catalog.tree.read_many(catalog.members)
    items, kept, skipped = [], [], []
    for i, (name, payload) in enumerate(zip(catalog.members, payloads)):
        try:
            if isinstance(payload, Exception):
                raise payload
            if large:
                items.append(checked_encoding(payload, size))
            else:
                box = catalog.boxes.get(name) if (crop_roi and catalog.boxes) else None
                items.append(decode_small(payload, size, box))
            kept.append(i)
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
            path = catalog.tree.display(name)
            if on_corrupt == "fail":
                raise DataError(f"unreadable image {path}: {err}") from err
            skipped.append(path)
    if large:
        return items, kept, skipped
    images = np.stack(items) if items else np.zeros((0, size, size, 3), np.uint8)
    return images, kept, skipped

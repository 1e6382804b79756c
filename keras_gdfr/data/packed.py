"""A whole ImageFolder dataset in ONE file, numpy's compressed ``.npz``, readable without TensorFlow.

Why: the GPU machines get the project as a copied working tree (64 MiB at most)
and have no TensorFlow. CIFAR-10's 60,000 JPEGs (55 MB as files, 62 MiB as the
stored zip) pack into one ``.npz`` of about 19 MiB: the files' bytes are stored
back to back in one array, which the ``.npz``'s deflate compresses as one stream
(the JPEG headers repeat, deflate removes them). NumPy reads it back (`numpy.load`,
no pickle); PIL decodes the images, as `keras_gdfr.data.decode` does for every
32-px source. The ``.npz`` is a zip: every member carries its CRC-32, which
`zipfile` checks on reading.

Format (``gdfr-packed-v2``), the arrays of the ``.npz``:

- ``format`` (str, ``gdfr-packed-v2``), ``dataset`` (str, may be empty);
- ``class_names`` (str, label order), ``splits`` (str), ``counts`` (int64, images
  per split): the images are stored split by split, in ImageFolder order;
- per image: ``labels`` (int64, index into ``class_names``), ``paths`` (str, the
  file's path under its split folder, ``<class>/<file>``), and its bytes, unchanged
  (no re-encoding): ``images[offsets[i]:offsets[i + 1]]`` (``images`` uint8,
  ``offsets`` int64, one more than the images).

Reading it as a source (`packed_catalog`, source ``"packed"`` of
`keras_gdfr.data.sources.load_dataset`, sniffed from a ``data_dir`` ending in
``.npz``) lays the images out as the ImageFolder they came from
(``<split>/<class>/<file>``) in memory, so loading it gives exactly the images,
labels, class names and order of loading the original archive (tests/test_packed.py).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

from keras_gdfr.data.archives import MemoryTree, open_tree
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.imagefolder import find_split_prefix, imagefolder_catalog
from keras_gdfr.data.specs import DatasetSpec

FORMAT = "gdfr-packed-v2"
SUFFIX = ".npz"


class PackedError(Exception):
    """A packed file that is missing, truncated, corrupt or of another format."""


@dataclasses.dataclass
class PackedRecord:
    split: str
    path: str  # under the split folder: <class>/<file>
    label: int
    image: bytes


@dataclasses.dataclass
class PackedData:
    """A packed file's content: its facts and the records in file order."""

    dataset: str
    class_names: list[str]
    splits: list[str]
    counts: list[int]
    records: list[PackedRecord]
    location: str

    def files(self) -> dict[str, bytes]:
        """The records as an ImageFolder in memory: ``<split>/<path>`` -> bytes."""
        return {f"{r.split}/{r.path}": r.image for r in self.records}


def write_packed(path, records: Sequence[PackedRecord], *, class_names: Sequence[str],
                 dataset: str = "") -> pathlib.Path:
    """Write `records` (grouped by split, in the given order) as one packed ``.npz``, atomically."""
    path = pathlib.Path(path)
    order = [r.split for r in records]
    splits = list(dict.fromkeys(order))
    if order != sorted(order, key=splits.index):
        raise PackedError(f"records must be grouped by split, not interleaved ({', '.join(splits)})")
    for record in records:
        if not 0 <= record.label < len(class_names):
            raise PackedError(f"label {record.label} of {record.split}/{record.path} outside the {len(class_names)} classes")
    sizes = np.array([len(r.image) for r in records], dtype=np.int64)
    arrays = dict(
        format=np.array(FORMAT), dataset=np.array(dataset),
        class_names=np.array(list(class_names), dtype=str), splits=np.array(splits, dtype=str),
        counts=np.array([order.count(s) for s in splits], dtype=np.int64),
        labels=np.array([r.label for r in records], dtype=np.int64),
        paths=np.array([r.path for r in records], dtype=str),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        images=np.frombuffer(b"".join(r.image for r in records), dtype=np.uint8),
    )
    from keras_gdfr.atomic import atomic_write

    def write(tmp: pathlib.Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: numpy would add ".npz" to a name
            np.savez_compressed(handle, **arrays)

    return atomic_write(path, write)


def read_packed(path) -> PackedData:
    """Read a packed file (every array, every member's CRC checked) without TensorFlow."""
    path = pathlib.Path(path)
    location = str(path)
    if not path.is_file():
        raise PackedError(f"packed file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error) as err:
        raise PackedError(f"{location}: not a readable .npz file ({err})") from err
    if str(arrays.get("format", "")) != FORMAT:
        raise PackedError(f"{location}: not a {FORMAT} file (format {str(arrays.get('format', 'missing'))!r})")
    missing = [k for k in ("dataset", "class_names", "splits", "counts", "labels", "paths", "offsets", "images")
               if k not in arrays]
    if missing:
        raise PackedError(f"{location}: no {', '.join(missing)} array (a damaged {FORMAT} file)")
    counts = [int(c) for c in arrays["counts"]]
    labels, paths, offsets, images = (arrays[k] for k in ("labels", "paths", "offsets", "images"))
    if not len(labels) == len(paths) == len(offsets) - 1 == sum(counts) or int(offsets[-1]) != len(images):
        raise PackedError(f"{location}: counts {counts}, {len(labels)} labels, {len(paths)} paths, "
                          f"{len(offsets) - 1} offsets and {len(images)} image bytes do not agree")
    splits = [str(s) for s in arrays["splits"]]
    split_of = [s for s, n in zip(splits, counts) for _ in range(n)]
    blob, ends = images.tobytes(), offsets.tolist()
    records = [PackedRecord(split, str(p), int(label), blob[start:end])
               for split, p, label, start, end in zip(split_of, paths, labels.tolist(), ends, ends[1:])]
    return PackedData(str(arrays["dataset"]), [str(c) for c in arrays["class_names"]], splits, counts,
                      records, location)


def pack_imagefolder(source, out, *, dataset: str = "", splits: Sequence[str] = ("train", "test")) -> PackedData:
    """Pack the ImageFolder `source` (folder, .zip or tar with ``<split>/<class>/<file>``) into `out`.

    Uses the imagefolder source's own listing (`keras_gdfr.data.imagefolder`), so the
    split prefixes, class order and file order are the ones `load_dataset` reads.
    Files are stored as they are (no decoding, no re-encoding). The class names
    must be the same in every split.
    """
    tree = open_tree(pathlib.Path(source))
    records: list[PackedRecord] = []
    class_names: list[str] | None = None
    for split in splits:
        catalog = imagefolder_catalog(tree, split, official=False, kind="imagefolder")
        if class_names is None:
            class_names = list(catalog.class_names)
        elif list(catalog.class_names) != class_names:
            raise PackedError(f"{source}: split {split!r} has classes {catalog.class_names}, not {class_names}")
        prefix = find_split_prefix(tree.names(), split, tree.location)  # "[top/]<split>/"
        payloads = tree.read_many(catalog.members)
        for name, label, payload in zip(catalog.members, catalog.labels, payloads):
            if isinstance(payload, Exception):
                raise PackedError(f"cannot read {tree.display(name)}: {payload}")
            records.append(PackedRecord(split=split, path=name[len(prefix):], label=int(label), image=payload))
    write_packed(out, records, class_names=class_names or [], dataset=dataset)
    return read_packed(out)


# --------------------------------------------------------------------------------------
# The "packed" source of `load_dataset`.


@functools.lru_cache(maxsize=2)
def _cached_packed(path: str, mtime_ns: int, size: int) -> tuple[PackedData, MemoryTree]:
    """One read per file version (train and test come from the same file)."""
    try:
        data = read_packed(path)
    except PackedError as err:
        raise DataError(str(err)) from err
    return data, MemoryTree(data.files(), path)


def packed_catalog(spec: DatasetSpec, split: str, data_dir) -> Catalog:
    """The split of a packed file, listed as the ImageFolder it was packed from."""
    if data_dir is None:
        raise DataError(f"source 'packed' needs data_dir: a {SUFFIX} file made by `gdfr pack`")
    path = pathlib.Path(data_dir)
    if not path.is_file():
        raise DataError(f"packed file {path} does not exist")
    stat = path.stat()
    data, tree = _cached_packed(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if data.dataset and data.dataset != spec.name:
        raise DataError(f"{path}: packed from {data.dataset!r}, not {spec.name!r}")
    catalog = imagefolder_catalog(tree, split, official=False, kind="packed")
    if catalog.class_names != data.class_names:
        raise DataError(f"{path}: class folders {catalog.class_names} differ from its header's {data.class_names}")
    return catalog

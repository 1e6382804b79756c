"""A whole ImageFolder dataset in ONE gzip-compressed TFRecord file, readable without TensorFlow.

Why: the GPU machines get the project as a copied working tree (64 MiB at most)
and have no TensorFlow. CIFAR-10's 60,000 JPEGs (55 MB as files, 62 MiB as the
stored zip) pack into one ``.tfrecord.gz`` of about 17 MiB (the JPEG headers
repeat, gzip removes them), and this module reads it back with the standard
library and NumPy alone; PIL decodes the images (as `keras_gdfr.data.decode`
does for every 32-px source). The same file is an ordinary TFRecord file for
TensorFlow (``tf.data.TFRecordDataset(path, compression_type="GZIP")``).

Format (``gdfr-packed-v1``): a GZIP stream of TFRecord records (uint64 length,
uint32 masked CRC-32C of the length, the data, uint32 masked CRC-32C of the data;
all little-endian), each record a serialized ``tf.train.Example``:

- record 0, the header: ``format`` (bytes ``gdfr-packed-v1``), ``dataset`` (bytes,
  may be empty), ``class_names`` (bytes list, label order), ``splits`` (bytes
  list), ``counts`` (int64 list, images per split);
- then one record per image, split by split, in ImageFolder order: ``image``
  (the file's bytes, unchanged: no re-encoding), ``label`` (int64, index into
  ``class_names``), ``split`` (bytes, e.g. ``train``), ``path`` (bytes, the file's
  path under its split folder, ``<class>/<file>``).

Reading it as a source (`packed_catalog`, source ``"packed"`` of
`keras_gdfr.data.sources.load_dataset`, sniffed from a ``data_dir`` ending in
``.tfrecord.gz``) lays the records out as the
ImageFolder they came from (``<split>/<class>/<file>``) in memory, so loading it
gives exactly the images, labels, class names and order of loading the original
archive (tests/test_packed.py checks that).

CRCs: the writer computes every record's CRC-32C (vectorised over records with
NumPy), so TensorFlow reads the file with its checks on. The reader checks each
length CRC (framing errors) and, with ``verify=True``, each data CRC; the gzip
stream's own CRC-32 over all bytes is always checked by `gzip`.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import pathlib
import struct
from collections.abc import Iterable, Sequence

import numpy as np

from keras_gdfr.data.archives import MemoryTree, open_tree
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.imagefolder import find_split_prefix, imagefolder_catalog
from keras_gdfr.data.specs import DatasetSpec

FORMAT = "gdfr-packed-v1"
SUFFIX = ".tfrecord.gz"
_MASK_DELTA = 0xA282EAD8


class PackedError(Exception):
    """A packed file that is missing, truncated, corrupt or of another format."""


# --------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), as TFRecord frames use it.


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table[i] = crc
    return table


_TABLE = _crc_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def crc32c(data: bytes) -> int:
    """CRC-32C of `data` (pure Python; for short strings)."""
    crc = 0xFFFFFFFF
    table = _TABLE_LIST
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_many(items: Sequence[bytes], *, group_bytes: int = 64 << 20) -> np.ndarray:
    """uint32 CRC-32C of every item, vectorised across items (one NumPy step per byte position).

    Items are taken longest first in groups of at most `group_bytes` of padded
    matrix, so memory stays bounded for large files.
    """
    n = len(items)
    out = np.empty(n, dtype=np.uint32)
    if n == 0:
        return out
    lengths = np.fromiter((len(b) for b in items), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < n:
        longest = max(int(lengths[order[start]]), 1)
        stop = min(n, start + max(1, group_bytes // longest))
        group = order[start:stop]
        out[group] = _crc32c_group([items[i] for i in group], lengths[group])
        start = stop
    return out


def _crc32c_group(items: Sequence[bytes], lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of `items`, given longest first."""
    longest = int(lengths[0]) if len(lengths) else 0
    matrix = np.zeros((len(items), longest), dtype=np.uint8)
    for row, item in enumerate(items):
        matrix[row, : len(item)] = np.frombuffer(item, dtype=np.uint8)
    # Items with a byte at position j are a prefix of the longest-first order.
    active = len(lengths) - np.searchsorted(lengths[::-1], np.arange(longest), side="right")
    crc = np.full(len(items), 0xFFFFFFFF, dtype=np.uint32)
    for j in range(longest):
        k = int(active[j])
        head = crc[:k]
        crc[:k] = _TABLE[(head ^ matrix[:k, j]) & 0xFF] ^ (head >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def masked_crc(crc: int) -> int:
    """TFRecord's masking of a CRC-32C."""
    crc = int(crc) & 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------
# tf.train.Example, by hand (proto3 wire format: the four message types it uses).


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf encodes negatives
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def encode_example(features: dict[str, bytes | str | int | Sequence]) -> bytes:
    """Serialize a ``tf.train.Example`` of bytes (bytes/str or lists of them) and int64 (int or lists) features."""
    entries = []
    for key in sorted(features):
        value = features[key]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if all(isinstance(v, (bytes, str)) for v in values):
            body = b"".join(_field(1, v.encode() if isinstance(v, str) else v) for v in values)
            feature = _field(1, body)  # Feature.bytes_list = 1
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            packed = b"".join(_varint(int(v)) for v in values)
            feature = _field(3, _field(1, packed) if values else b"")  # Feature.int64_list = 3
        else:
            raise TypeError(f"feature {key!r}: bytes/str or int values only, got {values[:3]!r}")
        entries.append(_field(1, _field(1, key.encode()) + _field(2, feature)))  # map entry
    return _field(1, b"".join(entries))  # Example.features = 1


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise PackedError("truncated varint in a record")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a message: int for varints, bytes otherwise."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            value = buf[pos:pos + size]
            pos += size
        elif wire == 1:
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == 5:
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise PackedError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise PackedError("truncated field in a record")
        yield number, wire, value


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_example(buf: bytes) -> dict[str, list]:
    """A ``tf.train.Example``'s features: name -> list of bytes or list of ints (float lists as floats)."""
    out: dict[str, list] = {}
    for number, _, features in _fields(buf):
        if number != 1:
            continue
        for number2, _, entry in _fields(features):
            if number2 != 1:
                continue
            key, feature = b"", b""
            for number3, _, value in _fields(entry):
                if number3 == 1:
                    key = value
                elif number3 == 2:
                    feature = value
            values: list = []
            for kind, _, body in _fields(feature):
                for number4, wire, value in _fields(body):
                    if number4 != 1:
                        continue
                    if kind == 1:
                        values.append(bytes(value))
                    elif kind == 3 and wire == 2:  # packed int64s
                        pos = 0
                        while pos < len(value):
                            item, pos = _read_varint(value, pos)
                            values.append(_int64(item))
                    elif kind == 3:
                        values.append(_int64(value))
                    elif kind == 2 and wire == 2:
                        values.extend(np.frombuffer(value, dtype="<f4").tolist())
                    elif kind == 2:
                        values.append(struct.unpack("<f", value)[0])
            out[key.decode()] = values
    return out


# --------------------------------------------------------------------------------------
# TFRecord framing.


def frame_records(records: Sequence[bytes]) -> Iterable[bytes]:
    """TFRecord frames of `records` (CRCs vectorised over all of them)."""
    crcs = crc32c_many(records)
    for record, crc in zip(records, crcs):
        length = struct.pack("<Q", len(record))
        yield length + struct.pack("<I", masked_crc(crc32c(length))) + record + struct.pack("<I", masked_crc(crc))


def read_records(stream, *, verify: bool = False, location: str = "stream") -> Iterable[bytes]:
    """The records of a TFRecord byte stream (already decompressed)."""
    index = 0
    while True:
        head = stream.read(12)
        if not head:
            return
        if len(head) < 12:
            raise PackedError(f"{location}: truncated record header at record {index}")
        length, length_crc = struct.unpack("<QI", head)
        if masked_crc(crc32c(head[:8])) != length_crc:
            raise PackedError(f"{location}: bad length CRC at record {index} (not a TFRecord file, or corrupt)")
        data = stream.read(length)
        tail = stream.read(4)
        if len(data) < length or len(tail) < 4:
            raise PackedError(f"{location}: truncated record {index}")
        if verify and masked_crc(crc32c(data)) != struct.unpack("<I", tail)[0]:
            raise PackedError(f"{location}: bad data CRC at record {index}")
        yield data
        index += 1


# --------------------------------------------------------------------------------------
# Packed datasets.


@dataclasses.dataclass
class PackedRecord:
    split: str
    path: str  # under the split folder: <class>/<file>
    label: int
    image: bytes


@dataclasses.dataclass
class PackedData:
    """A packed file's content: header facts and the records in file order."""

    dataset: str
    class_names: list[str]
    splits: list[str]
    counts: list[int]
    records: list[PackedRecord]
    location: str

    def files(self) -> dict[str, bytes]:
        """The records as an ImageFolder in memory: ``<split>/<path>`` -> bytes."""
        return {f"{r.split}/{r.path}": r.image for r in self.records}


def write_packed(path, records: Sequence[PackedRecord], *, class_names: Sequence[str], dataset: str = "",
                 compresslevel: int = 6) -> pathlib.Path:
    """Write `records` (in the given order) as one gzip'd TFRecord file, atomically."""
    path = pathlib.Path(path)
    splits: list[str] = []
    counts: dict[str, int] = {}
    for record in records:
        if record.split not in counts:
            splits.append(record.split)
            counts[record.split] = 0
        counts[record.split] += 1
        if not 0 <= record.label < len(class_names):
            raise PackedError(f"label {record.label} of {record.split}/{record.path} outside the {len(class_names)} classes")
    header = encode_example(dict(
        format=FORMAT, dataset=dataset, class_names=list(class_names), splits=splits,
        counts=[counts[s] for s in splits],
    ))
    payloads = [header] + [
        encode_example(dict(image=r.image, label=int(r.label), split=r.split, path=r.path)) for r in records
    ]
    from keras_gdfr.atomic import atomic_write

    def write(tmp: pathlib.Path) -> None:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as out:
            for frame in frame_records(payloads):
                out.write(frame)

    return atomic_write(path, write)


def read_packed(path, *, verify: bool = False) -> PackedData:
    """Read a packed file (header first, then every record) without TensorFlow."""
    path = pathlib.Path(path)
    location = str(path)
    if not path.is_file():
        raise PackedError(f"packed file {path} does not exist")
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; EOFError: truncated stream
        raise PackedError(f"{location}: not a readable gzip file ({err})") from err
    records = read_records(io.BytesIO(data), verify=verify, location=location)
    try:
        header = decode_example(next(records))
    except StopIteration:
        raise PackedError(f"{location}: empty (no header record)") from None
    if header.get("format") != [FORMAT.encode()]:
        raise PackedError(f"{location}: not a {FORMAT} file (format {header.get('format')!r})")
    class_names = [c.decode() for c in header.get("class_names", [])]
    splits = [s.decode() for s in header.get("splits", [])]
    counts = [int(c) for c in header.get("counts", [])]
    items = []
    for raw in records:
        example = decode_example(raw)
        try:
            items.append(PackedRecord(
                split=example["split"][0].decode(), path=example["path"][0].decode(),
                label=int(example["label"][0]), image=example["image"][0],
            ))
        except (KeyError, IndexError) as err:
            raise PackedError(f"{location}: record {len(items) + 1} lacks {err}") from None
    found = {s: 0 for s in splits}
    for item in items:
        found[item.split] = found.get(item.split, 0) + 1
    if [found.get(s, 0) for s in splits] != counts or len(found) != len(splits):
        raise PackedError(f"{location}: header counts {dict(zip(splits, counts))} but records {found} (truncated?)")
    dataset = header.get("dataset", [b""])[0].decode() if header.get("dataset") else ""
    return PackedData(dataset, class_names, splits, counts, items, location)


def pack_imagefolder(source, out, *, dataset: str = "", splits: Sequence[str] = ("train", "test"),
                     compresslevel: int = 6) -> PackedData:
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
    write_packed(out, records, class_names=class_names or [], dataset=dataset, compresslevel=compresslevel)
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

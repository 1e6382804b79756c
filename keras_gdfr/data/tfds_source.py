"""The tfds catalog source: ``tfds.load(spec.tfds_name, split=..., data_dir=..., download=...)``.

Online, with ``download=True``, tfds fetches and prepares the dataset; offline, a
prepared ``data_dir`` is read. A dataset that is not prepared and whose download host
(or https proxy) does not answer within `NETWORK_TIMEOUT_S` fails at once with one
line, instead of tfds's minutes of retries. Images are taken still encoded (``SkipDecoding``) and
held in memory, so that a ``limit`` decodes only the chosen ones.
"""

from __future__ import annotations

import pathlib
import socket
import threading
import urllib.parse
import urllib.request

import numpy as np

from keras_gdfr.data.archives import MemoryTree
from keras_gdfr.data.catalog import Catalog
from keras_gdfr.data.errors import DataError
from keras_gdfr.data.specs import DatasetSpec

TFDS_INSTALL = "pip install tensorflow-datasets tensorflow-cpu"
NETWORK_TIMEOUT_S = 4.0
"""How long the download host (or proxy) may take to accept a connection before we give up."""


def is_tfds_data_dir(path: pathlib.Path, spec: DatasetSpec) -> bool:
    return spec.tfds_name is not None and (path / spec.tfds_name).is_dir()


def _import_tfds(spec: DatasetSpec):
    """tensorflow_datasets (TensorFlow quiet and off the GPUs first), or one DataError saying how to get it."""
    from keras_gdfr.data.tf_runtime import TensorFlowMissing, import_tensorflow

    need = (f"{spec.name} from the tfds catalog ({spec.tfds_name}) needs tensorflow-datasets and TensorFlow "
            f"({TFDS_INSTALL}); or pass an ImageFolder / archive / packed file with --data")
    try:
        import_tensorflow("tfds")
        import tensorflow_datasets as tfds
    except (TensorFlowMissing, ImportError) as err:
        raise DataError(need) from err
    return tfds


def unreachable(url: str, timeout: float = NETWORK_TIMEOUT_S) -> str | None:
    """Why `url`'s host (or the proxy for it) does not accept a connection in `timeout` s; None when it does."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.hostname}"
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        target = f"the proxy {parts.hostname}:{parts.port or 80}"
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    outcome: list[str] = []

    def connect() -> None:  # getaddrinfo has no timeout of its own: a thread bounds it
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append("")
        except OSError as error:
            outcome.append(f"{target} does not answer ({error.strerror or error})")

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return (outcome[0] or None) if outcome else f"{target} does not answer within {timeout:g} s"


def _check_download_possible(tfds, spec: DatasetSpec, data_dir, where: str) -> None:
    """A dataset to download needs its host: fail in seconds, not after minutes of retries."""
    try:
        builder = tfds.builder(spec.tfds_name, data_dir=None if data_dir is None else str(data_dir))
        if builder.is_prepared():
            return
        urls = sorted(builder.url_infos or {})
    except Exception:  # noqa: BLE001 - tfds.load below says what is wrong with the name or folder
        return
    problem = unreachable(urls[0]) if urls else None
    if problem:
        raise DataError(
            f"tfds dataset {spec.tfds_name!r} is not prepared in {where} and needs a download, but {problem}: "
            f"connect to the internet, or pass --data with an ImageFolder / archive / prepared tfds data_dir"
        )


def tfds_catalog(spec: DatasetSpec, role: str, data_dir, download: bool) -> Catalog:
    if spec.tfds_name is None:
        raise DataError(f"{spec.name} is not in tfds: use source 'imagefolder' or {spec.source!r}")
    tfds = _import_tfds(spec)
    split = spec.splits[0 if role == "train" else 1]
    where = str(data_dir) if data_dir is not None else "the tfds default data_dir"
    if download:
        _check_download_possible(tfds, spec, data_dir, where)
    try:
        ds, info = tfds.load(
            spec.tfds_name, split=split, data_dir=None if data_dir is None else str(data_dir),
            download=download, with_info=True, as_supervised=True, shuffle_files=False,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
    except ModuleNotFoundError as err:
        raise DataError(
            f"tfds could not prepare {spec.tfds_name} in {where}: missing module {err.name!r} "
            f"(tensorflow-datasets needs it to download and prepare: pip install {err.name})"
        ) from err
    except Exception as err:
        hint = "" if download else " and download is off"
        raise DataError(
            f"tfds dataset {spec.tfds_name!r} (split {split!r}) is not prepared in {where}{hint}: "
            f"prepare it online (tfds.load with download=True, or `tfds build "
            f"{spec.tfds_name} --data_dir ...`), or give an ImageFolder / archive as data_dir. "
            f"tfds said: {err}"
        ) from err
    files, labels = {}, []
    for encoded, label in tfds.as_numpy(ds.batch(1024)):
        for payload in encoded:
            files[f"{split}[{len(files)}]"] = bytes(payload)
        labels.append(label)
    feature = info.features["label"]
    class_names = list(feature.names) if feature.names else [str(i) for i in range(feature.num_classes)]
    tree = MemoryTree(files, f"tfds {spec.tfds_name} in {where}")
    if len(class_names) != spec.num_classes:
        raise DataError(
            f"{tree.location}: expected {spec.num_classes} classes for {spec.name}, found {len(class_names)}"
        )
    return Catalog(
        tree=tree,
        members=list(files),
        labels=np.concatenate(labels).astype(np.int32) if labels else np.zeros(0, np.int32),
        class_names=class_names,
        origin=tree.location + f" ({split})",
        official=True,
    )

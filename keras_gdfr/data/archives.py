"""Read-only file trees: a directory, a zip, a tar, several of them as one, or files in memory.

Every source lists and reads its files through a `Tree`: relative POSIX names,
`read_many` returning each file's bytes or the error that reading it raised (so
one corrupt member is reported by path, not fatal). Archive members are read in
memory, never extracted. Hidden names (``.*``) and ``__MACOSX`` are not listed.
"""

from __future__ import annotations

import functools
import os
import pathlib
import tarfile
import zipfile
from typing import Sequence

from keras_gdfr.data.errors import DataError

TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz")


class Tree:
    """Files addressed by relative POSIX names; `read_many` returns bytes or the error."""

    location: str

    def names(self) -> list[str]:
        raise NotImplementedError

    def read_many(self, names: Sequence[str]) -> list[bytes | Exception]:
        raise NotImplementedError

    def display(self, name: str) -> str:
        """The name a person can find the file by, e.g. ``/data/x.zip:train/cat/1.jpg``."""
        return f"{self.location}:{name}"


def is_visible(name: str) -> bool:
    parts = name.split("/")
    return not any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


class DirTree(Tree):
    def __init__(self, root: pathlib.Path):
        self.root = pathlib.Path(root)
        self.location = str(self.root)

    def names(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if is_visible(d)]
            rel = pathlib.Path(folder).relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            found.extend(prefix + f for f in files if is_visible(f))
        return sorted(found)

    def read_many(self, names):
        out = []
        for name in names:
            try:
                out.append((self.root / name).read_bytes())
            except OSError as err:
                out.append(err)
        return out

    def display(self, name):
        return str(self.root / name)


class ZipTree(Tree):
    def __init__(self, path: pathlib.Path):
        self.location = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as err:
            raise DataError(f"cannot open zip archive {path}: {err}") from err

    def names(self):
        return sorted(n for n in self.zip.namelist() if not n.endswith("/") and is_visible(n))

    def read_many(self, names):
        out = []
        for name in names:
            try:
                out.append(self.zip.read(name))
            except Exception as err:  # BadZipFile (CRC), zlib.error, KeyError ...
                out.append(err)
        return out


class TarTree(Tree):
    """A tar (optionally gzip'd): listing it reads it once; `read_many` reads in file order."""

    def __init__(self, path: pathlib.Path):
        self.location = str(path)
        try:
            self.tar = tarfile.open(path, "r:*")
            members = self.tar.getmembers()
        except (OSError, tarfile.TarError, EOFError) as err:
            raise DataError(f"cannot read tar archive {path}: {err}") from err
        self.members = {m.name[2:] if m.name.startswith("./") else m.name: m
                        for m in members if m.isfile()}

    def names(self):
        return sorted(n for n in self.members if is_visible(n))

    def read_many(self, names):
        by_offset = sorted(set(names), key=lambda n: self.members[n].offset_data)
        payload: dict[str, bytes | Exception] = {}
        for name in by_offset:  # forward-only reads: one pass over a .tgz
            try:
                payload[name] = self.tar.extractfile(self.members[name]).read()
            except Exception as err:
                payload[name] = err
        return [payload[n] for n in names]


class UnionTree(Tree):
    """Several trees seen as one (an extracted folder beside the official zips)."""

    def __init__(self, trees: Sequence[Tree], location: str):
        self.location = location
        self.owner: dict[str, Tree] = {}
        for tree in trees:
            for name in tree.names():
                self.owner.setdefault(name, tree)

    def names(self):
        return sorted(self.owner)

    def read_many(self, names):
        return [self.owner[n].read_many([n])[0] for n in names]

    def display(self, name):
        return self.owner[name].display(name)


class MemoryTree(Tree):
    def __init__(self, files: dict[str, bytes], location: str):
        self.files = files
        self.location = location

    def names(self):
        return list(self.files)

    def read_many(self, names):
        return [self.files[n] for n in names]


def is_tar(path: pathlib.Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


def is_archive(path: pathlib.Path) -> bool:
    """A .zip or tar file name (whether or not it exists)."""
    return is_tar(path) or path.suffix.lower() == ".zip"


@functools.lru_cache(maxsize=4)
def _cached_zip(path: str, mtime_ns: int, size: int) -> ZipTree:
    """One open zip per file version: its listing (0.4 s for CIFAR-10's 60,000) is read once."""
    return ZipTree(pathlib.Path(path))


def open_tree(path: pathlib.Path) -> Tree:
    """A directory, .zip or tar as a `Tree`; DataError when it is none of them."""
    path = pathlib.Path(path)
    if path.is_dir():
        return DirTree(path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.suffix.lower() == ".zip":
        stat = path.stat()
        return _cached_zip(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if is_tar(path):
        return TarTree(path)
    raise DataError(f"{path} is not a directory, .zip or tar archive")

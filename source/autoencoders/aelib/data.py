"""Dataset helpers for the autoencoders course.

Everything you need to get the course's datasets into PyTorch tensors, plus the
small transformations used in the exercises:

* ``load_mnist`` returns ``(images, labels)``: float32 images of shape
  ``(N, 1, 28, 28)`` with values in ``[0, 1]`` and int64 labels of shape ``(N,)``.
* ``load_fashion_mnist`` returns Fashion-MNIST (Zalando's 28x28 clothing
  images, 10 classes) in exactly the same form, read by the same code.
* ``load_cifar10`` returns CIFAR-10 for the optional colour section: float32
  images ``(N, 3, 32, 32)`` (channels R, G, B) in ``[0, 1]`` and int64 labels ``(N,)``.
* ``fashion_mnist_available`` and ``cifar10_available`` tell, without
  downloading anything, whether a split can be loaded.
* ``variance_mnist`` and ``downsample`` build the inputs of the varianceMNIST
  and super-resolution exercises (the noise of the denoising exercises is
  yours to write).
* ``minibatches`` cuts aligned tensors into (shuffled) minibatches.

Where the data lives
--------------------
Everything is looked up under one data folder ``<data_dir>`` chosen by
:func:`resolve_data_dir`, in the layouts torchvision uses:

* MNIST: the four official ``.gz`` files in ``<data_dir>/MNIST/raw/``;
* Fashion-MNIST: its four official ``.gz`` files (they have the same names as
  MNIST's) in ``<data_dir>/FashionMNIST/raw/``;
* CIFAR-10: the binary version, ``<data_dir>/cifar-10-batches-bin/*.bin``, or
  the archive ``<data_dir>/cifar-10-binary.tar.gz``, whose ``.bin`` batches are
  then extracted next to it.

Missing files are downloaded once from the official mirrors, their MD5
checked, and then reused.  ``download=False`` never touches the network.

Offline split (MNIST only, for automated testing only)
------------------------------------------------------
When the environment variable ``AUTOENCODERS_OFFLINE_SPLIT=1`` is set, only the
official 10k MNIST *test* files are used: "train" is their first 8000 images and
"test" their last 2000.  This exists so continuous integration can run without
the 60k training files; do not use it for your real course work.  For
Fashion-MNIST and CIFAR-10 it only turns downloads off: their files are used
when present, and never fetched.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, NamedTuple, Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATA_DIR_ENV",
    "OFFLINE_SPLIT_ENV",
    "COURSE_DATA_MOUNT",
    "MIRRORS",
    "FILES",
    "OFFLINE_TRAIN_SIZE",
    "FASHION_MNIST_MIRRORS",
    "FASHION_MNIST_FILES",
    "CIFAR10_MIRRORS",
    "CIFAR10_URL",
    "CIFAR10_ARCHIVE",
    "CIFAR10_MD5",
    "CIFAR10_FOLDER",
    "CIFAR10_TRAIN_FILES",
    "CIFAR10_TEST_FILES",
    "DatasetNotFoundError",
    "MNISTNotFoundError",
    "IdxDataset",
    "MNIST_DATASET",
    "FASHION_MNIST_DATASET",
    "resolve_data_dir",
    "offline_split",
    "md5sum",
    "download",
    "ensure_files",
    "read_idx_images",
    "read_idx_labels",
    "load_mnist",
    "load_fashion_mnist",
    "fashion_mnist_available",
    "read_cifar10_batch",
    "load_cifar10",
    "cifar10_available",
    "variance_mnist",
    "downsample",
    "minibatches",
]

PathLike = Union[str, "os.PathLike[str]"]

DATA_DIR_ENV = "AUTOENCODERS_DATA_DIR"
OFFLINE_SPLIT_ENV = "AUTOENCODERS_OFFLINE_SPLIT"
COURSE_DATA_MOUNT = Path("/coursedata")

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

FILES: dict[str, str] = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}

OFFLINE_TRAIN_SIZE = 8000

# Fashion-MNIST uses the same four file names as MNIST, with other contents.
FASHION_MNIST_MIRRORS: tuple[str, ...] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

FASHION_MNIST_FILES: dict[str, str] = {
    TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}

CIFAR10_MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_URL = CIFAR10_MIRRORS[0] + CIFAR10_ARCHIVE
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILES: tuple[str, ...] = ("test_batch.bin",)

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_TRUE_WORDS = ("1", "true", "yes")
_SPLITS = ("train", "test")
_CIFAR10_IMAGE = (3, 32, 32)
_CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then the R, G and B planes
_CIFAR10_CLASSES = 10


class DatasetNotFoundError(FileNotFoundError):
    """Raised when the files of a dataset are missing and could not be downloaded."""


class MNISTNotFoundError(DatasetNotFoundError):
    """Raised when MNIST files are missing and could not be downloaded."""


class IdxDataset(NamedTuple):
    """Where an IDX dataset (MNIST, Fashion-MNIST) lives, and how its files are checked and fetched."""

    title: str  # the name used in messages
    folder: str  # its files are kept in <data_dir>/<folder>/raw/
    md5s: Mapping[str, str]  # official .gz file name -> its MD5
    mirrors: tuple[str, ...]  # base URLs of the official mirrors, tried in order
    error: type[DatasetNotFoundError] = DatasetNotFoundError  # raised when files are missing
    has_offline_split: bool = False  # whether $AUTOENCODERS_OFFLINE_SPLIT applies to it


MNIST_DATASET = IdxDataset("MNIST", "MNIST", FILES, MIRRORS, MNISTNotFoundError, has_offline_split=True)
FASHION_MNIST_DATASET = IdxDataset("Fashion-MNIST", "FashionMNIST", FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS)


# --------------------------------------------------------------------------
# Locating and downloading the files
# --------------------------------------------------------------------------


def resolve_data_dir(data_dir: PathLike | None = None) -> Path:
    """Return the data folder: the argument, else $AUTOENCODERS_DATA_DIR, else /coursedata, else data/ beside the notebooks."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    if Path(COURSE_DATA_MOUNT).is_dir():
        return Path(COURSE_DATA_MOUNT)
    return Path(__file__).resolve().parent.parent / "data"


def _idx_dataset(dataset: IdxDataset | None) -> IdxDataset:
    """Return the dataset, MNIST when None."""
    return MNIST_DATASET if dataset is None else dataset


def _raw_dir(data_dir: PathLike | None, dataset: IdxDataset | None = None) -> Path:
    """Return the folder <data_dir>/<dataset folder>/raw where the .gz files are kept (MNIST/raw by default)."""
    return resolve_data_dir(data_dir) / _idx_dataset(dataset).folder / "raw"


def offline_split() -> bool:
    """Return True when $AUTOENCODERS_OFFLINE_SPLIT asks for the small offline split (1/true/yes)."""
    return os.environ.get(OFFLINE_SPLIT_ENV, "").strip().lower() in _TRUE_WORDS


def md5sum(path: PathLike) -> str:
    """Return the hexadecimal MD5 checksum of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _md5_for_stat(path: str, mtime_ns: int, size: int) -> str:
    """Return the MD5 of a file, remembered as long as its size and time stamp do not change."""
    return md5sum(path)


def _cached_md5(path: Path) -> str:
    """Return the MD5 of a file without re-reading it if it has not changed."""
    info = path.stat()
    return _md5_for_stat(str(path.resolve()), info.st_mtime_ns, info.st_size)


def _not_found_message(
    dataset: IdxDataset, names: Sequence[str], raw_dir: Path, reasons: Sequence[str] = ()
) -> str:
    """Build a friendly message explaining which files of a dataset to place where, and where they come from."""
    names = list(names)
    source = f" from {dataset.mirrors[0]}" if dataset.mirrors else ""
    lines = [
        f"Could not find the {dataset.title} file(s) "
        + ", ".join(names)
        + (" and could not download them." if reasons else "."),
        f"Please download them{source} (keep these exact .gz file names) and place them in:",
        f"    {raw_dir}",
        f"Or set the environment variable {DATA_DIR_ENV} to a folder that contains "
        f"{dataset.folder}/raw/ with these files.",
    ]
    if reasons:
        lines.append("Download attempts:")
        lines.extend(f"    {reason}" for reason in reasons)
    if dataset.has_offline_split and any(name.startswith("train-") for name in names):
        lines.append(
            f"For CI or offline testing only (not for real course runs): "
            f"{OFFLINE_SPLIT_ENV}=1 uses only the 10k test split "
            f"({TEST_IMAGES}, {TEST_LABELS})."
        )
    return "\n".join(lines)


def _corrupt_message(dataset: IdxDataset, path: Path, actual: str) -> str:
    """Explain that a file has the wrong MD5, naming the dataset it comes from when it is another known file."""
    message = (
        f"The {dataset.title} file {path} looks corrupt: its MD5 is {actual}, "
        f"expected {dataset.md5s[path.name]}. Please delete it and run again "
        "(it will be downloaded again), or replace it with the official file."
    )
    for other in (MNIST_DATASET, FASHION_MNIST_DATASET):
        if other.title != dataset.title and other.md5s.get(path.name) == actual:
            message += f" (It is the official {other.title} file: those belong in <data_dir>/{other.folder}/raw/.)"
    return message


def _check_known(name: str, dataset: IdxDataset | None = None) -> None:
    """Raise ValueError if name is not one of the four official files of the dataset (MNIST by default)."""
    dataset = _idx_dataset(dataset)
    if name not in dataset.md5s:
        raise ValueError(f"Unknown {dataset.title} file {name!r}; expected one of {sorted(dataset.md5s)}.")


def _try_mirrors(
    name: str, folder: Path, mirrors: Sequence[str], timeout: float, expected_md5: str
) -> tuple[Path | None, list[str]]:
    """Try each mirror in turn, keeping a file only if its MD5 is right; return (path or None, failure lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    reasons: list[str] = []
    for base in mirrors:
        url = base + name
        handle, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
            actual = md5sum(tmp_path)
            if actual != expected_md5:
                reasons.append(f"{url}: wrong MD5 {actual} (expected {expected_md5}), file rejected")
                continue
            os.replace(tmp_path, target)
            return target, reasons
        except (OSError, HTTPException, ValueError) as err:
            reasons.append(f"{url}: {err}")
        finally:
            tmp_path.unlink(missing_ok=True)
    if not reasons:
        reasons.append("no mirror was given")
    return None, reasons


def download(
    name: str,
    raw_dir: PathLike,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30,
    dataset: IdxDataset | None = None,
) -> Path:
    """Download one official file of a dataset (default MNIST) into raw_dir from its mirrors, checking its MD5."""
    dataset = _idx_dataset(dataset)
    _check_known(name, dataset)
    raw_dir = Path(raw_dir)
    mirrors = dataset.mirrors if mirrors is None else mirrors
    path, reasons = _try_mirrors(name, raw_dir, mirrors, timeout, dataset.md5s[name])
    if path is None:
        raise dataset.error(_not_found_message(dataset, [name], raw_dir, reasons))
    return path


def ensure_files(
    names: Sequence[str],
    data_dir: PathLike | None = None,
    download_missing: bool = True,
    mirrors: Sequence[str] | None = None,
    dataset: IdxDataset | None = None,
) -> Path:
    """Make sure the named files of a dataset (default MNIST) exist, downloading them if allowed; return their folder."""
    dataset = _idx_dataset(dataset)
    if isinstance(names, str):
        names = [names]
    for name in names:
        _check_known(name, dataset)
    raw_dir = _raw_dir(data_dir, dataset)
    missing = [name for name in names if not (raw_dir / name).is_file()]
    for name in names:
        if name in missing:
            continue
        actual = _cached_md5(raw_dir / name)
        if actual != dataset.md5s[name]:
            raise ValueError(_corrupt_message(dataset, raw_dir / name, actual))
    if missing and not download_missing:
        raise dataset.error(_not_found_message(dataset, missing, raw_dir))
    mirrors = dataset.mirrors if mirrors is None else mirrors
    for position, name in enumerate(missing):
        path, reasons = _try_mirrors(name, raw_dir, mirrors, 30, dataset.md5s[name])
        if path is None:
            raise dataset.error(_not_found_message(dataset, missing[position:], raw_dir, reasons))
    return raw_dir


def _files_present(names: Sequence[str], data_dir: PathLike | None, dataset: IdxDataset) -> bool:
    """Return True when every named file of the dataset is in its folder with the official MD5 (never downloads)."""
    raw_dir = _raw_dir(data_dir, dataset)
    try:
        return all(
            (raw_dir / name).is_file() and _cached_md5(raw_dir / name) == dataset.md5s[name] for name in names
        )
    except OSError:
        return False


# --------------------------------------------------------------------------
# Parsing IDX files
# --------------------------------------------------------------------------


def _read_bytes(path: PathLike) -> bytes:
    """Return the content of an IDX file, un-gzipping it when it is compressed."""
    with open(path, "rb") as handle:
        payload = handle.read()
    if payload[:2] == b"\x1f\x8b":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path} is not a valid gzip file ({err}); please delete it and download it again.") from err
    return payload


def _header(payload: bytes, path: PathLike, magic: int, n_dims: int) -> list[int]:
    """Check the magic number of an IDX payload and return its dimension sizes."""
    header_size = 4 * (1 + n_dims)
    if len(payload) < header_size:
        raise ValueError(f"{path} is too short ({len(payload)} bytes) to be an IDX file.")
    found = int.from_bytes(payload[0:4], "big")
    if found != magic:
        raise ValueError(
            f"{path} has magic number {found}, expected {magic}; "
            "it is not the right kind of IDX file (or it is damaged)."
        )
    dims = [int.from_bytes(payload[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(n_dims)]
    expected = header_size + int(np.prod(dims))
    if len(payload) != expected:
        raise ValueError(
            f"{path} has {len(payload)} bytes but its header {dims} announces {expected}; "
            "the file is truncated or damaged."
        )
    return dims


def read_idx_images(path: PathLike) -> Tensor:
    """Read an IDX image file (.gz or plain) into a uint8 tensor of shape (N, 28, 28)."""
    payload = _read_bytes(path)
    count, rows, cols = _header(payload, path, _IMAGES_MAGIC, 3)
    pixels = np.frombuffer(payload, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    return torch.from_numpy(pixels.copy())


def read_idx_labels(path: PathLike) -> Tensor:
    """Read an IDX label file (.gz or plain) into an int64 tensor of shape (N,)."""
    payload = _read_bytes(path)
    (count,) = _header(payload, path, _LABELS_MAGIC, 1)
    labels = np.frombuffer(payload, dtype=np.uint8, offset=8, count=count)
    return torch.from_numpy(labels.astype(np.int64))


@functools.lru_cache(maxsize=4)
def _parsed_pair(images_path: str, labels_path: str, stamp: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Parse an (images, labels) pair once; the cache is keyed on paths and file time stamps."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; one of the files is damaged."
        )
    return images, labels


def _stamp(path: Path) -> tuple[int, int]:
    """Return (modification time, size) of a file, the key that tells the caches it changed."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def _load_pair(raw_dir: Path, images_name: str, labels_name: str) -> tuple[Tensor, Tensor]:
    """Return the cached uint8 images and int64 labels of one pair of files (do not modify them)."""
    images_path = (raw_dir / images_name).resolve()
    labels_path = (raw_dir / labels_name).resolve()
    stamp = _stamp(images_path) + _stamp(labels_path)
    return _parsed_pair(str(images_path), str(labels_path), stamp)


def _check_split(split: str) -> None:
    """Raise ValueError unless split is 'train' or 'test'."""
    if not isinstance(split, str) or split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}.")


def _idx_split_files(split: str) -> tuple[str, str]:
    """Return the (images, labels) file names of a split of MNIST or Fashion-MNIST."""
    _check_split(split)
    return (TRAIN_IMAGES, TRAIN_LABELS) if split == "train" else (TEST_IMAGES, TEST_LABELS)


def _unit_float(images: Tensor) -> Tensor:
    """Return a fresh float32 copy of uint8 images scaled to [0, 1]."""
    return images.to(torch.float32).div_(255.0)


def load_mnist(
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Return (images, labels): float32 images (N, 1, 28, 28) in [0, 1] and int64 labels (N,)."""
    names = _idx_split_files(split)
    offline = offline_split()
    if offline:
        names = (TEST_IMAGES, TEST_LABELS)
    raw_dir = ensure_files(names, data_dir, download_missing=download, mirrors=MIRRORS, dataset=MNIST_DATASET)
    images, labels = _load_pair(raw_dir, *names)
    if offline:
        part = slice(0, OFFLINE_TRAIN_SIZE) if split == "train" else slice(OFFLINE_TRAIN_SIZE, None)
        images, labels = images[part], labels[part]
    # Fresh tensors on every call, so changing them never touches the cache.
    return _unit_float(images.unsqueeze(1)), labels.clone()


def load_fashion_mnist(
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Return Fashion-MNIST as (images, labels): float32 images (N, 1, 28, 28) in [0, 1] and int64 labels (N,)."""
    names = _idx_split_files(split)
    # Offline mode (automated tests) never reaches for the network.
    raw_dir = ensure_files(names, data_dir, download_missing=download and not offline_split(),
                           dataset=FASHION_MNIST_DATASET)
    images, labels = _load_pair(raw_dir, *names)
    return _unit_float(images.unsqueeze(1)), labels.clone()


def fashion_mnist_available(split: str = "test", data_dir: PathLike | None = None) -> bool:
    """Return True when the Fashion-MNIST files of split are present with their official MD5s (never downloads)."""
    return _files_present(_idx_split_files(split), data_dir, FASHION_MNIST_DATASET)


# --------------------------------------------------------------------------
# CIFAR-10 (optional colour section)
# --------------------------------------------------------------------------


def _cifar10_split_files(split: str) -> tuple[str, ...]:
    """Return the .bin batches of a CIFAR-10 split (five for train, one for test)."""
    _check_split(split)
    return CIFAR10_TRAIN_FILES if split == "train" else CIFAR10_TEST_FILES


def _cifar10_not_found_message(names: Sequence[str], root: Path, reasons: Sequence[str] = ()) -> str:
    """Build a friendly message explaining where to put the CIFAR-10 archive and where it comes from."""
    lines = [
        f"Could not find the CIFAR-10 file(s) {', '.join(names)} in {root / CIFAR10_FOLDER}, "
        f"nor the archive {root / CIFAR10_ARCHIVE}" + (", and could not download it." if reasons else "."),
        f"Please download the binary version of CIFAR-10, {CIFAR10_URL} (MD5 {CIFAR10_MD5}),",
        "and put the .tar.gz itself (its .bin batches are extracted for you) in:",
        f"    {root}",
        f"Or set the environment variable {DATA_DIR_ENV} to a folder that contains "
        f"{CIFAR10_ARCHIVE} or its extracted {CIFAR10_FOLDER}/ folder.",
    ]
    if reasons:
        lines.append("Download attempts:")
        lines.extend(f"    {reason}" for reason in reasons)
    return "\n".join(lines)


def _unsafe_member_name(name: str) -> bool:
    """Return True for a tar member name that could escape the extraction folder (absolute, '..', backslashes)."""
    path = PurePosixPath(name)
    return not name or path.is_absolute() or ".." in path.parts or "\\" in name


def _cifar10_batch_name(member_name: str) -> str | None:
    """Return the batch file a tar member holds (cifar-10-batches-bin/<batch>.bin), or None for any other member."""
    parts = PurePosixPath(member_name).parts
    batches = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES
    return parts[1] if len(parts) == 2 and parts[0] == CIFAR10_FOLDER and parts[1] in batches else None


def _cifar10_members(tar: tarfile.TarFile, archive: Path) -> dict[str, tarfile.TarInfo]:
    """Return the batch members of the archive by file name, refusing the whole archive if any name is unsafe."""
    batches: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if _unsafe_member_name(member.name):
            raise ValueError(
                f"{archive} contains the unsafe member name {member.name!r} (absolute or with '..'); "
                "it is not the official CIFAR-10 archive and nothing was extracted. Please delete it."
            )
        name = _cifar10_batch_name(member.name)
        if name is None:
            continue
        if not member.isfile():
            raise ValueError(f"{archive}: {member.name!r} is not a regular file; nothing was extracted, please delete it.")
        batches[name] = member
    return batches


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    """Copy one regular tar member to target through a temporary file, so a half-written batch is never left."""
    source = tar.extractfile(member)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, source:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _extract_cifar10(archive: Path, folder: Path) -> None:
    """Extract only the .bin batches of the CIFAR-10 archive into folder (never tar's own extract)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _cifar10_members(tar, archive)
            folder.mkdir(parents=True, exist_ok=True)
            for name, member in members.items():
                _write_member(tar, member, folder / name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{archive} is not a valid .tar.gz ({err}); please delete it and download it again.") from err


def _cifar10_folder(names: Sequence[str], data_dir: PathLike | None, download: bool) -> Path:
    """Make sure the named CIFAR-10 batches exist, extracting (or downloading) the archive if needed; return their folder."""
    root = resolve_data_dir(data_dir)
    folder = root / CIFAR10_FOLDER
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return folder
    archive = root / CIFAR10_ARCHIVE
    if archive.is_file():
        actual = _cached_md5(archive)
        if actual != CIFAR10_MD5:
            raise ValueError(
                f"The CIFAR-10 archive {archive} looks corrupt: its MD5 is {actual}, expected {CIFAR10_MD5}. "
                f"Please delete it and run again, or replace it with the official file {CIFAR10_URL}."
            )
    elif not download:
        raise DatasetNotFoundError(_cifar10_not_found_message(missing, root))
    else:
        path, reasons = _try_mirrors(CIFAR10_ARCHIVE, root, CIFAR10_MIRRORS, 30, CIFAR10_MD5)
        if path is None:
            raise DatasetNotFoundError(_cifar10_not_found_message(missing, root, reasons))
    if not os.access(folder if folder.is_dir() else root, os.W_OK):
        raise DatasetNotFoundError(
            f"The CIFAR-10 batches {', '.join(missing)} are missing and {archive} cannot be extracted "
            f"into the read-only {folder}. Extract its {CIFAR10_FOLDER}/ folder somewhere writable and set "
            f"{DATA_DIR_ENV} to the folder that contains it (or that contains a copy of the archive)."
        )
    _extract_cifar10(archive, folder)
    absent = [name for name in missing if not (folder / name).is_file()]
    if absent:
        raise ValueError(f"{archive} has no {CIFAR10_FOLDER}/{absent[0]}; it is not the official archive, delete it.")
    return folder


def read_cifar10_batch(path: PathLike) -> tuple[Tensor, Tensor]:
    """Read a CIFAR-10 binary batch into uint8 images (N, 3, 32, 32) (R, G, B planes) and int64 labels (N,)."""
    with open(path, "rb") as handle:
        payload = handle.read()
    if not payload or len(payload) % _CIFAR10_RECORD:
        raise ValueError(
            f"{path} has {len(payload)} bytes, not a positive multiple of {_CIFAR10_RECORD} "
            "(one label byte and 3072 pixel bytes per image); it is truncated or not a CIFAR-10 batch."
        )
    records = np.frombuffer(payload, dtype=np.uint8).reshape(-1, _CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= _CIFAR10_CLASSES:
        raise ValueError(f"{path} has label {labels.max()}, CIFAR-10 labels are 0..9; the file is damaged.")
    images = records[:, 1:].reshape(-1, *_CIFAR10_IMAGE)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


@functools.lru_cache(maxsize=6)
def _parsed_cifar10_batch(path: str, stamp: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Parse one CIFAR-10 batch once; the cache is keyed on its path and time stamp."""
    return read_cifar10_batch(path)


def load_cifar10(
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Return CIFAR-10 as (images, labels): float32 images (N, 3, 32, 32) in [0, 1] and int64 labels (N,)."""
    names = _cifar10_split_files(split)
    folder = _cifar10_folder(names, data_dir, download and not offline_split())  # offline mode never downloads
    paths = [(folder / name).resolve() for name in names]
    batches = [_parsed_cifar10_batch(str(path), _stamp(path)) for path in paths]
    # torch.cat always copies, so changing the result never touches the cache.
    images = torch.cat([images for images, _ in batches])
    labels = torch.cat([labels for _, labels in batches])
    return _unit_float(images), labels


def _cifar10_batch_ok(path: Path) -> bool:
    """Return True when path is a file whose size is a positive whole number of CIFAR-10 records."""
    size = path.stat().st_size
    return size > 0 and size % _CIFAR10_RECORD == 0


def cifar10_available(split: str = "test", data_dir: PathLike | None = None) -> bool:
    """Return True when the CIFAR-10 batches of split, or the archive with its official MD5, are present (no download)."""
    names = _cifar10_split_files(split)
    root = resolve_data_dir(data_dir)
    try:
        paths = [root / CIFAR10_FOLDER / name for name in names]
        if all(path.is_file() for path in paths):
            return all(_cifar10_batch_ok(path) for path in paths)
        archive = root / CIFAR10_ARCHIVE
        return archive.is_file() and _cached_md5(archive) == CIFAR10_MD5
    except OSError:
        return False


# --------------------------------------------------------------------------
# Transformations used in the exercises
# --------------------------------------------------------------------------


def _require_float(x: Tensor, what: str) -> None:
    """Raise a helpful TypeError when x is not a floating point tensor."""
    if not torch.is_floating_point(x):
        raise TypeError(f"{what} expects a float tensor (for example images from load_mnist), got {x.dtype}.")


def variance_mnist(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Return varianceMNIST: every pixel becomes intensity * eps with fresh eps ~ N(0, 1)."""
    _require_float(images, "variance_mnist")
    eps = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return images * eps


def downsample(x: Tensor) -> Tensor:
    """Return x shrunk by 2x2 average pooling: (B, 1, 28, 28) -> (B, 1, 14, 14)."""
    return torch.nn.functional.avg_pool2d(x, kernel_size=2)


def minibatches(
    *tensors: Tensor,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[Union[Tensor, tuple[Tensor, ...]]]:
    """Yield aligned minibatches: a tensor when given one tensor, a tuple of tensors when given several."""
    if not tensors:
        raise ValueError("minibatches needs at least one tensor.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    sizes = [t.shape[0] if t.dim() > 0 else None for t in tensors]
    if any(size is None for size in sizes) or len(set(sizes)) != 1:
        raise ValueError(f"All tensors must have the same first dimension, got {sizes}.")
    return _batches(tensors, sizes[0], batch_size, shuffle, generator, drop_last)


def _batches(
    tensors: tuple[Tensor, ...],
    n: int,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    drop_last: bool,
) -> Iterator[Union[Tensor, tuple[Tensor, ...]]]:
    """Generate the minibatches described in minibatches (one permutation per pass)."""
    # One random permutation per pass; each batch is gathered with a single index_select.
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            batch = tuple(t[start : start + batch_size] for t in tensors)
        else:
            index = order[start : start + batch_size]
            batch = tuple(t.index_select(0, index.to(t.device)) for t in tensors)
        yield batch[0] if len(batch) == 1 else batch

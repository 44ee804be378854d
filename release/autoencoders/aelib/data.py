"""MNIST helpers for the autoencoders course.

Everything you need to get MNIST into PyTorch tensors, plus the small
transformations used in the exercises:

* ``load_mnist`` returns ``(images, labels)``: float32 images of shape
  ``(N, 1, 28, 28)`` with values in ``[0, 1]`` and int64 labels of shape ``(N,)``.
* ``variance_mnist`` and ``downsample`` build the inputs of the varianceMNIST
  and super-resolution exercises (the noise of the denoising exercises is
  yours to write).
* ``minibatches`` cuts aligned tensors into (shuffled) minibatches.

Where the data lives
--------------------
The four official MNIST ``.gz`` files are looked up in
``<data_dir>/MNIST/raw/`` (the same layout torchvision uses), where
``<data_dir>`` is chosen by :func:`resolve_data_dir`.  Missing files are
downloaded once from the official mirrors and then reused.

Offline split (for automated testing only)
------------------------------------------
When the environment variable ``AUTOENCODERS_OFFLINE_SPLIT=1`` is set, only the
official 10k *test* files are used: "train" is their first 8000 images and
"test" their last 2000.  This exists so continuous integration can run without
the 60k training files; do not use it for your real course work.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path
from typing import Iterator, Sequence, Union

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
    "MNISTNotFoundError",
    "resolve_data_dir",
    "offline_split",
    "md5sum",
    "download",
    "ensure_files",
    "read_idx_images",
    "read_idx_labels",
    "load_mnist",
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

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_TRUE_WORDS = ("1", "true", "yes")


class MNISTNotFoundError(FileNotFoundError):
    """Raised when MNIST files are missing and could not be downloaded."""


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


def _raw_dir(data_dir: PathLike | None) -> Path:
    """Return the folder <data_dir>/MNIST/raw where the .gz files are kept."""
    return resolve_data_dir(data_dir) / "MNIST" / "raw"


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


def _not_found_message(names: Sequence[str], raw_dir: Path, reasons: Sequence[str] = ()) -> str:
    """Build a friendly message explaining which files to place where."""
    names = list(names)
    lines = [
        "Could not find the MNIST file(s) "
        + ", ".join(names)
        + (" and could not download them." if reasons else "."),
        "Please download them (keep these exact .gz file names) and place them in:",
        f"    {raw_dir}",
        f"Or set the environment variable {DATA_DIR_ENV} to a folder that contains "
        "MNIST/raw/ with these files.",
    ]
    if reasons:
        lines.append("Download attempts:")
        lines.extend(f"    {reason}" for reason in reasons)
    if any(name.startswith("train-") for name in names):
        lines.append(
            f"For CI or offline testing only (not for real course runs): "
            f"{OFFLINE_SPLIT_ENV}=1 uses only the 10k test split "
            f"({TEST_IMAGES}, {TEST_LABELS})."
        )
    return "\n".join(lines)


def _check_known(name: str) -> None:
    """Raise ValueError if name is not one of the four official MNIST files."""
    if name not in FILES:
        raise ValueError(f"Unknown MNIST file {name!r}; expected one of {sorted(FILES)}.")


def _try_mirrors(name: str, raw_dir: Path, mirrors: Sequence[str], timeout: float) -> tuple[Path | None, list[str]]:
    """Try each mirror in turn; return (path or None, one line per failed attempt)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / name
    reasons: list[str] = []
    for base in mirrors:
        url = base + name
        handle, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=raw_dir)
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
            actual = md5sum(tmp_path)
            if actual != FILES[name]:
                reasons.append(f"{url}: wrong MD5 {actual} (expected {FILES[name]}), file rejected")
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
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30,
) -> Path:
    """Download one official MNIST file into raw_dir, trying each mirror in turn and checking its MD5."""
    _check_known(name)
    raw_dir = Path(raw_dir)
    path, reasons = _try_mirrors(name, raw_dir, mirrors, timeout)
    if path is None:
        raise MNISTNotFoundError(_not_found_message([name], raw_dir, reasons))
    return path


def ensure_files(
    names: Sequence[str],
    data_dir: PathLike | None = None,
    download_missing: bool = True,
    mirrors: Sequence[str] = MIRRORS,
) -> Path:
    """Make sure the named MNIST files exist (downloading missing ones if allowed) and return their folder."""
    if isinstance(names, str):
        names = [names]
    for name in names:
        _check_known(name)
    raw_dir = _raw_dir(data_dir)
    missing = [name for name in names if not (raw_dir / name).is_file()]
    for name in names:
        if name in missing:
            continue
        path = raw_dir / name
        actual = _cached_md5(path)
        if actual != FILES[name]:
            raise ValueError(
                f"The MNIST file {path} looks corrupt: its MD5 is {actual}, "
                f"expected {FILES[name]}. Please delete it and run again "
                "(it will be downloaded again), or replace it with the official file."
            )
    if missing and not download_missing:
        raise MNISTNotFoundError(_not_found_message(missing, raw_dir))
    for position, name in enumerate(missing):
        path, reasons = _try_mirrors(name, raw_dir, mirrors, timeout=30)
        if path is None:
            raise MNISTNotFoundError(_not_found_message(missing[position:], raw_dir, reasons))
    return raw_dir


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
            "it is not the right kind of MNIST IDX file (or it is damaged)."
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


def _load_pair(raw_dir: Path, images_name: str, labels_name: str) -> tuple[Tensor, Tensor]:
    """Return the cached uint8 images and int64 labels of one pair of files (do not modify them)."""
    images_path = (raw_dir / images_name).resolve()
    labels_path = (raw_dir / labels_name).resolve()
    a, b = images_path.stat(), labels_path.stat()
    stamp = (a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size)
    return _parsed_pair(str(images_path), str(labels_path), stamp)


def load_mnist(
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Return (images, labels): float32 images (N, 1, 28, 28) in [0, 1] and int64 labels (N,)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}.")
    if offline_split():
        raw_dir = ensure_files([TEST_IMAGES, TEST_LABELS], data_dir, download_missing=download, mirrors=MIRRORS)
        images, labels = _load_pair(raw_dir, TEST_IMAGES, TEST_LABELS)
        part = slice(0, OFFLINE_TRAIN_SIZE) if split == "train" else slice(OFFLINE_TRAIN_SIZE, None)
        images, labels = images[part], labels[part]
    else:
        names = (TRAIN_IMAGES, TRAIN_LABELS) if split == "train" else (TEST_IMAGES, TEST_LABELS)
        raw_dir = ensure_files(names, data_dir, download_missing=download, mirrors=MIRRORS)
        images, labels = _load_pair(raw_dir, *names)
    # Fresh tensors on every call, so changing them never touches the cache.
    return images.unsqueeze(1).to(torch.float32).div_(255.0), labels.clone()


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

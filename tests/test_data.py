"""Tests for aelib.data (MNIST, Fashion-MNIST and CIFAR-10 loading, downloading and the exercise transforms)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import math
import os
import shutil
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from aelib import data

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
T10K = (TEST_IMAGES, TEST_LABELS)
TRAIN = (TRAIN_IMAGES, TRAIN_LABELS)


def _shared_raw_dir() -> Path:
    """Folder holding the offline t10k files: $AUTOENCODERS_DATA_DIR, else <repo>/../shared/data."""
    base = os.environ.get(data.DATA_DIR_ENV) or str(REPO_ROOT.parent / "shared" / "data")
    return Path(base) / "MNIST" / "raw"


SHARED_RAW = _shared_raw_dir()  # read once, before any test touches the environment


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Every test starts without the course environment variables."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(data.OFFLINE_SPLIT_ENV, raising=False)


@pytest.fixture(scope="session")
def t10k_data_dir(tmp_path_factory) -> Path:
    """A data dir containing only MNIST/raw/t10k-*.gz (copies; never modify them)."""
    if not all((SHARED_RAW / name).is_file() for name in T10K):
        pytest.skip(f"offline MNIST t10k files not found in {SHARED_RAW}")
    root = tmp_path_factory.mktemp("t10k_only")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in T10K:
        shutil.copyfile(SHARED_RAW / name, raw / name)
    return root


@pytest.fixture(scope="session")
def t10k_raw(t10k_data_dir):
    """The t10k images (uint8) and labels read directly with read_idx_*."""
    raw = t10k_data_dir / "MNIST" / "raw"
    return data.read_idx_images(raw / TEST_IMAGES), data.read_idx_labels(raw / TEST_LABELS)


def _closed_port_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


# --------------------------------------------------------------------------
# Locating the data
# --------------------------------------------------------------------------


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    mount = tmp_path / "coursedata"
    mount.mkdir()
    env_dir = tmp_path / "from_env"
    arg_dir = tmp_path / "from_arg"
    monkeypatch.setattr(data, "COURSE_DATA_MOUNT", mount)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(env_dir))

    assert data.resolve_data_dir(arg_dir) == arg_dir
    assert data.resolve_data_dir(str(arg_dir)) == arg_dir
    assert isinstance(data.resolve_data_dir(str(arg_dir)), Path)
    assert data.resolve_data_dir() == env_dir

    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.resolve_data_dir() == mount

    monkeypatch.setattr(data, "COURSE_DATA_MOUNT", tmp_path / "does_not_exist")
    beside = Path(data.__file__).resolve().parent.parent / "data"
    assert data.resolve_data_dir() == beside
    assert beside.parent.name == "autoencoders"


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("0", False),
     ("false", False), ("no", False), ("", False), ("2", False), ("on", False)],
)
def test_offline_split_env(monkeypatch, value, expected):
    monkeypatch.setenv(data.OFFLINE_SPLIT_ENV, value)
    assert data.offline_split() is expected


def test_offline_split_unset_is_false():
    assert data.offline_split() is False


def test_md5sum(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"autoencoders")
    assert data.md5sum(path) == hashlib.md5(b"autoencoders").hexdigest()


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def test_offline_split_shapes_and_content(monkeypatch, t10k_data_dir, t10k_raw):
    monkeypatch.setenv(data.OFFLINE_SPLIT_ENV, "1")
    monkeypatch.setattr(data, "MIRRORS", (_closed_port_url(),))
    raw_images, raw_labels = t10k_raw
    assert raw_images.shape == (10000, 28, 28) and raw_images.dtype == torch.uint8
    assert raw_labels.shape == (10000,) and raw_labels.dtype == torch.int64

    x_train, y_train = data.load_mnist("train", data_dir=t10k_data_dir)
    x_test, y_test = data.load_mnist("test", data_dir=t10k_data_dir)
    n_train = data.OFFLINE_TRAIN_SIZE
    assert n_train == 8000
    assert x_train.shape == (8000, 1, 28, 28) and y_train.shape == (8000,)
    assert x_test.shape == (2000, 1, 28, 28) and y_test.shape == (2000,)
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min().item() == 0.0 and x.max().item() == 1.0
        assert set(y.unique().tolist()) == set(range(10))

    # Exactly the first 8000 / last 2000 of the official test split, labels aligned.
    expected = raw_images.unsqueeze(1).to(torch.float32) / 255
    assert torch.equal(x_train, expected[:n_train])
    assert torch.equal(x_test, expected[n_train:])
    assert torch.equal(y_train, raw_labels[:n_train])
    assert torch.equal(y_test, raw_labels[n_train:])

    # Disjoint: no test image appears in the train part.
    train_hashes = {hashlib.md5(img.numpy().tobytes()).hexdigest() for img in raw_images[:n_train]}
    test_hashes = {hashlib.md5(img.numpy().tobytes()).hexdigest() for img in raw_images[n_train:]}
    assert not train_hashes & test_hashes

    # Offline mode never fetches (or even creates) the train files.
    raw_dir = t10k_data_dir / "MNIST" / "raw"
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(T10K)


def test_normal_mode_test_split_with_only_t10k(t10k_data_dir, t10k_raw):
    x, y = data.load_mnist("test", data_dir=t10k_data_dir, download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert torch.equal(y, t10k_raw[1])
    assert torch.equal(x, t10k_raw[0].unsqueeze(1).float() / 255)


def test_normal_mode_missing_train_files_raises(t10k_data_dir):
    raw_dir = t10k_data_dir / "MNIST" / "raw"
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist("train", data_dir=t10k_data_dir, download=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(raw_dir) in message
    assert TRAIN_IMAGES in message and TRAIN_LABELS in message
    assert data.OFFLINE_SPLIT_ENV in message
    assert data.DATA_DIR_ENV in message


def test_normal_mode_never_falls_back_when_download_fails(monkeypatch, t10k_data_dir):
    monkeypatch.setattr(data, "MIRRORS", (_closed_port_url(),))
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist("train", data_dir=t10k_data_dir, download=True)
    assert TRAIN_IMAGES in str(info.value)
    raw_dir = t10k_data_dir / "MNIST" / "raw"
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(T10K)


def test_load_mnist_bad_split(t10k_data_dir):
    with pytest.raises(ValueError):
        data.load_mnist("validation", data_dir=t10k_data_dir)


def test_cache_cannot_be_corrupted_by_callers(monkeypatch, t10k_data_dir, t10k_raw):
    for offline in ("0", "1"):
        monkeypatch.setenv(data.OFFLINE_SPLIT_ENV, offline)
        x1, y1 = data.load_mnist("test", data_dir=t10k_data_dir)
        x1.fill_(0.5)
        y1.fill_(3)
        x2, y2 = data.load_mnist("test", data_dir=t10k_data_dir)
        start = data.OFFLINE_TRAIN_SIZE if offline == "1" else 0
        assert torch.equal(y2, t10k_raw[1][start:])
        assert torch.equal(x2, t10k_raw[0][start:].unsqueeze(1).float() / 255)
        assert x2.data_ptr() != x1.data_ptr()


# --------------------------------------------------------------------------
# Parsing IDX files
# --------------------------------------------------------------------------


def _idx_images(n: int, rows: int, cols: int, magic: int = 2051) -> bytes:
    header = b"".join(v.to_bytes(4, "big") for v in (magic, n, rows, cols))
    return header + bytes(i % 256 for i in range(n * rows * cols))


def test_read_idx_roundtrip(tmp_path):
    path = tmp_path / "imgs.gz"
    path.write_bytes(gzip.compress(_idx_images(3, 28, 28)))
    images = data.read_idx_images(path)
    assert images.shape == (3, 28, 28) and images.dtype == torch.uint8
    assert images.flatten()[:300].tolist() == [i % 256 for i in range(300)]

    labels_path = tmp_path / "labels.gz"
    labels_path.write_bytes(gzip.compress((2049).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes([7, 0, 9, 1])))
    labels = data.read_idx_labels(labels_path)
    assert labels.dtype == torch.int64 and labels.tolist() == [7, 0, 9, 1]


def test_read_idx_bad_magic(tmp_path, t10k_data_dir):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(_idx_images(2, 28, 28, magic=1234)))
    with pytest.raises(ValueError, match="magic"):
        data.read_idx_images(path)
    # A labels file is not an images file and vice versa.
    raw = t10k_data_dir / "MNIST" / "raw"
    with pytest.raises(ValueError, match="magic"):
        data.read_idx_images(raw / TEST_LABELS)
    with pytest.raises(ValueError, match="magic"):
        data.read_idx_labels(raw / TEST_IMAGES)


def test_read_idx_truncated_and_not_gzip(tmp_path):
    truncated = tmp_path / "short.gz"
    truncated.write_bytes(gzip.compress(_idx_images(2, 28, 28)[:-10]))
    with pytest.raises(ValueError):
        data.read_idx_images(truncated)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(_idx_images(2, 28, 28))[:40])
    with pytest.raises(ValueError):
        data.read_idx_images(broken)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError):
        data.read_idx_labels(tiny)


# --------------------------------------------------------------------------
# Downloading from (local) mirrors
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """Serve a fresh folder over http on 127.0.0.1; tests add mirror folders to it and read the requested paths."""
    root = tmp_path_factory.mktemp("mirror")
    requests: list[str] = []

    class QuietHandler(SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "base": f"http://127.0.0.1:{server.server_address[1]}/", "requests": requests}
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def mirror_server(http_root):
    """Serve good/ (real t10k copies) and bad/ (corrupted copies) over http on 127.0.0.1."""
    if not all((SHARED_RAW / name).is_file() for name in T10K):
        pytest.skip(f"offline MNIST t10k files not found in {SHARED_RAW}")
    root = http_root["root"]
    (root / "good").mkdir(exist_ok=True)
    (root / "bad").mkdir(exist_ok=True)
    for name in T10K:
        shutil.copyfile(SHARED_RAW / name, root / "good" / name)
        content = bytearray((SHARED_RAW / name).read_bytes())
        content[len(content) // 2] ^= 0xFF
        (root / "bad" / name).write_bytes(bytes(content))
    base = http_root["base"]
    requests = http_root["requests"]
    return {"good": base + "good/", "bad": base + "bad/", "missing": base + "missing/", "requests": requests}


def test_download_from_local_mirror(tmp_path, mirror_server):
    raw_dir = tmp_path / "MNIST" / "raw"
    for name in T10K:
        path = data.download(name, raw_dir, mirrors=(mirror_server["good"],), timeout=5)
        assert path == raw_dir / name
        assert data.md5sum(path) == data.FILES[name]
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(T10K)  # no temp files left


def test_download_rejects_corrupted_mirror(tmp_path, mirror_server):
    raw_dir = tmp_path / "raw"
    name = TEST_LABELS
    mirror_server["requests"].clear()
    path = data.download(name, raw_dir, mirrors=(mirror_server["bad"], mirror_server["good"]), timeout=5)
    assert data.md5sum(path) == data.FILES[name]
    assert mirror_server["requests"] == ["/bad/" + name, "/good/" + name]
    assert [p.name for p in raw_dir.iterdir()] == [name]


def test_download_only_corrupted_mirror_fails(tmp_path, mirror_server):
    raw_dir = tmp_path / "raw"
    with pytest.raises(data.MNISTNotFoundError):
        data.download(TEST_LABELS, raw_dir, mirrors=(mirror_server["bad"],), timeout=5)
    assert list(raw_dir.iterdir()) == []  # the bad file was deleted


def test_download_all_mirrors_fail(tmp_path, mirror_server):
    raw_dir = tmp_path / "raw"
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.download(TRAIN_LABELS, raw_dir, mirrors=(mirror_server["missing"], mirror_server["good"]), timeout=5)
    message = str(info.value)
    assert TRAIN_LABELS in message
    assert str(raw_dir) in message
    assert data.DATA_DIR_ENV in message
    assert data.OFFLINE_SPLIT_ENV in message
    assert "404" in message
    assert not (raw_dir / TRAIN_LABELS).exists()


def test_download_skips_mirror_that_is_down(tmp_path, mirror_server):
    raw_dir = tmp_path / "raw"
    path = data.download(TEST_LABELS, raw_dir, mirrors=(_closed_port_url(), mirror_server["good"]), timeout=5)
    assert data.md5sum(path) == data.FILES[TEST_LABELS]


def test_download_unknown_name(tmp_path):
    with pytest.raises(ValueError):
        data.download("not-mnist.gz", tmp_path, mirrors=())


def test_ensure_files_downloads_then_reuses(tmp_path, mirror_server):
    requests = mirror_server["requests"]
    requests.clear()
    raw_dir = data.ensure_files(list(T10K), data_dir=tmp_path, mirrors=(mirror_server["good"],))
    assert raw_dir == tmp_path / "MNIST" / "raw"
    assert all(data.md5sum(raw_dir / name) == data.FILES[name] for name in T10K)
    assert len(requests) == 2

    requests.clear()
    assert data.ensure_files(list(T10K), data_dir=tmp_path, mirrors=(mirror_server["good"],)) == raw_dir
    assert requests == []  # existing files are not downloaded again


def test_ensure_files_missing_without_download(tmp_path, mirror_server):
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.ensure_files(list(TRAIN), data_dir=tmp_path, download_missing=False, mirrors=())
    message = str(info.value)
    assert all(name in message for name in TRAIN)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert data.OFFLINE_SPLIT_ENV in message

    # download_missing=False must not contact any mirror, even a working one.
    mirror_server["requests"].clear()
    with pytest.raises(data.MNISTNotFoundError):
        data.ensure_files(list(T10K), data_dir=tmp_path, download_missing=False, mirrors=(mirror_server["good"],))
    assert mirror_server["requests"] == []
    assert not any((tmp_path / "MNIST" / "raw" / name).exists() for name in T10K)


def test_ensure_files_corrupt_existing_file(tmp_path):
    raw_dir = tmp_path / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    (raw_dir / TEST_LABELS).write_bytes(b"not mnist")
    with pytest.raises(ValueError, match="corrupt") as info:
        data.ensure_files([TEST_LABELS], data_dir=tmp_path, mirrors=())
    assert "delete" in str(info.value)


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------

FASHION_LABELS = [9, 0, 3, 7, 1]


def _fashion_pixels(n: int) -> torch.Tensor:
    """Fake uint8 images (n, 28, 28), different for each image, with 0 and 255 among the pixels."""
    i = torch.arange(n).reshape(n, 1, 1)
    row = torch.arange(28).reshape(1, 28, 1)
    col = torch.arange(28).reshape(1, 1, 28)
    return ((37 * i + 11 * row + 3 * col) % 256).to(torch.uint8)


def _write_fake_fashion(raw_dir: Path, n: int = len(FASHION_LABELS)) -> tuple[torch.Tensor, torch.Tensor]:
    """Write gzip'd IDX t10k files of n fake images into raw_dir; return their (uint8 images, labels)."""
    images, labels = _fashion_pixels(n), torch.tensor(FASHION_LABELS * (n // len(FASHION_LABELS) + 1))[:n]
    raw_dir.mkdir(parents=True, exist_ok=True)
    image_header = b"".join(v.to_bytes(4, "big") for v in (2051, n, 28, 28))
    label_header = b"".join(v.to_bytes(4, "big") for v in (2049, n))
    (raw_dir / TEST_IMAGES).write_bytes(gzip.compress(image_header + images.numpy().tobytes(), mtime=0))
    (raw_dir / TEST_LABELS).write_bytes(gzip.compress(label_header + bytes(labels.tolist()), mtime=0))
    return images, labels


def _patch_fashion(monkeypatch, raw_dir: Path, mirrors: tuple[str, ...] = ()) -> dict[str, str]:
    """Make the fake t10k files in raw_dir the expected Fashion-MNIST files (and set the mirrors); return the MD5s."""
    fake = {name: data.md5sum(raw_dir / name) for name in T10K}
    md5s = {**data.FASHION_MNIST_DATASET.md5s, **fake}
    monkeypatch.setattr(data, "FASHION_MNIST_DATASET", data.FASHION_MNIST_DATASET._replace(md5s=md5s, mirrors=mirrors))
    return md5s


@pytest.fixture
def fake_fashion(monkeypatch, tmp_path):
    """A data dir holding fake Fashion-MNIST t10k files, patched in as the expected ones (no mirrors)."""
    raw_dir = tmp_path / "FashionMNIST" / "raw"
    images, labels = _write_fake_fashion(raw_dir)
    _patch_fashion(monkeypatch, raw_dir)
    return {"dir": tmp_path, "raw": raw_dir, "images": images, "labels": labels}


def test_fashion_mnist_description():
    fashion = data.FASHION_MNIST_DATASET
    assert fashion.folder == "FashionMNIST"
    assert dict(fashion.md5s) == {
        TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    }
    assert fashion.mirrors == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    assert data.MNIST_DATASET.folder == "MNIST" and data.MNIST_DATASET.md5s == data.FILES
    assert data.MNIST_DATASET.mirrors == data.MIRRORS
    assert issubclass(data.MNISTNotFoundError, data.DatasetNotFoundError)
    assert issubclass(data.DatasetNotFoundError, FileNotFoundError)


def test_load_fashion_mnist_test_split(monkeypatch, fake_fashion):
    monkeypatch.setenv(data.OFFLINE_SPLIT_ENV, "1")  # concerns MNIST only
    x, y = data.load_fashion_mnist("test", data_dir=fake_fashion["dir"], download=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (5,) and y.dtype == torch.int64
    assert torch.equal(x, fake_fashion["images"].unsqueeze(1).float() / 255)
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert y.tolist() == FASHION_LABELS

    # Found through $AUTOENCODERS_DATA_DIR too, and callers cannot change the cached data.
    x.fill_(0.5)
    y.fill_(2)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(fake_fashion["dir"]))
    x2, y2 = data.load_fashion_mnist("test", download=False)
    assert torch.equal(x2, fake_fashion["images"].unsqueeze(1).float() / 255)
    assert y2.tolist() == FASHION_LABELS


def test_fashion_mnist_missing_files_raise_clear_error(tmp_path, http_root, monkeypatch):
    fashion = data.FASHION_MNIST_DATASET._replace(mirrors=(http_root["base"],))
    monkeypatch.setattr(data, "FASHION_MNIST_DATASET", fashion)
    http_root["requests"].clear()
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_fashion_mnist("test", data_dir=tmp_path, download=False)
    assert http_root["requests"] == []  # download=False never contacts a mirror
    assert isinstance(info.value, FileNotFoundError)
    assert not isinstance(info.value, data.MNISTNotFoundError)
    message = str(info.value)
    assert "Fashion-MNIST" in message
    assert TEST_IMAGES in message and TEST_LABELS in message and TRAIN_IMAGES not in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert http_root["base"] in message  # where to get them
    assert data.DATA_DIR_ENV in message and "FashionMNIST/raw/" in message
    assert data.OFFLINE_SPLIT_ENV not in message
    assert not (tmp_path / "FashionMNIST").exists()


def test_fashion_mnist_test_split_needs_only_t10k(fake_fashion):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_fashion_mnist("train", data_dir=fake_fashion["dir"], download=False)
    message = str(info.value)
    assert TRAIN_IMAGES in message and TRAIN_LABELS in message
    assert TEST_IMAGES not in message and data.OFFLINE_SPLIT_ENV not in message
    with pytest.raises(ValueError):
        data.load_fashion_mnist("validation", data_dir=fake_fashion["dir"])


def test_fashion_mnist_md5_is_checked_per_dataset(monkeypatch, tmp_path):
    fashion_raw = tmp_path / "FashionMNIST" / "raw"
    images, _ = _write_fake_fashion(fashion_raw)
    shutil.copytree(fashion_raw, tmp_path / "MNIST" / "raw")  # same names, same bytes
    official = data.FASHION_MNIST_DATASET.md5s[TEST_IMAGES]
    with pytest.raises(ValueError, match="corrupt") as info:
        data.load_fashion_mnist("test", data_dir=tmp_path, download=False)
    assert official in str(info.value) and "delete" in str(info.value)

    _patch_fashion(monkeypatch, fashion_raw)
    x, _ = data.load_fashion_mnist("test", data_dir=tmp_path, download=False)
    assert torch.equal(x, images.unsqueeze(1).float() / 255)
    # The very same files under MNIST/raw are still checked against MNIST's own MD5s.
    with pytest.raises(ValueError, match="corrupt"):
        data.load_mnist("test", data_dir=tmp_path, download=False)


def test_mnist_file_in_fashion_folder_is_recognised(tmp_path, t10k_data_dir):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(t10k_data_dir / "MNIST" / "raw" / TEST_LABELS, raw / TEST_LABELS)
    with pytest.raises(ValueError, match="corrupt") as info:
        data.ensure_files([TEST_LABELS], tmp_path, download_missing=False, dataset=data.FASHION_MNIST_DATASET)
    assert "official MNIST file" in str(info.value) and "<data_dir>/MNIST/raw/" in str(info.value)


def test_fashion_mnist_download_from_local_mirror(monkeypatch, tmp_path, http_root):
    good, bad = http_root["root"] / "fashion", http_root["root"] / "fashion_bad"
    images, labels = _write_fake_fashion(good)
    bad.mkdir()
    for name in T10K:
        content = bytearray((good / name).read_bytes())
        content[len(content) // 2] ^= 0xFF
        (bad / name).write_bytes(bytes(content))
    mirrors = (http_root["base"] + "fashion_bad/", http_root["base"] + "fashion/")
    md5s = _patch_fashion(monkeypatch, good, mirrors=mirrors)
    requests = http_root["requests"]
    requests.clear()
    assert not data.fashion_mnist_available("test", tmp_path)
    assert requests == []  # checking availability never downloads

    x, y = data.load_fashion_mnist("test", data_dir=tmp_path)
    assert torch.equal(x, images.unsqueeze(1).float() / 255) and torch.equal(y, labels)
    assert sorted(requests) == sorted([f"/fashion_bad/{name}" for name in T10K] + [f"/fashion/{name}" for name in T10K])
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(T10K)  # corrupted copies and temp files gone
    assert all(data.md5sum(raw / name) == md5s[name] for name in T10K)
    assert not (tmp_path / "MNIST").exists()
    assert data.fashion_mnist_available("test", tmp_path)

    requests.clear()
    data.load_fashion_mnist("test", data_dir=tmp_path)
    assert requests == []  # reused, not downloaded again

    # The mirrors have no training files: a clear error listing what was tried.
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_fashion_mnist("train", data_dir=tmp_path)
    assert TRAIN_IMAGES in str(info.value) and "404" in str(info.value)
    assert sorted(p.name for p in raw.iterdir()) == sorted(T10K)


def test_fashion_mnist_available(fake_fashion, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    assert data.fashion_mnist_available("test", empty) is False
    assert data.fashion_mnist_available("train", empty) is False
    root, raw = fake_fashion["dir"], fake_fashion["raw"]
    assert data.fashion_mnist_available("test", root) is True
    assert data.fashion_mnist_available(data_dir=root) is True  # "test" by default
    assert data.fashion_mnist_available("train", root) is False
    with open(raw / TEST_IMAGES, "ab") as handle:
        handle.write(b"\0")  # wrong MD5 now
    assert data.fashion_mnist_available("test", root) is False
    (raw / TEST_IMAGES).unlink()
    assert data.fashion_mnist_available("test", root) is False
    with pytest.raises(ValueError):
        data.fashion_mnist_available("validation", root)


# --------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------

CIFAR_LABELS = [3, 0, 9, 1]
CIFAR_MEMBER = "cifar-10-batches-bin/test_batch.bin"


def _cifar_planes(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The red, green and blue 32x32 planes of fake CIFAR-10 image number k (all three different)."""
    y, x = np.mgrid[0:32, 0:32]
    red = ((x + 2 * y + k) % 256).astype(np.uint8)
    green = 255 - red
    blue = np.full((32, 32), (25 * k + 5) % 256, dtype=np.uint8)
    return red, green, blue


def _cifar_records(labels: list[int], first: int = 0) -> bytes:
    """Binary CIFAR-10 records for images first, first+1, ...: a label byte, then the R, G and B planes row by row."""
    return b"".join(
        bytes([label]) + b"".join(plane.tobytes() for plane in _cifar_planes(first + k))
        for k, label in enumerate(labels)
    )


def _cifar_expected(count: int) -> torch.Tensor:
    """The float images (count, 3, 32, 32) that _cifar_records encodes, in [0, 1]."""
    return torch.stack([torch.from_numpy(np.stack(_cifar_planes(k))) for k in range(count)]).float() / 255


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    """Write a .tar.gz at path holding regular files (member name -> content)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_cifar10_constants():
    assert data.CIFAR10_URL == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert data.CIFAR10_MD5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert data.CIFAR10_FOLDER == "cifar-10-batches-bin"
    assert data.CIFAR10_TRAIN_FILES == tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    assert data.CIFAR10_TEST_FILES == ("test_batch.bin",)


def test_read_cifar10_batch_channel_order(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(_cifar_records(CIFAR_LABELS))
    images, labels = data.read_cifar10_batch(path)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == CIFAR_LABELS
    for k in range(4):
        red, green, blue = _cifar_planes(k)
        assert torch.equal(images[k, 0], torch.from_numpy(red))
        assert torch.equal(images[k, 1], torch.from_numpy(green))
        assert torch.equal(images[k, 2], torch.from_numpy(blue))
    assert images[1, 0, 2, 5].item() == 5 + 2 * 2 + 1  # image 1, red, row 2, column 5
    assert images[3, 2, 31, 0].item() == 80  # image 3, blue


def test_read_cifar10_batch_damaged(tmp_path):
    path = tmp_path / "batch.bin"
    for content in (b"", _cifar_records([1, 2])[:-1], _cifar_records([1, 10])):
        path.write_bytes(content)
        with pytest.raises(ValueError):
            data.read_cifar10_batch(path)


def test_load_cifar10_test_split(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(_cifar_records(CIFAR_LABELS))
    x, y = data.load_cifar10("test", data_dir=tmp_path, download=False)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (4,) and y.dtype == torch.int64 and y.tolist() == CIFAR_LABELS
    assert torch.equal(x, _cifar_expected(4))
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    x.fill_(0.5)
    y.fill_(7)
    x2, y2 = data.load_cifar10("test", data_dir=tmp_path, download=False)
    assert torch.equal(x2, _cifar_expected(4)) and y2.tolist() == CIFAR_LABELS
    with pytest.raises(ValueError):
        data.load_cifar10("validation", data_dir=tmp_path)


def test_load_cifar10_train_concatenates_the_five_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(_cifar_records([i - 1, i + 4], first=2 * (i - 1)))
    x, y = data.load_cifar10("train", data_dir=tmp_path, download=False)
    assert y.tolist() == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]
    assert torch.equal(x, _cifar_expected(10))
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="data_batch_3.bin"):
        data.load_cifar10("train", data_dir=tmp_path, download=False)


def test_cifar10_missing_raises_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "CIFAR10_MIRRORS", (_closed_port_url(),))
    for download in (False, True):
        with pytest.raises(data.DatasetNotFoundError) as info:
            data.load_cifar10("test", data_dir=tmp_path, download=download)
        message = str(info.value)
        assert isinstance(info.value, FileNotFoundError)
        assert "test_batch.bin" in message and str(tmp_path / data.CIFAR10_FOLDER) in message
        assert str(tmp_path / data.CIFAR10_ARCHIVE) in message
        assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
        assert data.DATA_DIR_ENV in message
        assert ("could not download" in message) is download
    assert list(tmp_path.iterdir()) == []  # nothing left behind


@pytest.mark.parametrize("prefix", ["", "./"])
def test_cifar10_extracts_only_the_batches(monkeypatch, tmp_path, prefix):
    batch = _cifar_records(CIFAR_LABELS)
    archive = _tar_gz(
        tmp_path / data.CIFAR10_ARCHIVE,
        {
            prefix + CIFAR_MEMBER: batch,
            prefix + "cifar-10-batches-bin/batches.meta.txt": b"airplane\n",
            prefix + "cifar-10-batches-bin/readme.html": b"<html></html>",
        },
    )
    folder = tmp_path / data.CIFAR10_FOLDER
    # The official MD5 rejects this fake archive.
    with pytest.raises(ValueError, match="corrupt"):
        data.load_cifar10("test", data_dir=tmp_path, download=False)
    assert data.cifar10_available("test", tmp_path) is False
    assert not folder.exists()

    monkeypatch.setattr(data, "CIFAR10_MD5", data.md5sum(archive))
    assert data.cifar10_available("test", tmp_path) is True
    x, y = data.load_cifar10("test", data_dir=tmp_path, download=False)
    assert torch.equal(x, _cifar_expected(4)) and y.tolist() == CIFAR_LABELS
    assert [p.name for p in folder.iterdir()] == ["test_batch.bin"]  # no other member, no temp file
    assert (folder / "test_batch.bin").read_bytes() == batch
    with pytest.raises(ValueError, match="data_batch_1.bin"):
        data.load_cifar10("train", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("evil", ["../evil.bin", "cifar-10-batches-bin/../../evil.bin", "ABSOLUTE"])
def test_cifar10_archive_with_unsafe_member_is_refused(monkeypatch, tmp_path, evil):
    root = tmp_path / "data"
    root.mkdir()
    evil = str(tmp_path / "evil.bin") if evil == "ABSOLUTE" else evil
    archive = _tar_gz(root / data.CIFAR10_ARCHIVE, {CIFAR_MEMBER: _cifar_records(CIFAR_LABELS), evil: b"pwned"})
    monkeypatch.setattr(data, "CIFAR10_MD5", data.md5sum(archive))
    with pytest.raises(ValueError, match="unsafe"):
        data.load_cifar10("test", data_dir=root, download=False)
    assert not (tmp_path / "evil.bin").exists()
    assert not (root / data.CIFAR10_FOLDER).exists()  # the whole archive is refused


def test_cifar10_archive_with_linked_batch_is_refused(monkeypatch, tmp_path):
    archive = tmp_path / data.CIFAR10_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo(CIFAR_MEMBER)
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(data, "CIFAR10_MD5", data.md5sum(archive))
    with pytest.raises(ValueError, match="regular file"):
        data.load_cifar10("test", data_dir=tmp_path, download=False)
    assert not (tmp_path / data.CIFAR10_FOLDER / "test_batch.bin").exists()


def test_cifar10_download_from_local_mirror(monkeypatch, tmp_path, http_root):
    served = http_root["root"] / "cifar"
    served.mkdir()
    archive = _tar_gz(served / data.CIFAR10_ARCHIVE, {CIFAR_MEMBER: _cifar_records(CIFAR_LABELS)})
    monkeypatch.setattr(data, "CIFAR10_MD5", data.md5sum(archive))
    monkeypatch.setattr(data, "CIFAR10_MIRRORS", (http_root["base"] + "missing/", http_root["base"] + "cifar/"))
    requests = http_root["requests"]
    requests.clear()
    assert data.cifar10_available("test", tmp_path) is False
    with pytest.raises(data.DatasetNotFoundError):
        data.load_cifar10("test", data_dir=tmp_path, download=False)
    assert requests == []

    x, y = data.load_cifar10("test", data_dir=tmp_path)
    assert requests == ["/missing/" + data.CIFAR10_ARCHIVE, "/cifar/" + data.CIFAR10_ARCHIVE]
    assert torch.equal(x, _cifar_expected(4)) and y.tolist() == CIFAR_LABELS
    assert data.md5sum(tmp_path / data.CIFAR10_ARCHIVE) == data.CIFAR10_MD5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.CIFAR10_ARCHIVE, data.CIFAR10_FOLDER])
    assert data.cifar10_available("test", tmp_path) is True


def test_cifar10_available(tmp_path):
    assert data.cifar10_available("test", tmp_path) is False
    assert data.cifar10_available("train", tmp_path) is False
    folder = tmp_path / data.CIFAR10_FOLDER
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(_cifar_records(CIFAR_LABELS))
    assert data.cifar10_available("test", tmp_path) is True
    assert data.cifar10_available(data_dir=tmp_path) is True  # "test" by default
    assert data.cifar10_available("train", tmp_path) is False
    (folder / "test_batch.bin").write_bytes(_cifar_records(CIFAR_LABELS)[:-1])
    assert data.cifar10_available("test", tmp_path) is False
    with pytest.raises(ValueError):
        data.cifar10_available("validation", tmp_path)


# --------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------


def test_variance_mnist_fresh_noise_and_zeros():
    images = torch.rand(4, 1, 28, 28)
    images[:, :, :5] = 0.0
    a = data.variance_mnist(images)
    b = data.variance_mnist(images)
    assert a.shape == images.shape and a.dtype == images.dtype
    assert not torch.equal(a, b)
    assert torch.all(a[:, :, :5] == 0) and torch.all(b[:, :, :5] == 0)
    assert torch.all(a[:, :, 5:] != 0)
    # The generator is honoured.
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(data.variance_mnist(images, generator=g1), data.variance_mnist(images, generator=g2))


def test_variance_mnist_statistics():
    draws = 4000
    intensity = torch.linspace(0.05, 1.0, 28 * 28).reshape(1, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    samples = data.variance_mnist(intensity.expand(draws, 1, 28, 28).contiguous(), generator=gen).double()
    target = intensity.double()[0]
    # Sample mean of a*eps has std a/sqrt(n); sample variance has relative std sqrt(2/(n-1)).
    mean_tol = 5 * target / math.sqrt(draws)
    var_rel_tol = 5 * math.sqrt(2 / (draws - 1))
    assert torch.all((samples.mean(0) - 0).abs() <= mean_tol)
    assert torch.all((samples.var(0) / target**2 - 1).abs() <= var_rel_tol)


def test_downsample():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    y = data.downsample(x)
    assert y.shape == (2, 1, 14, 14)
    assert y[0, 0, 0, 0].item() == (0 + 1 + 28 + 29) / 4
    assert y[0, 0, 1, 2].item() == (60 + 61 + 88 + 89) / 4
    expected = x.reshape(2, 1, 14, 2, 14, 2).mean(dim=(3, 5))
    assert torch.equal(y, expected)


# --------------------------------------------------------------------------
# Minibatches
# --------------------------------------------------------------------------


def test_minibatches_cover_every_index_once():
    n = 103
    idx = torch.arange(n)
    gen = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        batches = list(data.minibatches(idx, batch_size=10, generator=gen))
        assert [len(b) for b in batches] == [10] * 10 + [3]
        order = torch.cat(batches)
        assert torch.equal(order.sort().values, idx)
        assert not torch.equal(order, idx)  # actually shuffled
        epochs.append(order)
    assert not torch.equal(epochs[0], epochs[1])  # a new permutation per call


def test_minibatches_drop_last_and_no_shuffle():
    idx = torch.arange(10)
    batches = list(data.minibatches(idx, batch_size=3, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    batches = list(data.minibatches(idx, batch_size=3, shuffle=False, drop_last=True))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    batches = list(data.minibatches(idx, batch_size=3, drop_last=True))
    assert [len(b) for b in batches] == [3, 3, 3]
    assert len(set(torch.cat(batches).tolist())) == 9


def test_minibatches_alignment_of_several_tensors():
    n = 50
    x = torch.randn(n, 1, 28, 28)
    y = torch.arange(n)
    z = torch.arange(n) * 10
    seen = []
    for batch in data.minibatches(x, y, z, batch_size=8):
        assert isinstance(batch, tuple) and len(batch) == 3
        bx, by, bz = batch
        assert torch.equal(bx, x[by])
        assert torch.equal(bz, by * 10)
        seen.extend(by.tolist())
    assert sorted(seen) == list(range(n))


def test_minibatches_single_tensor_yields_tensors():
    for batch in data.minibatches(torch.arange(7), batch_size=2):
        assert isinstance(batch, torch.Tensor)


def test_minibatches_errors():
    with pytest.raises(ValueError):
        list(data.minibatches(torch.arange(5), torch.arange(6), batch_size=2))
    with pytest.raises(ValueError):
        list(data.minibatches(torch.arange(5), batch_size=0))
    with pytest.raises(ValueError):
        list(data.minibatches(batch_size=2))


def test_module_constants():
    assert data.DATA_DIR_ENV == "AUTOENCODERS_DATA_DIR"
    assert data.OFFLINE_SPLIT_ENV == "AUTOENCODERS_OFFLINE_SPLIT"
    assert data.COURSE_DATA_MOUNT == Path("/coursedata")
    assert data.OFFLINE_TRAIN_SIZE == 8000
    assert data.MIRRORS[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert all(url.endswith("/") for url in data.MIRRORS)
    assert data.FILES == {
        TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    }
    assert issubclass(data.MNISTNotFoundError, FileNotFoundError)


# The notebook cells that use the optional data sets (2_dae parts 4 and 5)
# --------------------------------------------------------------------------

@functools.cache
def _dae_code_cells() -> tuple[str, ...]:
    """The sources of the code cells of the 2_dae reference notebook (read once)."""
    from grader import notebooks, pipeline

    return tuple(cell.source for cell in notebooks.read(pipeline.SOURCE / "2_dae.ipynb").cells
                 if cell.cell_type == "code")


def _dae_cells(*markers: str) -> list[str]:
    """The code cells of the 2_dae reference notebook holding each marker, in the order of the markers."""
    return [next(source for source in _dae_code_cells() if marker in source) for marker in markers]


def _run_dae_cells(namespace: dict, *markers: str) -> None:
    """Execute the reference cells holding `markers` in `namespace`, as a kernel would, in order."""
    for source in _dae_cells(*markers):
        exec(compile(source, "<2_dae>", "exec"), namespace)


@pytest.fixture
def dae_notebook(monkeypatch, t10k_data_dir, tmp_path):
    """2_dae's imports and data cells run over a data folder holding MNIST (offline split) and nothing else."""
    (tmp_path / "MNIST").symlink_to(t10k_data_dir / "MNIST")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_SPLIT_ENV, "1")
    namespace = {"skip_training": True}
    _run_dae_cells(namespace, "from aelib.data import", "def predict(")
    torch.manual_seed(0)
    namespace["denoiser"] = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Sigmoid())
    return {"dir": tmp_path, "namespace": namespace}


def test_out_of_distribution_part_uses_fashion_mnist_when_present(monkeypatch, dae_notebook, capsys):
    raw = dae_notebook["dir"] / "FashionMNIST" / "raw"
    _write_fake_fashion(raw, n=1000)  # the part denoises 1,000 images
    _patch_fashion(monkeypatch, raw)
    _run_dae_cells(dae_notebook["namespace"], 'load_fashion_mnist("test")')
    out = capsys.readouterr().out
    assert "Fashion-MNIST: noisy input" in out and "not available" not in out and "rotated" not in out


def test_out_of_distribution_part_falls_back_to_altered_digits(dae_notebook, capsys):
    _run_dae_cells(dae_notebook["namespace"], 'load_fashion_mnist("test")')
    out = capsys.readouterr().out
    assert "Fashion-MNIST is not available" in out and "FashionMNIST" in out  # names the folder to fill
    assert all(f"{kind}: noisy input" in out for kind in ("rotated", "inverted", "shifted", "faint"))


def test_cifar_part_trains_both_factors_when_cifar_is_present(dae_notebook, capsys):
    folder = dae_notebook["dir"] / data.CIFAR10_FOLDER
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(_cifar_records([i, i + 1, i + 2], first=3 * i))
    (folder / "test_batch.bin").write_bytes(_cifar_records(list(range(10))))
    namespace = dict(dae_notebook["namespace"], skip_training=False)
    _run_dae_cells(namespace, "CIFAR_EPOCHS = ")
    out = capsys.readouterr().out
    assert "skipped" not in out
    for factor in (2, 4):
        line = next(line for line in out.splitlines() if line.startswith(f"{factor}x: test MSE bicubic"))
        assert math.isfinite(float(line.rsplit(" ", 1)[1]))
    assert namespace["model"].factor == 4


def test_cifar_part_says_how_to_get_cifar_when_missing(dae_notebook, capsys):
    namespace = dict(dae_notebook["namespace"], skip_training=False)
    _run_dae_cells(namespace, "CIFAR_EPOCHS = ")
    out = capsys.readouterr().out
    assert "CIFAR-10 super-resolution is skipped" in out and "cifar-10-binary.tar.gz" in out
    _run_dae_cells(dict(namespace, skip_training=True), "CIFAR_EPOCHS = ")
    assert "skipped while skip_training is True" in capsys.readouterr().out

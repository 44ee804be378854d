"""The trust boundary between a grading kernel and the TA's tools: a private scratch folder, and one way out.

A kernel never writes where the TA's tools read. Before a notebook runs, its grading folder (what
nbgrader copied from the submission and the source) is copied into a fresh scratch folder that only
the kernel writes: in the sandbox it is bound over the grading folder's path, so the notebook sees
its usual folder. nbgrader writes the graded notebook and feedback to the real folder, which the
kernel never had write access to. After the kernel stops, the only thing carried out of the scratch
folder is each graded cell's collection, read by `read_regular_file` (no links followed, no special
files opened, a byte cap); then the scratch folder is deleted.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

MAX_DEPTH = 32          # folder nesting copied into a scratch folder
CHUNK = 2**20


class UnsafeFile(OSError):
    """A path that is a link, a special file, missing or over its byte cap: it was not read."""


def read_regular_file(root: Path, relative: str, max_bytes: int) -> bytes:
    """The bytes of the regular file `relative` under `root`, with no link followed on the way; UnsafeFile otherwise."""
    parts = [part for part in Path(relative).parts if part not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeFile(errno.EINVAL, f"not a path beneath the folder: {relative}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    descriptor = os.open(root, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=descriptor)
            except OSError as error:
                raise UnsafeFile(error.errno, f"{part} is missing, a link or not a folder") from None
            os.close(descriptor)
            descriptor = inner
        try:
            handle = os.open(parts[-1], flags, dir_fd=descriptor)
        except OSError as error:
            raise UnsafeFile(error.errno, f"{parts[-1]} is missing or a link") from None
    finally:
        os.close(descriptor)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(errno.EINVAL, f"{relative} is not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFile(errno.EFBIG, f"{relative} is {info.st_size} bytes, more than {max_bytes}")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(handle, min(CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise UnsafeFile(errno.EFBIG, f"{relative} grew beyond {max_bytes} bytes while read")
        return b"".join(chunks)
    finally:
        os.close(handle)


def copy_regular_tree(source: Path, target: Path, depth: int = 0) -> None:
    """Copy the folders and regular files under `source` into `target`; links and special files are left out."""
    if depth > MAX_DEPTH:
        return
    target.mkdir(mode=0o700, exist_ok=True)
    with os.scandir(source) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                copy_regular_tree(Path(entry.path), target / entry.name, depth + 1)
            elif entry.is_file(follow_symlinks=False):
                copy_regular_file(Path(entry.path), target / entry.name)


def copy_regular_file(source: Path, target: Path) -> None:
    """Copy one file if it is a regular file (opened without following a link or blocking), else skip it."""
    try:
        handle = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    with os.fdopen(handle, "rb") as reader:
        if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
            return
        with open(target, "xb") as writer:
            shutil.copyfileobj(reader, writer, CHUNK)


def make_scratch(folder: Path, owner: str = "") -> Path:
    """A new private folder holding a copy of the grading folder `folder`, for one kernel to write in.

    Its name starts with `aecourse-kernel-` and the `owner` (a student id) reduced to safe characters.
    """
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", owner)[:40]
    scratch = Path(tempfile.mkdtemp(prefix=f"aecourse-kernel-{label}-" if label else "aecourse-kernel-"))
    copy_regular_tree(Path(folder), scratch)
    return scratch


def usage(folder: Path, max_entries: int) -> tuple[int, int]:
    """Bytes and entries (files, folders, links: inodes) under `folder`, counted up to `max_entries` + 1 entries."""
    total, entries, pending = 0, 0, [str(folder)]
    while pending and entries <= max_entries:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > max_entries:
                        break
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += max(info.st_size, 512 * getattr(info, "st_blocks", 0))
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(entry.path)
        except OSError:
            continue
    return total, entries


def remove_scratch(folder: Path) -> None:
    """Delete a scratch folder whatever the kernel did to its modes (links inside are removed, never followed)."""
    def writable_then_retry(function, path, _):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass
    if Path(folder).is_dir() and not Path(folder).is_symlink():
        shutil.rmtree(folder, onerror=writable_then_retry)

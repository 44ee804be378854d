"""A reference solution's results, pictured beside the student's in the feedback (TA side, never graded).

`aecourse train-reference` runs the hidden tests of the checks declared `pictured` on the trained reference
solution once, with the fixed inputs `REFERENCE_SEED` gives, and keeps what they collected under
`.cache/reference-collected/<notebook>/` with the digest of everything that made it (the source notebook, its
helpers, the collectors, the offline split). While a pictured check is judged, `reference_value` reads the
reference's value of one key from there, and `None` when nothing current is kept: the picture then shows the
student's result alone. Nothing here decides a verdict, and nothing here was written by a student's kernel.
"""
from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from grader.collect.layout import SUFFIX
from grader.settings import GRADER, REPO

if TYPE_CHECKING:  # the TA's command line asks `is_current` without importing torch
    import torch

    from grader.collect.common import Inputs

REFERENCE_SEED = 20261207       # the reference's inputs: other noise and other t-SNE subsets than any student's
FOLDER = REPO / ".cache" / "reference-collected"
DIGEST_FILE = "DIGEST"
MAX_BYTES = 64 * 2**20          # one kept collection (the largest, 3_vae's test_vae_trained, is 19 MB offline)
LABEL = "a reference solution"


def reference_inputs() -> Inputs:
    """The inputs the kept reference collections were made with."""
    from grader.collect.common import Inputs

    return Inputs(REFERENCE_SEED)


def collections_digest(notebook: str) -> str:
    """A digest of what a reference collection of `notebook` depends on besides the trained checkpoints."""
    digest = hashlib.sha256(f"{notebook} {REFERENCE_SEED} {os.environ.get('AUTOENCODERS_OFFLINE_SPLIT', '')}".encode())
    source = REPO / "source" / "autoencoders"
    for path in [source / f"{notebook}.py", *sorted((source / "aelib").glob("*.py")),
                 *sorted((GRADER / "collect").glob("*.py"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kept_folder(notebook: str) -> Path:
    """Where the reference collections of `notebook` are kept."""
    return FOLDER / notebook


def is_current(notebook: str) -> bool:
    """Whether the kept reference collections of `notebook` were made by today's source and collectors."""
    path = kept_folder(notebook) / DIGEST_FILE
    return path.is_file() and path.read_text().strip() == collections_digest(notebook)


def _kept(notebook: str, grade_id: str) -> dict | None:
    """The kept reference collection of one cell, decoded (None when missing, stale, a link or unreadable)."""
    if not is_current(notebook):
        return None
    path = kept_folder(notebook) / f"{grade_id}{SUFFIX}"
    try:
        status = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_BYTES:
        return None
    return _decoded(str(path), status.st_ino, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=4)
def _decoded(path: str, inode: int, modified: int, size: int) -> dict | None:
    """A kept collection's contents, read once per version of the file."""
    from grader.collect.record import RecordError, decode

    try:
        data = decode(Path(path).read_bytes())
    except (OSError, RecordError):
        return None
    return data if isinstance(data, dict) else None


def reference_value(key: str, shape: tuple[int, ...], what: str) -> torch.Tensor | None:
    """The reference's finite float tensor `key` of `shape` for the cell being judged, noted as `what` it shows."""
    import torch

    from grader.judge.results import judged_cell, shown_beside

    cell = judged_cell()
    data = _kept(*cell) if cell else None
    value = data.get(key) if data is not None else None
    if not (isinstance(value, torch.Tensor) and value.is_floating_point() and tuple(value.shape) == tuple(shape)
            and bool(torch.isfinite(value).all())):
        return None
    shown_beside(what)
    return value

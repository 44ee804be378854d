"""Demo and test submissions: the reference, the blank release, and variants with known mistakes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from grader import notebooks, pipeline
from grader.variants import Variant

PAYLOAD_MARKER = "payload_ran"


class _Payload:
    """Pickles into a call that creates a marker file: proof that a checkpoint ran code if it appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def tamper(path: Path, how: str, reference_dir: Path, marker: Path) -> None:
    """Replace or remove a submitted checkpoint in one of the ways a real submission goes wrong."""
    if how == "missing":
        path.unlink(missing_ok=True)
    elif how == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
    elif how == "pickle_payload":
        torch.save({"layers.0.weight": _Payload(marker)}, path)
    elif how == "wrong_architecture":
        state = torch.load(reference_dir / "1_ae_2d.pth", weights_only=True)
        torch.save({key.removeprefix("encoder."): value for key, value in state.items()
                    if key.startswith("encoder.")}, path)
    else:
        raise ValueError(f"unknown tampering {how!r}")


def checkpoints(reference_dir: Path, name: str) -> dict[str, Path]:
    """The checkpoints a reference run of notebook `name` saved."""
    return {path.name: path for path in sorted(reference_dir.glob(f"{name}_*.pth"))}


def submit_reference(root: Path, student: str, name: str, reference_dir: Path, fresh: bool = True) -> Path:
    """Submit the reference solution of notebook `name` with its trained checkpoints."""
    release, source = _notebooks(root, name)
    return pipeline.submit(root, student, {f"{name}.ipynb": pipeline.fill_release(release, source),
                                           **checkpoints(reference_dir, name)}, fresh)


def submit_blank(root: Path, student: str, name: str, fresh: bool = True) -> Path:
    """Submit the untouched release notebook, as a student who did nothing would."""
    release, _ = _notebooks(root, name)
    return pipeline.submit(root, student, {f"{name}.ipynb": release}, fresh)


def submit_variant(root: Path, student: str, variant: Variant, reference_dir: Path) -> Path:
    """Submit a variant: the reference with rewritten cells and tampered files (trained anew if it must be)."""
    release, source = _notebooks(root, variant.notebook)
    notebook = pipeline.fill_release(release, source, variant.cells)
    files = {} if variant.retrain else checkpoints(reference_dir, variant.notebook)
    folder = pipeline.submit(root, student, {f"{variant.notebook}.ipynb": notebook, **files})
    if variant.retrain:
        train_submission(folder, variant.notebook)
    for filename, how in variant.files.items():
        tamper(folder / filename, how, reference_dir, root / PAYLOAD_MARKER)
    return folder


def train_submission(folder: Path, name: str) -> None:
    """Run a student's notebook in its folder with training on, as the student does before submitting."""
    helpers = folder / "aelib"
    shutil.copytree(pipeline.SOURCE / "aelib", helpers, ignore=shutil.ignore_patterns("__pycache__"))
    try:
        path = folder / f"{name}.ipynb"
        notebooks.write(pipeline.execute(notebooks.read(path), folder, f"training {folder.parent.name}"), path)
    finally:
        shutil.rmtree(helpers)


def _notebooks(root: Path, name: str):
    """The release and source notebooks of `name` in the course directory `root`."""
    release = notebooks.read(root / "release" / pipeline.ASSIGNMENT / f"{name}.ipynb")
    source = notebooks.read(root / "source" / pipeline.ASSIGNMENT / f"{name}.ipynb")
    return release, source

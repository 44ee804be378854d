"""Demo and test submissions: the reference, the blank release, and variants with known mistakes."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

from grader import notebooks, pipeline
from grader.checks import MODULES
from grader.variants import Variant
from grader.variants.hostile import BASES, FIRST_CELL, Hostile

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
    elif how.startswith("from:"):
        shutil.copyfile(reference_dir / how.removeprefix("from:"), path)
    elif how == "huge":
        with open(path, "wb") as handle:
            handle.truncate(100 * 2**20)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "nan_weights":
        state = torch.load(path, weights_only=True)
        torch.save({key: torch.full_like(value, float("nan")) if value.is_floating_point() else value
                    for key, value in state.items()}, path)
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


def graded_checkpoints(name: str) -> set[str]:
    """The checkpoint files of notebook `name` that hidden tests load (the others are optional)."""
    text = (Path(__file__).parent / "collect" / f"{MODULES[name]}.py").read_text()
    return set(re.findall(rf'"({re.escape(name)}_\w+\.pth)"', text))


def optional_checkpoints(name: str) -> set[str]:
    """Checkpoint files the notebook `name` saves that no hidden test loads."""
    text = (pipeline.SOURCE / f"{name}.py").read_text()
    return set(re.findall(rf'"({re.escape(name)}_\w+\.pth)"', text)) - graded_checkpoints(name)


def submit_reference_graded_only(root: Path, student: str, name: str, reference_dir: Path,
                                 fresh: bool = True) -> Path:
    """Submit the reference solution of `name` with only the checkpoints that are graded."""
    release, source = _notebooks(root, name)
    kept = {file: path for file, path in checkpoints(reference_dir, name).items() if file in graded_checkpoints(name)}
    return pipeline.submit(root, student, {f"{name}.ipynb": pipeline.fill_release(release, source), **kept}, fresh)


def submit_blank(root: Path, student: str, name: str, fresh: bool = True) -> Path:
    """Submit the untouched release notebook, as a student who did nothing would."""
    release, _ = _notebooks(root, name)
    return pipeline.submit(root, student, {f"{name}.ipynb": release}, fresh)


def submit_variant(root: Path, student: str, variant: Variant, reference_dir: Path) -> Path:
    """Submit a variant: the reference with rewritten cells and tampered files (trained anew if it must be)."""
    release, source = _notebooks(root, variant.notebook)
    notebook = pipeline.fill_release(release, source, variant.cells)
    trained = pipeline.train_variant(variant) if variant.retrain else reference_dir
    folder = pipeline.submit(root, student, {f"{variant.notebook}.ipynb": notebook,
                                             **checkpoints(trained, variant.notebook)})
    for filename, how in variant.files.items():
        tamper(folder / filename, how, reference_dir, root / PAYLOAD_MARKER)
    return folder


def submit_hostile(root: Path, student: str, case: Hostile, reference_dir: Path) -> Path:
    """Submit a hostile-catalogue case: its base mistake, its trick, its notebook edits and tampered files."""
    release, source = _notebooks(root, case.notebook)
    first = notebooks.solution_code(notebooks.cells_by_grade_id(source)[FIRST_CELL[case.notebook]].source)
    notebook = pipeline.fill_release(release, source, case.solution_cells(first))
    if case.edit:
        case.edit(notebook)
    folder = pipeline.submit(root, student, {f"{case.notebook}.ipynb": notebook,
                                             **checkpoints(reference_dir, case.notebook)})
    for filename, how in case.files.items():
        tamper(folder / filename, how, reference_dir, root / PAYLOAD_MARKER)
    return folder


def submit_base(root: Path, student: str, notebook: str, reference_dir: Path) -> Path:
    """Submit the base mistake of the hostile catalogue for `notebook`, without any trick."""
    release, source = _notebooks(root, notebook)
    return pipeline.submit(root, student, {f"{notebook}.ipynb": pipeline.fill_release(release, source, BASES[notebook]),
                                           **checkpoints(reference_dir, notebook)})


def _notebooks(root: Path, name: str):
    """The release and source notebooks of `name` in the course directory `root`."""
    release = notebooks.read(root / "release" / pipeline.ASSIGNMENT / f"{name}.ipynb")
    source = notebooks.read(root / "source" / pipeline.ASSIGNMENT / f"{name}.ipynb")
    return release, source

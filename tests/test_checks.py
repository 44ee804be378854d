"""Every notebook's hidden checks, run exactly as its hidden test cells run them, on the reference and on variants."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader import notebooks, pipeline, submissions
from grader.variants import notebooks_under_test, variants_of

NOTEBOOKS = notebooks_under_test()
SOURCES = {name: notebooks.build_notebook(pipeline.SOURCE / f"{name}.py") for name in NOTEBOOKS}
HIDDEN = {name: notebooks.hidden_tests(source) for name, source in SOURCES.items()}
CASES = [(name, variant) for name in NOTEBOOKS for variant in variants_of(name).VARIANTS if not variant.retrain]


def failing_cells(name: str, namespace: dict) -> dict[str, str]:
    """Run every hidden test of notebook `name` in `namespace`; return the failing cells with their messages."""
    failures = {}
    for grade_id, code in HIDDEN[name].items():
        try:
            exec(code, dict(namespace))
        except Exception as error:  # a grade cell fails on any exception
            failures[grade_id] = f"{type(error).__name__}: {error}"
    return failures


def submission_dir(tmp_path: Path, name: str) -> Path:
    """A folder holding the reference checkpoints of `name`, as a submission folder holds them."""
    for path in pipeline.train_reference(name).glob(f"{name}_*.pth"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_points_cell_has_hidden_checks(name):
    graded = {gid for gid, pts in notebooks.points(SOURCES[name]).items() if pts > 0}
    assert set(HIDDEN[name]) == graded


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_passes_every_hidden_check(name, tmp_path, monkeypatch):
    monkeypatch.chdir(submission_dir(tmp_path, name))
    assert failing_cells(name, notebooks.definitions(SOURCES[name])) == {}


@pytest.mark.parametrize("name, variant", CASES, ids=lambda case: getattr(case, "name", case))
def test_variant_fails_exactly_its_cells(name, variant, tmp_path, monkeypatch):
    folder = submission_dir(tmp_path, name)
    marker = tmp_path / submissions.PAYLOAD_MARKER
    for filename, how in variant.files.items():
        submissions.tamper(folder / filename, how, pipeline.train_reference(name), marker)
    monkeypatch.chdir(folder)
    failures = failing_cells(name, notebooks.definitions(SOURCES[name], variant.cells))
    assert set(failures) == set(variant.fails), failures
    assert not marker.exists(), "a checkpoint ran code while being loaded"
    for message in failures.values():
        assert message.startswith("AssertionError"), f"checks must fail with a message, not a crash: {message}"

"""Every notebook's hidden tests, collected and judged as autograde does, on the reference and on variants.

Collection runs the hidden test code in this process (no sandbox, no nbgrader) and the verdicts come
from the same `grader.judge` functions `JudgeCollected` runs; tests/test_pipeline.py grades the
reference, the blank release, the variants that must be retrained and the hostile catalogue through
`nbgrader autograde`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader import notebooks, pipeline, submissions
from grader.collect.common import Inputs
from grader.judge import judge_notebook, judges_of
from grader.preprocessors import hand_out
from grader.variants import notebooks_under_test, variants_of

NOTEBOOKS = notebooks_under_test()
SOURCES = {name: notebooks.build_notebook(pipeline.SOURCE / f"{name}.py") for name in NOTEBOOKS}
HIDDEN = {name: notebooks.hidden_tests(source) for name, source in SOURCES.items()}
CASES = [(name, variant) for name in NOTEBOOKS for variant in variants_of(name).VARIANTS if not variant.retrain]
INPUTS = Inputs(20261122)
_SETUPS: dict[str, dict] = {}


def namespace_of(name: str, replacements: dict[str, str] | None = None) -> dict:
    """The notebook's definitions with `replacements`, its set-up cells run once per test session."""
    if name not in _SETUPS:
        _SETUPS[name] = notebooks.setup_namespace(SOURCES[name])
    return notebooks.definitions(SOURCES[name], replacements, setup=_SETUPS[name])


def failing_cells(name: str, namespace: dict, folder: Path, inputs: Inputs = INPUTS) -> dict[str, str]:
    """Collect every hidden test of notebook `name` in `namespace`, judge it; return failing cells and messages."""
    hand_out(folder, inputs)
    for code in HIDDEN[name].values():
        try:
            exec(code, dict(namespace))
        except Exception:  # a cell that raises collects nothing, and its judge says so
            pass
    verdicts = judge_notebook(name, list(HIDDEN[name]), folder, inputs)
    return {grade_id: verdict.message for grade_id, verdict in verdicts.items() if not verdict.passed}


def submission_dir(tmp_path: Path, name: str) -> Path:
    """A folder holding the reference checkpoints of `name`, as a submission folder holds them."""
    for path in pipeline.train_reference(name).glob(f"{name}_*.pth"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_points_cell_is_collected_and_judged(name):
    graded = {gid for gid, pts in notebooks.points(SOURCES[name]).items() if pts > 0}
    assert set(HIDDEN[name]) == graded == set(judges_of(name))
    for grade_id, code in HIDDEN[name].items():
        assert f'grader.collect.common.store("{grade_id}",' in code, f"{grade_id} does not store its collection"
        assert "grader.judge" not in code and "grader.reference" not in code


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_passes_every_hidden_check(name, tmp_path, monkeypatch):
    monkeypatch.chdir(submission_dir(tmp_path, name))
    assert failing_cells(name, namespace_of(name), tmp_path) == {}


@pytest.mark.parametrize("name, variant", CASES, ids=lambda case: getattr(case, "name", case))
def test_variant_fails_exactly_its_cells(name, variant, tmp_path, monkeypatch):
    folder = submission_dir(tmp_path, name)
    marker = tmp_path / submissions.PAYLOAD_MARKER
    for filename, how in variant.files.items():
        submissions.tamper(folder / filename, how, pipeline.train_reference(name), marker)
    monkeypatch.chdir(folder)
    failures = failing_cells(name, namespace_of(name, variant.cells), folder)
    assert set(failures) == set(variant.fails), failures
    assert not marker.exists(), "a checkpoint ran code while being loaded"
    for message in failures.values():
        assert "malformed" not in message, f"judges must fail with a message, not a crash: {message}"

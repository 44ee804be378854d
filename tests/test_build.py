"""Notebook sources: how text sources become nbgrader notebooks. That nothing committed has drifted or leaks is
`aecourse check`, run by tests/test_cli.py."""
from __future__ import annotations

import pytest

from grader import notebooks, pipeline


def test_cell_kinds_become_nbgrader_metadata():
    assert notebooks.nbgrader_metadata({"kind": "tests", "grade_id": "t", "points": 2}) == {
        "schema_version": 3, "grade_id": "t", "task": False, "solution": False, "grade": True, "locked": True,
        "points": 2}
    assert notebooks.nbgrader_metadata({"kind": "solution", "grade_id": "s"})["solution"] is True
    assert notebooks.nbgrader_metadata({}) is None
    with pytest.raises(ValueError, match="unknown cell kind"):
        notebooks.nbgrader_metadata({"kind": "answer", "grade_id": "a"})
    with pytest.raises(ValueError, match="grade_id"):
        notebooks.nbgrader_metadata({"kind": "tests", "points": 1})


def test_guard_forces_skip_training_only_when_grading():
    source = notebooks.read(pipeline.SOURCE / "1_ae.ipynb")
    release = notebooks.read(pipeline.RELEASE / "1_ae.ipynb")
    guard = "skip_training_guard"

    def forces(notebook) -> bool:
        return "\nskip_training = True\n" in "\n" + notebooks.cells_by_grade_id(notebook)[guard].source + "\n"

    assert forces(source) and not forces(release)
    cells = [cell.source for cell in release.cells]
    flag = next(i for i, s in enumerate(cells) if s.strip() == "skip_training = False")
    assert flag < [c.id for c in release.cells].index(guard), "the guard must come after the student's flag"
    training = pipeline.training_notebook(source)
    assert not forces(training)


def test_test_cells_end_with_a_statement():
    """A test cell ending in an expression could turn its value into partial credit."""
    import ast

    for grade_id, cell in notebooks.cells_by_grade_id(notebooks.read(pipeline.SOURCE / "1_ae.ipynb")).items():
        if cell.metadata["nbgrader"]["grade"]:
            body = ast.parse(cell.source).body
            assert not body or not isinstance(body[-1], ast.Expr) or isinstance(body[-1].value, ast.Call), grade_id


def test_solution_code_and_hidden_tests_are_separated():
    cell = "x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n### BEGIN HIDDEN TESTS\nassert y\n### END HIDDEN TESTS\n"
    assert notebooks.solution_code(cell) == "x = 1\ny = 2\n### BEGIN HIDDEN TESTS\nassert y\n### END HIDDEN TESTS\n"
    assert notebooks.strip_hidden_tests(cell) == "x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n"

"""End to end through nbgrader itself: release, autograde of reference, blank, wrong and hostile submissions."""
from __future__ import annotations

import shutil

import pytest

from grader import notebooks, pipeline, submissions
from grader.variants import notebooks_under_test, Variant, variants_of

NOTEBOOKS = notebooks_under_test()
POINTS = {name: notebooks.points(notebooks.read(pipeline.SOURCE / f"{name}.ipynb")) for name in NOTEBOOKS}
CASES = [(name, variant) for name in NOTEBOOKS for variant in variants_of(name).VARIANTS]
KERNEL_EXIT = "import os\nos._exit(1)\n"
# A solution cell that tries to leave its grading folder: write into the course, copy the gradebook.
ESCAPE = """
import pathlib
course = pathlib.Path.cwd().parents[2]
for attempt in (lambda: (course / "escaped").write_text("x"),
                lambda: (pathlib.Path.cwd() / "stolen").write_bytes((course / "gradebook.db").read_bytes())):
    try:
        attempt()
    except OSError as error:
        print("blocked:", type(error).__name__)
"""


@pytest.fixture(scope="module")
def graded(course) -> dict[str, pipeline.GradeReport]:
    """Autograde every test submission once; reports by student id."""
    references = {name: pipeline.train_reference(name) for name in NOTEBOOKS}
    for index, (name, reference) in enumerate(references.items()):
        submissions.submit_reference(course, "reference", name, reference, fresh=index == 0)
        submissions.submit_blank(course, "blank", name, fresh=index == 0)
    for name, variant in CASES:
        submissions.submit_variant(course, f"{name}-{variant.name}", variant, references[name])
    pipeline.submit(course, "broken-json", {"1_ae.ipynb": b'{"cells": [ this is not json'})
    folder = submissions.submit_reference(course, "shadowing-files", "1_ae", references["1_ae"])
    (folder / "grader.py").write_text("raise SystemExit('a student file shadowed the grader')\n")
    (folder / "torch.py").write_text("raise SystemExit('a student file shadowed torch')\n")
    submissions.submit_variant(course, "kernel-exit", Variant(
        "kernel_exit", "1_ae", "kills its kernel", cells={"plot": KERNEL_EXIT}, fails=frozenset(POINTS["1_ae"])),
        references["1_ae"])
    source = notebooks.read(course / "source" / pipeline.ASSIGNMENT / "1_ae.ipynb")
    plot = notebooks.solution_code(notebooks.cells_by_grade_id(source)["plot"].source)
    submissions.submit_variant(course, "escape-attempt", Variant(
        "escape_attempt", "1_ae", "tries to leave its folder", cells={"plot": ESCAPE + plot}), references["1_ae"])
    students = sorted(p.name for p in (course / "submitted").iterdir())
    return {student: pipeline.autograde(course, student) for student in students}


def lost(report: pipeline.GradeReport, name: str) -> set[str]:
    """Grade cells of notebook `name` that did not get full points."""
    scores = report.scores.get(name, {})
    return {gid for gid, points in POINTS[name].items() if points > 0 and scores.get(gid, 0.0) < points}


def test_release_leaks_nothing(course):
    assert pipeline.release_problems(course / "release" / pipeline.ASSIGNMENT) == []


def test_leak_check_catches_a_leak(course, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(course / "release" / pipeline.ASSIGNMENT, release)
    notebook = notebooks.read(release / "1_ae.ipynb")
    notebook.cells[-1].source += "\nrho_hat = activations.mean(dim=0)  # a line of the solution\n"
    notebooks.write(notebook, release / "1_ae.ipynb")
    (release / "grader").mkdir()
    problems = pipeline.release_problems(release)
    assert any("secret line" in p for p in problems) and any(p.startswith("grader") for p in problems)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_gets_full_marks(graded, name):
    report = graded["reference"]
    assert report.error == "" and report.total(name) == sum(POINTS[name].values()), report.scores


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_blank_release_gets_zero(graded, name):
    assert graded["blank"].total(name) == 0 and name in graded["blank"].scores, graded["blank"].scores


@pytest.mark.parametrize("name, variant", CASES, ids=lambda case: getattr(case, "name", case))
def test_variant_loses_exactly_its_points(graded, name, variant, course):
    report = graded[f"{name}-{variant.name}"]
    assert lost(report, name) == set(variant.fails), report.scores
    assert report.total(name) == sum(POINTS[name].values()) - sum(POINTS[name][g] for g in variant.fails)
    assert not (course / submissions.PAYLOAD_MARKER).exists(), "a submitted checkpoint ran code"


def test_student_files_cannot_shadow_modules(graded):
    assert graded["shadowing-files"].total("1_ae") == sum(POINTS["1_ae"].values()), graded["shadowing-files"].scores


def test_broken_submissions_cost_only_that_student(graded):
    assert graded["broken-json"].total() == 0 and graded["broken-json"].error
    assert graded["kernel-exit"].total() == 0
    assert graded["shadowing-files"].total() > 0  # graded after both, in alphabetical order


def test_kernels_are_sandboxed(graded, course):
    from grader.sandbox import sandbox_enabled

    assert sandbox_enabled(), "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    assert graded["escape-attempt"].total("1_ae") == sum(POINTS["1_ae"].values())
    assert not (course / "escaped").exists(), "student code wrote into the course directory"
    assert not (course / "autograded" / "escape-attempt" / pipeline.ASSIGNMENT / "stolen").exists(), \
        "student code read the gradebook"


def test_feedback_is_written(graded, course):
    feedback = pipeline.generate_feedback(course)
    html = (feedback / "reference" / pipeline.ASSIGNMENT / "1_ae.html").read_text()
    full = sum(POINTS["1_ae"].values())
    assert f"Score: {full:.1f} / {full:.1f}" in html


def test_score_table_marks_notebooks_not_handed_in():
    reports = [pipeline.GradeReport("full", {"1_ae": {"a": 2.0}, "2_dae": {"b": 3.0}}),
               pipeline.GradeReport("one", {"1_ae": {"a": 0.0}, "2_dae": {"b": 0.0}})]
    table = pipeline.score_table(reports, {"1_ae": 2, "2_dae": 3}, {"one": {"2_dae"}}).splitlines()
    assert table[2].split() == ["full", "2", "3", "5"]
    assert table[3].split() == ["one", "-", "0", "0"]

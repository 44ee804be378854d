"""End to end through nbgrader itself: release, autograde of reference, blank, wrong and hostile submissions."""
from __future__ import annotations

import pytest

from grader import notebooks, pipeline, submissions
from grader.variants import ae as variants

NOTEBOOK = "1_ae"
SOURCE = notebooks.read(pipeline.SOURCE / f"{NOTEBOOK}.ipynb")
POINTS = notebooks.points(SOURCE)
FULL = sum(POINTS.values())
KERNEL_EXIT = "import os\nos._exit(1)\n"


@pytest.fixture(scope="module")
def graded(course, reference_dir) -> dict[str, pipeline.GradeReport]:
    """Autograde every demo and test submission once; reports by student id."""
    submissions.submit_reference(course, "reference", NOTEBOOK, reference_dir)
    submissions.submit_blank(course, "blank", NOTEBOOK)
    for variant in variants.VARIANTS:
        submissions.submit_variant(course, variant.name, variant, reference_dir)
    folder = pipeline.submit(course, "broken-json", {f"{NOTEBOOK}.ipynb": b'{"cells": [ this is not json'})
    folder = submissions.submit_reference(course, "shadowing-files", NOTEBOOK, reference_dir)
    (folder / "grader.py").write_text("raise SystemExit('a student file shadowed the grader')\n")
    (folder / "torch.py").write_text("raise SystemExit('a student file shadowed torch')\n")
    submissions.submit_variant(course, "kernel-exit", variants.Variant(
        "kernel_exit", NOTEBOOK, "kills its kernel", cells={"plot": KERNEL_EXIT}, fails=frozenset(POINTS)),
        reference_dir)
    students = sorted(p.name for p in (course / "submitted").iterdir())
    return {student: pipeline.autograde(course, student) for student in students}


def lost(report: pipeline.GradeReport) -> set[str]:
    """Grade cells of 1_ae that did not get full points."""
    scores = report.scores.get(NOTEBOOK, {})
    return {gid for gid, points in POINTS.items() if points > 0 and scores.get(gid, 0.0) < points}


def test_release_leaks_nothing(course):
    assert pipeline.release_problems(course / "release" / pipeline.ASSIGNMENT) == []


def test_leak_check_catches_a_leak(course, tmp_path):
    import shutil

    release = tmp_path / "release"
    shutil.copytree(course / "release" / pipeline.ASSIGNMENT, release)
    notebook = notebooks.read(release / f"{NOTEBOOK}.ipynb")
    notebook.cells[-1].source += "\nrho_hat = activations.mean(dim=0)  # a line of the solution\n"
    notebooks.write(notebook, release / f"{NOTEBOOK}.ipynb")
    (release / "grader").mkdir()
    problems = pipeline.release_problems(release)
    assert any("secret line" in p for p in problems) and any(p.startswith("grader") for p in problems)


def test_reference_gets_full_marks(graded):
    report = graded["reference"]
    assert report.error == "" and report.total(NOTEBOOK) == FULL, report.scores


def test_blank_release_gets_zero(graded):
    assert graded["blank"].total(NOTEBOOK) == 0 and graded["blank"].scores, graded["blank"].scores


@pytest.mark.parametrize("variant", variants.VARIANTS, ids=lambda v: v.name)
def test_variant_loses_exactly_its_points(graded, variant, course):
    report = graded[variant.name]
    assert lost(report) == set(variant.fails), report.scores
    assert report.total(NOTEBOOK) == FULL - sum(POINTS[g] for g in variant.fails)
    assert not (course / submissions.PAYLOAD_MARKER).exists(), "a submitted checkpoint ran code"


def test_student_files_cannot_shadow_modules(graded):
    assert graded["shadowing-files"].total(NOTEBOOK) == FULL, graded["shadowing-files"].scores


def test_broken_submissions_cost_only_that_student(graded):
    assert graded["broken-json"].total() == 0 and graded["broken-json"].error
    assert graded["kernel-exit"].total() == 0
    assert graded["shadowing-files"].total() == FULL  # graded after both, in alphabetical order


def test_feedback_is_written(graded, course):
    feedback = pipeline.generate_feedback(course)
    html = (feedback / "reference" / pipeline.ASSIGNMENT / f"{NOTEBOOK}.html").read_text()
    assert f"Score: {FULL:g}" in html or f"{FULL:g} / {FULL:g}" in html

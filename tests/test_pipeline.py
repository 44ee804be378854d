"""End to end through nbgrader itself: release, autograde of reference, blank, retrained, wrong and hostile submissions.

Every submission is graded once, as tasks on a two-worker Dask LocalCluster (kernels pinned to one thread),
into nbgrader's gradebook on a PostgreSQL server the tests start.
"""
from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import pytest

from grader import notebooks, parallel, pipeline, submissions
from grader.preprocessors import GRADERS_PICTURE
from grader.variants import notebooks_under_test, variants_of
from grader.variants.hostile import BASES, LEAK, PAYLOAD_FLAG, PROBE_PORT, catalogue

NOTEBOOKS = notebooks_under_test()
POINTS = {name: notebooks.points(notebooks.read(pipeline.SOURCE / f"{name}.ipynb")) for name in NOTEBOOKS}
# Every variant is collected and judged in tests/test_checks.py; through nbgrader only those that must train
# (alternative architectures, trained once by `aecourse train-reference --variants` and cached), which that
# file does not run. Wrong code goes through nbgrader in the blank submission, the hostile bases and the catalogue.
CASES = [(name, variant) for name in NOTEBOOKS for variant in variants_of(name).VARIANTS if variant.retrain]
HOSTILE = [case for case in catalogue() if case.notebook in NOTEBOOKS]
WORKERS = 2
OPTIONAL = [name for name in NOTEBOOKS if submissions.optional_checkpoints(name)]  # graded again without them


class ProbeServer:
    """A loopback TCP server the network case tries to reach; it counts the connections it accepts."""

    def __init__(self, port: int):
        self.accepted = 0
        self.socket = socket.create_server(("127.0.0.1", port))
        self.socket.settimeout(0.5)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                connection, _ = self.socket.accept()
                self.accepted += 1
                connection.close()
            except OSError:
                continue

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.socket.close()


@pytest.fixture(scope="module")
def probe() -> ProbeServer:
    """The loopback server, listening while the submissions are graded."""
    server = ProbeServer(PROBE_PORT)
    yield server
    server.close()


@pytest.fixture(scope="module")
def graded(course, probe, postgres_url) -> dict[str, pipeline.GradeReport]:
    """Autograde every test submission once, as Dask tasks into a PostgreSQL gradebook; reports by student id."""
    Path(PAYLOAD_FLAG).unlink(missing_ok=True)
    references = {name: pipeline.train_reference(name) for name in NOTEBOOKS}
    for index, (name, reference) in enumerate(references.items()):
        submissions.submit_reference(course, "reference", name, reference, fresh=index == 0)
        submissions.submit_blank(course, "blank", name, fresh=index == 0)
    for index, name in enumerate(OPTIONAL):
        submissions.submit_reference_graded_only(course, "graded-checkpoints-only", name, references[name],
                                                 fresh=index == 0)
    for name, variant in CASES:
        submissions.submit_variant(course, f"{name}-{variant.name}", variant, references[name])
    for name in BASES:
        if name in NOTEBOOKS:
            submissions.submit_base(course, f"base-{name}", name, references[name])
    settings = {}
    for case in HOSTILE:
        submissions.submit_hostile(course, f"hostile-{case.name}", case, references[case.notebook])
        settings[f"hostile-{case.name}"] = {"options": case.options, **({"timeout": case.timeout} if case.timeout else {})}
    pipeline.submit(course, "broken-json", {"1_ae.ipynb": b'{"cells": [ this is not json'})
    folder = submissions.submit_reference(course, "shadowing-files", "1_ae", references["1_ae"])
    (folder / "grader.py").write_text("raise SystemExit('a student file shadowed the grader')\n")
    (folder / "torch.py").write_text("raise SystemExit('a student file shadowed torch')\n")
    students = sorted(p.name for p in (course / "submitted").iterdir() if not p.name.startswith(("cli-", "par-")))
    # The slowest first, so two workers finish together.
    students.sort(key=lambda s: (not s.startswith(("reference", "hostile-infinite")), s))
    run = parallel.grade_class(course, students, workers=WORKERS, db_url=postgres_url, settings=settings,
                               force=True, progress=False)
    return {report.student: report for report in run.reports}


def lost(report: pipeline.GradeReport, name: str) -> set[str]:
    """Grade cells of notebook `name` that did not get full points."""
    scores = report.scores.get(name, {})
    return {gid for gid, points in POINTS[name].items() if points > 0 and scores.get(gid, 0.0) < points}


def autograded_outputs(course: Path, student: str, name: str) -> str | None:
    """What the cells of a student's autograded notebook printed, as text (None when nbgrader wrote none)."""
    path = course / "autograded" / student / pipeline.ASSIGNMENT / f"{name}.ipynb"
    if not path.exists():
        return None
    texts = []
    for cell in notebooks.read(path).cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(str(output.get("data", {}).get("text/plain", "")))
            texts.extend([output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])])
    return "\n".join(texts)


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


def error_outputs(course: Path, student: str, name: str) -> list[str]:
    """The error outputs of a student's autograded notebook, one line per failing cell."""
    notebook = notebooks.read(course / "autograded" / student / pipeline.ASSIGNMENT / f"{name}.ipynb")
    return [f"cell {index}: {output.ename}: {output.evalue}" for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" for output in cell.outputs if output.output_type == "error"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_runs_top_to_bottom_without_errors(graded, course, name):
    assert error_outputs(course, "reference", name) == []


@pytest.mark.parametrize("name", OPTIONAL)
def test_optional_checkpoints_are_optional(graded, course, name):
    report = graded["graded-checkpoints-only"]
    assert report.total(name) == sum(POINTS[name].values()), report.scores
    assert error_outputs(course, "graded-checkpoints-only", name) == []


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_blank_release_gets_zero(graded, name):
    assert graded["blank"].total(name) == 0 and name in graded["blank"].scores, graded["blank"].scores


@pytest.mark.parametrize("name, variant", CASES, ids=lambda case: getattr(case, "name", case))
def test_variant_loses_exactly_its_points(graded, name, variant, course):
    report = graded[f"{name}-{variant.name}"]
    assert lost(report, name) == set(variant.fails), report.scores
    assert report.total(name) == sum(POINTS[name].values()) - sum(POINTS[name][g] for g in variant.fails)
    assert not (course / submissions.PAYLOAD_MARKER).exists(), "a submitted checkpoint ran code"


@pytest.mark.parametrize("name", sorted(set(BASES) & set(NOTEBOOKS)))
def test_hostile_bases_lose_only_their_mistake(graded, name):
    assert len(lost(graded[f"base-{name}"], name)) == 1, graded[f"base-{name}"].scores


@pytest.mark.parametrize("case", HOSTILE, ids=lambda case: case.name)
def test_hostile_submission_gains_nothing(graded, case, course, probe):
    report, base = graded[f"hostile-{case.name}"], graded[f"base-{case.notebook}"]
    assert report.total(case.notebook) <= base.total(case.notebook), (report.scores, base.scores)
    text = autograded_outputs(course, report.student, case.notebook)
    assert text is not None, f"nbgrader wrote no autograded notebook: {report.error[-500:]}"
    if case.runs_code:
        assert f"TRICK {case.name}" in text, "the trick did not run, so this case tests nothing"
    assert LEAK not in text, "the kernel read something it must not"
    assert not Path(PAYLOAD_FLAG).exists(), "a forged collection ran code in the TA's process"
    assert not (course / submissions.PAYLOAD_MARKER).exists(), "a submitted checkpoint ran code"
    assert probe.accepted == 0, "a kernel reached the loopback network"


def test_limits_are_named_in_the_feedback(graded, course):
    for case, words in (("infinite_loop", ["wall-clock limit"]), ("memory_bomb", ["MemoryError", "memory limit"]),
                        ("fill_disk", ["disk limit"]), ("huge_output", ["output beyond"]),
                        ("os_exit", ["kernel exited"])):
        if any(c.name == case for c in HOSTILE):
            text = autograded_outputs(course, f"hostile-{case}", "1_ae") or ""
            assert any(word in text for word in words), case


def test_student_files_cannot_shadow_modules(graded):
    assert graded["shadowing-files"].total("1_ae") == sum(POINTS["1_ae"].values()), graded["shadowing-files"].scores


def test_broken_submissions_cost_only_that_student(graded):
    assert graded["broken-json"].total() == 0 and graded["broken-json"].error
    assert graded["hostile-os_exit"].total("1_ae") > 0  # the hidden tests before the exit still count
    assert graded["shadowing-files"].total() > 0


def test_feedback_is_written(graded, course, postgres_url):
    feedback = pipeline.generate_feedback(course, postgres_url)
    html = (feedback / "reference" / pipeline.ASSIGNMENT / "1_ae.html").read_text()
    full = sum(POINTS["1_ae"].values())
    assert f"Score: {full:.1f} / {full:.1f}" in html
    failing = (feedback / "base-1_ae" / pipeline.ASSIGNMENT / "1_ae.html").read_text()
    assert "sparsity_penalty on activations of shape" in failing, "a failing cell's message is missing from feedback"
    autograded = notebooks.read(course / "autograded" / "reference" / pipeline.ASSIGNMENT / "1_ae.ipynb")
    shown = {cell.metadata["nbgrader"]["grade_id"]: [output.data["image/png"] for output in cell.outputs
                                                     if output.get("data", {}).get("text/plain") == GRADERS_PICTURE]
             for cell in autograded.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade")}
    assert {grade_id for grade_id, pictures in shown.items() if pictures} == {
        "test_reconstruction", "test_classifier", "test_compression_trained", "test_sparse_trained"}
    assert all(picture in html for pictures in shown.values() for picture in pictures), "a picture is not in feedback"
    assert html.count("beside a reference solution") == 4, "the reference's results are not pictured beside"
    for figure in ("per-pixel test MSE: 0.0", "held-out accuracy: 0.8", "mean activation: 0.0"):
        assert f"{figure}" in html and "to spare" in html, f"the passed figure {figure!r} is missing from feedback"


def test_score_table_marks_notebooks_not_handed_in():
    reports = [pipeline.GradeReport("full", {"1_ae": {"a": 2.0}, "2_dae": {"b": 3.0}}),
               pipeline.GradeReport("one", {"1_ae": {"a": 0.0}, "2_dae": {"b": 0.0}})]
    table = pipeline.score_table(reports, {"1_ae": 2, "2_dae": 3}, {"one": {"2_dae"}}).splitlines()
    assert table[2].split() == ["full", "2", "3", "5"]
    assert table[3].split() == ["one", "-", "0", "0"]


def test_scores_export_in_nbgraders_csv_format(graded, course, postgres_url, tmp_path):
    import csv

    rows = {row["student_id"]: row for row in
            csv.DictReader(parallel.export_csv(course, tmp_path / "grades.csv", postgres_url).open())}
    for student, report in graded.items():
        if report.scores:
            assert float(rows[student]["raw_score"]) == pytest.approx(report.total()), student


def test_class_report_matches_the_gradebook(graded, course, postgres_url):
    from test_report import check_report_against_gradebook

    check_report_against_gradebook(course, postgres_url)


def test_formgrader_shows_the_graded_class(graded, course, postgres_url):
    from test_formgrader import check_formgrader_shows

    check_formgrader_shows(course, {s: graded[s].total() for s in ("reference", "blank")}, "reference", postgres_url)

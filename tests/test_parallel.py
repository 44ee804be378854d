"""Grading a class on Dask: the same scores as plain sequential `nbgrader autograde`, on SQLite and on
PostgreSQL; a worker killed mid-run loses no student; a rerun skips unchanged submissions. Grading is
deterministic: every regrade of a submission gives the same scores and the same feedback messages."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from grader import notebooks, parallel, pipeline, submissions
from grader.variants import variants_of

NOTEBOOK = "4_tsne"  # the quickest notebook to grade: the tests grade its submissions four times
MESSAGES: dict[str, dict[str, str]] = {}  # what each graded cell said after the first (sequential) autograde


def feedback_messages(course, student: str) -> dict[str, str]:
    """The text of every graded cell of a student's autograded notebook (the kernel's output and the verdict)."""
    notebook = notebooks.read(course / "autograded" / student / pipeline.ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    return {grade_id: "".join(output.get("text", "") + "".join(output.get("data", {}).get("text/plain", ""))
                              + output.get("evalue", "") for output in cell.get("outputs", []))
            for grade_id, cell in notebooks.cells_by_grade_id(notebook).items()
            if cell.metadata["nbgrader"].get("grade")}


@pytest.fixture(scope="module")
def students(course) -> list[str]:
    """A reference, a blank and two wrong submissions of one notebook, in the shared test course."""
    reference = pipeline.train_reference(NOTEBOOK)
    submissions.submit_reference(course, "par-reference", NOTEBOOK, reference)
    submissions.submit_blank(course, "par-blank", NOTEBOOK)
    variants = {variant.name: variant for variant in variants_of(NOTEBOOK).VARIANTS}
    wrong = variants_of(NOTEBOOK).DEMO[:2]
    for name in wrong:
        submissions.submit_variant(course, f"par-{name}", variants[name], reference)
    return ["par-reference", "par-blank", *(f"par-{name}" for name in wrong)]


@pytest.fixture(scope="module")
def sequential(course, students) -> dict[str, dict]:
    """Scores from plain `nbgrader autograde`, one student after another, into the course's SQLite gradebook."""
    graded = {}
    for student in students:
        graded[student] = pipeline.autograde(course, student).scores
        MESSAGES[student] = feedback_messages(course, student)
    return graded


def scores(run: parallel.ClassRun) -> dict[str, dict]:
    """Scores per student of a class run."""
    return {report.student: report.scores for report in run.reports}


def test_sequential_grades_differ_between_students(sequential):
    totals = {student: sum(sum(cells.values()) for cells in notebook_scores.values())
              for student, notebook_scores in sequential.items()}
    assert totals["par-reference"] > max(t for s, t in totals.items() if s != "par-reference") >= 0
    assert all(sequential.values()), "a student has no grade at all"


def test_parallel_on_sqlite_equals_sequential(course, students, sequential):
    run = parallel.grade_class(course, students, workers=2, force=True, progress=False)
    assert not run.errors and not run.skipped
    assert scores(run) == sequential


def test_regrading_gives_the_same_feedback_messages(course, students, sequential):
    # the students were graded again (in parallel) by the test above: every graded cell says the same
    assert {student: feedback_messages(course, student) for student in students} == MESSAGES
    failing = [text for text in MESSAGES["par-" + variants_of(NOTEBOOK).DEMO[0]].values() if "Hidden tests passed" not in text]
    assert failing, "the wrong submission has no failing message, so this compares nothing"


def test_a_rerun_skips_unchanged_submissions(course, students, sequential):
    # every student was just graded into the SQLite gradebook by test_parallel_on_sqlite_equals_sequential
    again = parallel.grade_class(course, students, workers=2, progress=False)
    assert again.skipped == students and scores(again) == sequential
    changed = course / "submitted" / "par-blank" / pipeline.ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    changed.write_text(changed.read_text() + "\n")
    after_change = parallel.grade_class(course, students, workers=2, progress=False)
    assert after_change.skipped == [s for s in students if s != "par-blank"]
    assert scores(after_change) == sequential
    forced = parallel.grade_class(course, students[:1], workers=1, force=True, progress=False)
    assert forced.skipped == [] and scores(forced) == {students[0]: sequential[students[0]]}


def test_export_csv_has_every_graded_student(course, students, sequential, tmp_path):
    import csv

    parallel.grade_class(course, students, workers=2, progress=False)
    rows = {row["student_id"]: row for row in csv.DictReader(parallel.export_csv(course, tmp_path / "g.csv").open())}
    for student in students:
        total = sum(sum(cells.values()) for cells in sequential[student].values())
        assert float(rows[student]["raw_score"]) == pytest.approx(total)


def test_parallel_on_postgresql_with_a_killed_worker_equals_sequential(course, students, sequential, postgres_url):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=0, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        killed: list[int] = []

        def kill_a_busy_worker() -> None:
            deadline = time.time() + 120
            while time.time() < deadline and not killed:
                busy = [address for address, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(3)  # its nbgrader process is under way
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.2)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        run = parallel.grade_class(course, students, scheduler=cluster.scheduler_address, db_url=postgres_url,
                                   force=True, progress=False)
        killer.join()
    assert killed, "no worker was killed, so this tests nothing"
    assert [report.student for report in run.reports] == students
    assert not run.errors, [report.error for report in run.errors]
    assert scores(run) == sequential
    assert {s: pipeline.read_scores(course, s, postgres_url) for s in students} == sequential

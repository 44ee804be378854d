"""Grading a class on Dask: the same scores as plain sequential `nbgrader autograde`, on SQLite and on
PostgreSQL; a worker killed mid-run loses no student; a rerun skips unchanged submissions."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from grader import parallel, pipeline, submissions
from grader.variants import variants_of

NOTEBOOK = "4_tsne"  # the quickest notebook to grade: the tests grade its submissions four times


@pytest.fixture(scope="module")
def students(course) -> list[str]:
    """A reference, a blank and a wrong submission of one notebook, in the shared test course."""
    reference = pipeline.train_reference(NOTEBOOK)
    submissions.submit_reference(course, "par-reference", NOTEBOOK, reference)
    submissions.submit_blank(course, "par-blank", NOTEBOOK)
    variants = {variant.name: variant for variant in variants_of(NOTEBOOK).VARIANTS}
    wrong = variants_of(NOTEBOOK).DEMO[0]
    submissions.submit_variant(course, f"par-{wrong}", variants[wrong], reference)
    return ["par-reference", "par-blank", f"par-{wrong}"]


@pytest.fixture(scope="module")
def sequential(course, students) -> dict[str, dict]:
    """Scores from plain `nbgrader autograde`, one student after another, into the course's SQLite gradebook."""
    return {student: pipeline.autograde(course, student).scores for student in students}


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

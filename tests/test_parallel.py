"""Grading a class on Dask: the same scores as plain sequential `nbgrader autograde`, on SQLite and on
PostgreSQL; a worker killed mid-run loses no student; a rerun skips unchanged submissions. Grading is
deterministic: every regrade of a submission gives the same scores and the same feedback messages."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader import notebooks, parallel, pipeline, submissions
from grader.variants import variants_of
from cluster import DaskProcesses, wait_until_no_grading

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
    """Scores from plain `nbgrader autograde`, one student after another, into the course's SQLite gradebook.

    Each is a fresh nbgrader process (`warm=False`); grading a class forks them from warm processes
    (grader/warm.py), and the tests below compare every score and graded cell's feedback with these.
    """
    graded = {}
    for student in students:
        graded[student] = pipeline.autograde(course, student, warm=False).scores
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


def newest_run(course, since: float) -> parallel.RunState | None:
    """The run state of the newest `grade_class` run in `course` started after `since`."""
    folder = course / ".aecourse" / "runs"
    runs = [run for run in folder.iterdir() if run.stat().st_mtime >= since] if folder.exists() else []
    return parallel.RunState(max(runs, key=lambda run: run.stat().st_mtime)) if runs else None


def assert_one_grade_set_each(course, students, url=None) -> None:
    """Each student's gradebook entry is one full grade set and their autograded notebook says what the first
    (sequential) grading said."""
    from nbgrader.api import Gradebook

    graded = {path.stem: sum(1 for cell in notebooks.cells_by_grade_id(notebooks.read(path)).values()
                             if cell.metadata["nbgrader"].get("grade"))
              for path in (course / "release" / pipeline.ASSIGNMENT).glob("*.ipynb")}
    with Gradebook(url or f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        counts = {s: {nb.name: len(nb.grades) for nb in gradebook.find_submission(pipeline.ASSIGNMENT, s).notebooks}
                  for s in students}
    assert counts == {s: graded for s in students}
    assert {s: feedback_messages(course, s) for s in students} == {s: MESSAGES[s] for s in students}


def test_a_killed_worker_loses_no_student_and_regrades_none_it_finished(course, students, sequential, postgres_url):
    """Real `dask scheduler` and `dask worker` processes; the worker that finished a student is killed (its
    nanny with it) while it grades the next one."""
    from distributed import Client

    begun = time.time()
    with DaskProcesses(pipeline.grading_env()) as cluster:
        cluster.add_worker()
        cluster.add_worker()
        cluster.wait_for_workers(2)
        killed: dict[str, str] = {}

        def kill_a_worker_that_finished_a_student() -> None:
            deadline = time.time() + 300
            while time.time() < deadline and not killed:
                state = newest_run(course, begun)
                lasts = {s: state.attempts(s)[-1] for s in students if state and state.attempts(s)}
                for finished in [s for s in lasts if state.finished(s)]:
                    busy = [s for s, worker in lasts.items() if worker == lasts[finished] and not state.finished(s)]
                    if busy:
                        time.sleep(2)  # its nbgrader process is under way
                        with Client(cluster.address) as client:
                            pid = client.run(os.getpid, workers=[lasts[finished]])[lasts[finished]]
                        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker and its nanny
                        killed.update(worker=lasts[finished], finished=finished, busy=busy[0])
                        return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_a_worker_that_finished_a_student)
        killer.start()
        run = parallel.grade_class(course, students, scheduler=cluster.address, db_url=postgres_url, force=True,
                                   progress=False)
        killer.join()
        left = wait_until_no_grading(course)
        with Client(cluster.address) as client:  # the run's WarmStart plugin is gone with the run
            plugins = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
    assert parallel.WarmStart.name not in plugins
    assert killed, "no worker was killed, so this tests nothing"
    assert not left, f"grading processes outlived the command: {left}"
    assert [report.student for report in run.reports] == students
    assert not run.errors and not run.faults, [report.error for report in run.reports]
    assert run.retried == {killed["busy"]: [killed["worker"]]} and run.lost_workers == [killed["worker"]]
    assert newest_run(course, begun).attempts(killed["finished"]) == [killed["worker"]], "a finished student regraded"
    assert scores(run) == sequential
    assert {s: pipeline.read_scores(course, s, postgres_url) for s in students} == sequential
    assert_one_grade_set_each(course, students, postgres_url)


def interruptible() -> None:
    """In the child: SIGINT's default, as at a terminal (a background shell that ran the suite ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_every_grading_records_the_finished_and_a_rerun_resumes(course, students, sequential):
    """`aecourse autograde` on a real Dask cluster, sent SIGINT (Ctrl-C) once a student is graded."""
    begun = time.time()
    with DaskProcesses(pipeline.grading_env()) as cluster:
        workers = [cluster.add_worker(), cluster.add_worker()]
        cluster.wait_for_workers(2)
        client = subprocess.Popen([str(Path(sys.executable).parent / "aecourse"), "autograde", *students,
                                   "--course", str(course), "--scheduler", cluster.address, "--force"],
                                  env=pipeline.grading_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, preexec_fn=interruptible)
        deadline = time.time() + 300
        while time.time() < deadline and not ((state := newest_run(course, begun))
                                              and any(state.finished(s) for s in students)):
            time.sleep(0.2)
        client.send_signal(signal.SIGINT)
        output, _ = client.communicate(timeout=180)
        left = wait_until_no_grading(course, seconds=5)
        assert all(worker.poll() is None for worker in workers), "a worker died of the client's Ctrl-C"
        graded = {s: pipeline.read_scores(course, s) for s in students}
        resumed = parallel.grade_class(course, students, scheduler=cluster.address, progress=False)
    assert client.returncode == 130, output
    assert "INTERRUPTED" in output and "To resume, run the same `aecourse autograde` command again" in output, output
    assert "Traceback" not in output, output
    assert not left, f"grading processes outlived the command: {left}"
    reports = {s: state.finished(s) for s in students}
    finished = [s for s in students if reports[s] and not reports[s].interrupted]
    stopped = [s for s in students if reports[s] and reports[s].interrupted]
    assert finished and stopped, reports
    assert all(graded[s] == sequential[s] for s in finished), "a score recorded before Ctrl-C differs"
    assert all(graded[s] == {} for s in stopped), "a student whose grading was stopped kept a score"
    assert resumed.skipped == finished and not resumed.errors
    assert scores(resumed) == sequential
    assert_one_grade_set_each(course, students)

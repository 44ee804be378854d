"""Benchmark: grading a class, plain sequential `nbgrader autograde` beside `aecourse autograde` on Dask.

    AUTOENCODERS_DATA_DIR=../shared/data AUTOENCODERS_OFFLINE_SPLIT=1 \\
        .venv/bin/python benchmarks/bench_class.py --students 24

Grades the same submissions (one notebook each, 4_tsne: the reference, the blank release and its
known-wrong variants, repeated up to --students) three ways in one run and prints students per hour
and the ratios. Then measures what scale-out would add per student: the Dask scheduler's overhead
per task on a local cluster of several worker processes, and one student's gradebook write into
SQLite (serialised) and PostgreSQL (when --postgres gives a server). It asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import parallel, pipeline, submissions  # noqa: E402
from grader.variants import variants_of  # noqa: E402

NOTEBOOK = "4_tsne"


def make_course(folder: Path, count: int) -> tuple[Path, list[str]]:
    """A course holding `count` one-notebook submissions: reference, blank and wrong variants in turn."""
    root = pipeline.prepare_course(folder)
    (root / ".aecourse_secret").write_text("benchmark-secret")
    pipeline.generate_release(root)
    reference = pipeline.train_reference(NOTEBOOK)
    wrong = [v for v in variants_of(NOTEBOOK).VARIANTS if v.fails and not v.retrain]
    students = []
    for index in range(count):
        student = f"s{index:03d}"
        kind = index % (2 + len(wrong))
        if kind == 0:
            submissions.submit_reference(root, student, NOTEBOOK, reference)
        elif kind == 1:
            submissions.submit_blank(root, student, NOTEBOOK)
        else:
            submissions.submit_variant(root, student, wrong[kind - 2], reference)
        students.append(student)
    return root, students


def plain_nbgrader(root: Path) -> float:
    """Seconds for one `nbgrader autograde` of every student (nbgrader's own loop, one process)."""
    started = time.time()
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", pipeline.ASSIGNMENT, "--force"], cwd=root,
                   env=pipeline.grading_env(), capture_output=True, check=True)
    return time.time() - started


def dask_grading(root: Path, students: list[str], workers: int) -> float:
    """Seconds for `aecourse autograde --workers N --force` of every student."""
    started = time.time()
    run = parallel.grade_class(root, students, workers=workers, force=True, progress=False)
    if run.errors:
        print(f"  ({len(run.errors)} student(s) with errors)")
    return time.time() - started


def totals(root: Path, students: list[str]) -> list[float]:
    """Each student's total score in the course's gradebook."""
    return [sum(sum(c.values()) for c in pipeline.read_scores(root, s).values()) for s in students]


def scheduler_overhead(workers: int, tasks: int = 2000) -> float:
    """Milliseconds per task the Dask scheduler adds (no-op tasks on a local cluster of `workers` processes)."""
    from distributed import Client, LocalCluster, wait

    with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=0, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(int, 0).result()  # warm up
        started = time.time()
        wait(client.map(int, range(tasks), pure=False))
        return 1000 * (time.time() - started) / tasks


def gradebook_write(db_url: str, students: int = 40) -> float:
    """Milliseconds to record one student's grades (every grade cell of the assignment) in a gradebook."""
    from nbgrader.api import Gradebook

    pipeline.with_tools_on_path(os.environ)
    with Gradebook(db_url) as gradebook:
        cells = [(nb.name, cell.name) for nb in gradebook.find_assignment(pipeline.ASSIGNMENT).notebooks
                 for cell in nb.grade_cells]
        started = time.time()
        for index in range(students):
            student = f"write{index:04d}-{time.time_ns()}"
            gradebook.add_student(student)
            gradebook.add_submission(pipeline.ASSIGNMENT, student)
            for notebook, cell in cells:
                grade = gradebook.find_grade(cell, notebook, pipeline.ASSIGNMENT, student)
                grade.auto_score = 1.0
            gradebook.db.commit()
        return 1000 * (time.time() - started) / students


def main() -> None:
    """Grade the class three ways, then measure the per-student costs of scale-out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=24)
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure gradebook writes against (optional)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, students = make_course(Path(tmp) / "course", args.students)
        figures = {"plain nbgrader autograde (sequential)": plain_nbgrader(root)}
        expected = totals(root, students)
        for workers in (1, 2):
            figures[f"aecourse autograde --workers {workers}"] = dask_grading(root, students, workers)
            assert totals(root, students) == expected, "parallel grading changed a score"
        base = figures["plain nbgrader autograde (sequential)"]
        print(f"{len(students)} one-notebook submissions ({NOTEBOOK}) on {os.cpu_count()} cores; "
              f"identical scores in every mode (mean {statistics.mean(expected):.2f})")
        for label, seconds in figures.items():
            print(f"  {label:40s} {seconds:7.1f} s  {3600 * len(students) / seconds:7.0f} students/hour  "
                  f"x{base / seconds:.2f}")
        print("scale-out, per student:")
        for workers in (2, 4, 8):
            print(f"  Dask scheduler overhead, {workers} worker processes: {scheduler_overhead(workers):.2f} ms/task")
        writes = Path(tmp) / "writes.db"
        shutil.copy(root / "gradebook.db", writes)
        print(f"  gradebook write, SQLite: {gradebook_write(f'sqlite:///{writes}'):.1f} ms/student")
        if args.postgres:
            parallel.ensure_assignment(root, args.postgres)
            print(f"  gradebook write, PostgreSQL: {gradebook_write(args.postgres):.1f} ms/student")


if __name__ == "__main__":
    main()

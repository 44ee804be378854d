"""Benchmark: grading a class, plain sequential `nbgrader autograde` beside `aecourse autograde` on Dask.

    AUTOENCODERS_DATA_DIR=../shared/data AUTOENCODERS_OFFLINE_SPLIT=1 \\
        .venv/bin/python benchmarks/bench_class.py --students 12 --complete 4

Grades the same submissions four ways in one run: plain sequential `nbgrader autograde` (one process
for the class), `aecourse autograde --workers 1` and `--workers 2` (warm grading processes, the
default) and `--workers 2 --cold` (a fresh nbgrader process per student, as before). Two classes:
`--students` one-notebook submissions (4_tsne: the reference, the blank release and its known-wrong
variants in turn) and `--complete` complete ones (all five notebooks: the reference, the blank release,
and the reference with one known-wrong notebook, in turn). Prints students per hour, ratios, and the
fixed cost per student: a blank student's grading time minus the time its kernels ran (for plain
nbgrader: the run's time minus its kernels' time, per student), the kernels' seconds in all (the
part of the work that does not depend on the grading mode), and what each `aecourse autograde` run
costs once besides its students (the cluster's start and close, the workers' warm processes). Then
measures what scale-out would add per student: the Dask scheduler's overhead per task, and one
student's gradebook write into SQLite (and PostgreSQL when --postgres gives a server). It asserts
nothing but identical scores.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import parallel, pipeline, submissions  # noqa: E402
from grader.checks import MODULES  # noqa: E402
from grader.sandbox import KERNEL_TIME_LOG  # noqa: E402
from grader.variants import variants_of  # noqa: E402

NOTEBOOK = "4_tsne"


def one_notebook_class(folder: Path, count: int) -> tuple[Path, list[str], list[str]]:
    """A course of `count` one-notebook submissions: reference, blank and wrong variants in turn; and its blanks."""
    root = new_course(folder)
    reference = pipeline.train_reference(NOTEBOOK)
    wrong = [v for v in variants_of(NOTEBOOK).VARIANTS if v.fails and not v.retrain]
    students, blanks = [], []
    for index in range(count):
        student = f"s{index:03d}"
        kind = index % (2 + len(wrong))
        if kind == 0:
            submissions.submit_reference(root, student, NOTEBOOK, reference)
        elif kind == 1:
            submissions.submit_blank(root, student, NOTEBOOK)
            blanks.append(student)
        else:
            submissions.submit_variant(root, student, wrong[kind - 2], reference)
        students.append(student)
    return root, students, blanks


def complete_class(folder: Path, count: int) -> tuple[Path, list[str], list[str]]:
    """A course of `count` complete submissions: the reference, the blank release, one wrong notebook, in turn."""
    root = new_course(folder)
    names = sorted(MODULES)
    references = {name: pipeline.train_reference(name) for name in names}
    wrong = [v for name in names for v in variants_of(name).VARIANTS if v.fails and not v.retrain and not v.files]
    students, blanks = [], []
    for index in range(count):
        student = f"c{index:03d}"
        kind = index % 3
        if kind == 1:
            for position, name in enumerate(names):
                submissions.submit_blank(root, student, name, fresh=position == 0)
            blanks.append(student)
        else:
            variant = wrong[(index // 3) % len(wrong)] if kind == 2 else None
            if variant:  # first: it empties the student's folder
                submissions.submit_variant(root, student, variant, references[variant.notebook])
            for position, name in enumerate(names):
                if not variant or name != variant.notebook:
                    submissions.submit_reference(root, student, name, references[name], fresh=position == 0 and not variant)
        students.append(student)
    return root, students, blanks


def new_course(folder: Path) -> Path:
    """An empty course with the release generated."""
    root = pipeline.prepare_course(folder)
    (root / ".aecourse_secret").write_text("benchmark-secret")
    pipeline.generate_release(root)
    return root


def plain_nbgrader(root: Path, students: list[str]) -> tuple[float, float, float]:
    """Seconds for one `nbgrader autograde` of every student (nbgrader's own loop, one process), its fixed cost per
    student (the run's time minus the time its kernels ran, per student) and its kernels' seconds."""
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", pipeline.ASSIGNMENT, "--force"],
                            cwd=root, env=pipeline.grading_env(), capture_output=True, text=True, check=True)
    seconds = time.time() - started
    kernels = sum(map(float, re.findall(rf"{KERNEL_TIME_LOG} ([\d.]+) s", result.stderr)))
    return seconds, (seconds - kernels) / len(students), kernels


def dask_grading(root: Path, students: list[str], blanks: list[str], workers: int,
                 warm: bool) -> tuple[float, float, float]:
    """Seconds for `aecourse autograde --workers N --force [--cold]` of every student, the fixed cost per student
    (a blank student's grading time minus its kernels' time, the mean over the blanks) and the kernels' seconds."""
    started = time.time()
    run = parallel.grade_class(root, students, workers=workers, force=True, progress=False, warm=warm)
    seconds = time.time() - started
    if run.errors or run.faults:
        print(f"  ({len(run.errors) + len(run.faults)} student(s) with errors or faults)")
    fixed = [r.seconds - r.kernel_seconds for r in run.reports if r.student in blanks]
    return seconds, statistics.mean(fixed), sum(r.kernel_seconds for r in run.reports)


def run_startup(root: Path, blank: str, workers: int, warm: bool) -> float:
    """Seconds one `aecourse autograde` run spends besides grading: a class of one blank student's wall time
    minus that student's grading time (the cluster's start and close, the workers' warm processes)."""
    started = time.time()
    run = parallel.grade_class(root, [blank], workers=workers, force=True, progress=False, warm=warm)
    return time.time() - started - run.reports[0].seconds


def totals(root: Path, students: list[str]) -> list[float]:
    """Each student's total score in the course's gradebook."""
    return [sum(sum(c.values()) for c in pipeline.read_scores(root, s).values()) for s in students]


def grade_four_ways(root: Path, students: list[str], blanks: list[str], label: str, startup: bool = True) -> None:
    """Grade the class four ways and print the table (and each mode's start-up per run when `startup`)."""
    figures = {"plain nbgrader autograde (sequential)": plain_nbgrader(root, students)}
    expected = totals(root, students)
    for workers, warm in ((1, True), (2, True), (2, False)):
        figures[f"aecourse autograde --workers {workers}" + ("" if warm else " --cold")] = \
            dask_grading(root, students, blanks, workers, warm)
        assert totals(root, students) == expected, "parallel grading changed a score"
    base = figures["plain nbgrader autograde (sequential)"][0]
    print(f"{len(students)} {label} on {os.cpu_count()} cores; identical scores in every mode "
          f"(mean {statistics.mean(expected):.2f})")
    print(f"  {'mode':42s} {'seconds':>8s} {'students/h':>10s} {'vs plain':>8s} {'fixed s/student':>15s} "
          f"{'kernels s':>9s}")
    for mode, (seconds, fixed, kernels) in figures.items():
        print(f"  {mode:42s} {seconds:8.1f} {3600 * len(students) / seconds:10.0f} {base / seconds:8.2f} "
              f"{fixed:15.2f} {kernels:9.1f}")
    if not startup:
        return
    startups = [f"--workers {w}{'' if warm else ' --cold'} {run_startup(root, blanks[0], w, warm):.1f} s"
                for w, warm in ((1, True), (2, True), (2, False))]
    print(f"  start-up per run (a class of one blank student, minus its grading): {'; '.join(startups)}")


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
    """Grade both classes four ways, then measure the per-student costs of scale-out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=12, help="one-notebook submissions (0: none)")
    parser.add_argument("--complete", type=int, default=4, help="complete submissions (0: none)")
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure gradebook writes against (optional)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.students:
            grade_four_ways(*one_notebook_class(Path(tmp) / "one", args.students), f"one-notebook submissions ({NOTEBOOK})")
        if args.complete:
            grade_four_ways(*complete_class(Path(tmp) / "complete", args.complete), "complete submissions (5 notebooks)",
                            startup=not args.students)
        root = Path(tmp) / ("one" if args.students else "complete")
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

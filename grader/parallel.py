"""Grading a whole class: every student an independent Dask task, scores in nbgrader's gradebook.

    run = grade_class(root, students, workers=2)                    # a LocalCluster on this machine
    run = grade_class(root, students, scheduler="tcp://host:8786",  # an existing Dask cluster, whose
                      db_url="postgresql://...")                    # workers see `root` at the same path

Each task runs `nbgrader autograde` for one student in its own process (`pipeline.autograde`), with
the sandbox and limits of grader/sandbox.py, so a crash, a timeout or a lost worker costs only that
student: a task whose nbgrader process died is retried once; a task whose worker was lost (nbgrader
dies with it) is started once more, whatever the scheduler's `allowed-failures`, then reported as a
grading fault (grader/faults.py: no score, retried by the next run). Reports are recorded as they
arrive; the run's folder (`RunState`, shared by client and workers) makes a task started again
after its student finished return that report instead of grading again, and no task grade once the
command has returned. Ctrl-C stops every task's nbgrader and kernels, records the students already
graded and raises `GradingInterrupted`; a rerun resumes. Each task carries the client's grading
settings (grader/settings.py); a worker that cannot match them grades nobody. What was graded, from
which submission, under which settings, is kept in `grading_record.json`; a rerun grades only students
whose grade could change (`force=True` regrades all; `dry_run=True` only says who and why).
Before anything reads a submission, every student id is validated and every submission checked
(grader/submitted.py): a student with an invalid id, or with a link, a FIFO, a device, a hard link or
an oversized file in the submission, is not graded but reported with the reason; nothing of theirs is
read, changed or deleted, and the next run checks them again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from distributed.diagnostics.plugin import WorkerPlugin
from tqdm import tqdm

from grader import pipeline
from grader import settings as grading_settings
from grader.pipeline import ASSIGNMENT, GradeReport
from grader.settings import GradingSettings
from grader.submitted import (MAX_JSON_BYTES, UnreadableFile, is_valid_student_id, read_json_file,
                              submission_bytes, submission_digest, submission_problems)

RECORD_FILE = "grading_record.json"
SQLITE_WAIT = 600  # seconds a gradebook writer waits for SQLite's lock instead of failing "database is locked"


# --- the gradebook -------------------------------------------------------------------------------

def gradebook_url(root: Path, db_url: str | None = None) -> str:
    """The gradebook to grade into: `db_url` (e.g. PostgreSQL), else the course's SQLite file with writers queued."""
    return db_url or f"sqlite:///{Path(root).resolve() / 'gradebook.db'}?timeout={SQLITE_WAIT}"


def ensure_assignment(root: Path, db_url: str) -> None:
    """Put the assignment and its grade cells into the gradebook `db_url` when it lacks them (a new database)."""
    from nbgrader.api import Gradebook, MissingEntry

    pipeline.with_tools_on_path(os.environ)
    with Gradebook(db_url) as gradebook:
        try:
            known = bool(gradebook.find_assignment(ASSIGNMENT).notebooks)
        except MissingEntry:
            known = False
    if not known:
        pipeline.nbgrader(root, "generate_assignment", ASSIGNMENT, "--force", f"--CourseDirectory.db_url={db_url}")


def export_csv(root: Path, path: Path, db_url: str | None = None) -> Path:
    """Write every student's score with `nbgrader export` (its CSV format) to `path`."""
    path = Path(path).resolve()
    pipeline.nbgrader(root, "export", f"--to={path}", f"--CourseDirectory.db_url={gradebook_url(root, db_url)}")
    return path


# --- what was graded -----------------------------------------------------------------------------

def url_id(url: str) -> str:
    """A short name for a gradebook URL that does not reveal its password."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass
class GradingRecord:
    """Per student: the digest of the submission last graded, how long it took and any error."""
    path: Path
    students: dict[str, dict] = field(default_factory=dict)
    settings: dict[str, dict] = field(default_factory=dict)  # digest: the GradingSettings it stands for

    @classmethod
    def load(cls, root: Path) -> "GradingRecord":
        """The record of the course `root` (empty when there is none or it is unreadable)."""
        path = Path(root) / RECORD_FILE
        try:
            data = read_json_file(path, MAX_JSON_BYTES)
        except UnreadableFile:
            data = {}
        students = data.get("students") if isinstance(data, dict) else None
        settings = data.get("settings") if isinstance(data, dict) else None
        return cls(path, {student: entry for student, entry in students.items() if isinstance(entry, dict)}
                   if isinstance(students, dict) else {},
                   {key: value for key, value in settings.items() if isinstance(value, dict)}
                   if isinstance(settings, dict) else {})

    def why_regrade(self, student: str, digest: str, wanted: GradingSettings, gradebook: str) -> str:
        """Why the student must be graded again under `wanted` (empty when their grade is up to date)."""
        entry = self.students.get(student)
        if not entry:
            return "never graded"
        if entry.get("gradebook") != url_id(gradebook):
            return "graded into another gradebook"
        if entry.get("fault"):
            return f"the last grading failed on the grading side ({str(entry['fault'])[:200]})"
        if entry.get("interrupted"):
            return "its last grading was interrupted"
        if entry.get("error"):
            return "the last grading ended with an error"
        if entry.get("digest") != digest:
            return "the submission changed"
        if entry.get("settings") != wanted.digest():
            earlier = self.settings.get(str(entry.get("settings")))
            changed = wanted.changes_from(GradingSettings(**earlier) if earlier else None)
            return "graded under other settings: " + ", ".join(changed)
        return ""

    def note(self, report: GradeReport, digest: str | None, gradebook: str,
             settings: GradingSettings | None = None) -> None:
        """Record one student's grading (`digest` None: rejected, not graded) and write the record at once."""
        self.students[report.student] = {
            "digest": digest, "gradebook": url_id(gradebook), "error": report.error, "fault": report.fault,
            "interrupted": bool(report.interrupted),
            "settings": settings.digest() if settings else None,
            "seconds": round(report.seconds, 2) if digest is not None else None,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if settings:
            self.settings[settings.digest()] = dataclasses.asdict(settings)
        used = {entry.get("settings") for entry in self.students.values()}
        self.settings = {key: value for key, value in self.settings.items() if key in used}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"students": self.students, "settings": self.settings}, indent=1,
                                        sort_keys=True))
        temporary.replace(self.path)


# --- one task ------------------------------------------------------------------------------------

@contextlib.contextmanager
def student_lock(root: Path, student: str) -> Iterator[int]:
    """Hold an exclusive lock on one student's grading; the fd is passed to nbgrader, whose lifetime keeps it.

    A worker that dies leaves its nbgrader process running; the retry waits for it instead of
    writing the same autograded folder at the same time.
    """
    folder = Path(root) / ".aecourse" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{student}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


@dataclass
class RunState:
    """One `grade_class` run, seen alike by the client and every worker (in the course folder, which they share).

    `attempts/<student>.jsonl`: a line per start of the student's task, naming its worker;
    `finished/<student>.json`: the report of the attempt that finished; `stop`: the client stopped the
    run (Ctrl-C, or it returned). A task started again after its worker was lost grades only when no
    attempt finished and fewer than `MAX_ATTEMPTS` started; once the run is stopped, none grades.
    """
    folder: Path

    @classmethod
    def new(cls, root: Path) -> "RunState":
        """A fresh run of the course `root` (runs older than a week are removed)."""
        runs = Path(root) / ".aecourse" / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        for old in runs.iterdir():
            if old.is_dir() and not old.is_symlink() and time.time() - old.stat().st_mtime > 7 * 86400:
                shutil.rmtree(old, ignore_errors=True)
        folder = runs / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.time_ns() % 10**9}"
        (folder / "attempts").mkdir(parents=True)
        (folder / "finished").mkdir()
        return cls(folder)

    def stop(self) -> None:
        """Tell every task of this run to stop grading."""
        (self.folder / "stop").touch()

    def stopped(self) -> bool:
        """Whether the client stopped this run."""
        return (self.folder / "stop").exists()

    def attempts(self, student: str) -> list[str]:
        """The workers the student's task was started on, in order."""
        try:
            return (self.folder / "attempts" / f"{student}.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return []

    def start(self, student: str, worker: str) -> None:
        """Note that the student's task started on `worker`."""
        with open(self.folder / "attempts" / f"{student}.jsonl", "a") as attempts:
            attempts.write(worker + "\n")

    def lost_workers(self, student: str) -> list[str]:
        """The workers lost while they graded the student (every attempt's but the one that finished)."""
        attempts = self.attempts(student)
        return attempts[:-1] if self.finished(student) else attempts

    def finish(self, report: GradeReport) -> None:
        """Keep the report of the student's finished grading."""
        path = self.folder / "finished" / f"{report.student}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(report)))
        temporary.replace(path)

    def finished(self, student: str) -> GradeReport | None:
        """The report of the student's finished grading in this run, if there is one."""
        try:
            return GradeReport(**json.loads((self.folder / "finished" / f"{student}.json").read_text()))
        except FileNotFoundError:
            return None


MAX_ATTEMPTS = 2  # a task whose worker was lost is started once more, whatever the scheduler's allowed-failures


def worker_name() -> str:
    """The address of the Dask worker running this task (host and pid outside one)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"


def grade_student(root: str, student: str, options: dict, wanted: GradingSettings, run: str) -> GradeReport:
    """Autograde one student (a Dask task of the run in folder `run`) under the client's settings.

    An nbgrader process that died without grading is retried once. A worker whose data or grader differ
    from the client's grades nobody. A task started again after a lost worker returns the report of an
    attempt that finished instead of grading again.
    """
    state = RunState(Path(run))
    if state.stopped():
        return GradeReport(student, error=pipeline.INTERRUPTED, interrupted=pipeline.INTERRUPTED)
    earlier = state.finished(student)
    if earlier:
        return earlier
    lost = state.attempts(student)
    if len(lost) >= MAX_ATTEMPTS:
        pipeline.remove_submission(Path(root), student, options.get("db_url"))
        fault = f"the grading task was started {len(lost)} times and lost its worker each time ({', '.join(lost)})"
        return GradeReport(student, error=fault, fault=fault)
    state.start(student, worker_name())
    found = grading_settings.problems(Path(root), wanted)
    if found:
        pipeline.remove_submission(Path(root), student, options.get("db_url"))
        fault = f"worker {socket.gethostname()} refused to grade: " + "; ".join(found)
        report = GradeReport(student, error=fault, fault=fault)
    else:
        environment = {name: wanted.environment.get(name) for name in grading_settings.DECIDING_VARIABLES}
        with student_lock(Path(root), student) as fd:
            grade = functools.partial(pipeline.autograde, Path(root), student, pass_fds=(fd,),
                                      environment=environment, stop=state.stopped, **options)
            report = grade()
            if report.error and not report.scores and not report.fault and not report.interrupted:
                report = grade()
    state.finish(report)
    return report


# --- the class -----------------------------------------------------------------------------------

@dataclass
class ClassRun:
    """The outcome of grading a class: one report per student, who was skipped as already graded, who was rejected."""
    reports: list[GradeReport]
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rejected: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # a dry run's: who would be graded, and why
    retried: dict[str, list[str]] = field(default_factory=dict)  # students graded again: the workers lost first

    @property
    def errors(self) -> list[GradeReport]:
        """Reports of students whose autograde failed or was cut short (grading faults not included)."""
        return [report for report in self.reports if report.error and not report.fault and not report.interrupted]

    @property
    def interrupted(self) -> list[GradeReport]:
        """Reports of students whose grading Ctrl-C stopped (or never started): no score, the next run grades them."""
        return [report for report in self.reports if report.interrupted]

    @property
    def lost_workers(self) -> list[str]:
        """Every worker lost while it graded a student."""
        return sorted({worker for lost in self.retried.values() for worker in lost})

    @property
    def faults(self) -> list[GradeReport]:
        """Reports of students left without a score by a grading fault (the next run retries them)."""
        return [report for report in self.reports if report.fault]


def known_scores(root: Path, student: str, url: str) -> dict[str, dict[str, float]]:
    """The student's scores in the gradebook `url` ({} for an invalid id or a course's SQLite file not made yet)."""
    if not is_valid_student_id(student):
        return {}
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///").split("?")[0]).exists():
        return {}  # opening it would create an empty gradebook
    return pipeline.read_scores(root, student, url)


def rejected(root: Path, student: str, url: str, problems: list[str]) -> GradeReport:
    """The report of a student who is not graded because of `problems`."""
    return GradeReport(student, known_scores(root, student, url), error="submission rejected: " + "; ".join(problems))


def check_class(root: Path, students: list[str], url: str) -> tuple[dict[str, str], dict[str, GradeReport]]:
    """Check every id and submission, then digest the ones that may be graded: (digests, reports of the rejected)."""
    reports = {}
    for student in students:
        problems = submission_problems(root, student)
        if problems:
            reports[student] = rejected(root, student, url, problems)
    digests = {}
    for student in students:
        if student in reports:
            continue
        try:
            digests[student] = submission_digest(root, student)
        except (OSError, UnreadableFile) as error:  # changed since it was checked
            reports[student] = rejected(root, student, url, [f"a file could not be read ({error})"])
    return digests, reports


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: of the cluster at `scheduler`, else of a LocalCluster of `workers` one-thread processes."""
    import dask
    from distributed import Client, LocalCluster

    # a task whose worker died is run once more, then fails with KilledWorker
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        if scheduler:
            with Client(scheduler) as client:
                yield client
            return
        count = workers or os.cpu_count() or 1
        # memory_limit=0: the kernels have their own limits (grader/sandbox.py); a worker only waits on nbgrader.
        # fork: a worker starts in 0.1 s with what this process imported (nbgrader's and the grader's modules)
        # instead of 5 s importing them again; it runs no torch, and nbgrader and kernels are new processes.
        with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}), \
                LocalCluster(n_workers=count, threads_per_worker=1, processes=True, memory_limit=0,
                             dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(ignore_interrupts)
            yield client


def ignore_interrupts() -> None:
    """Let a local worker outlive a Ctrl-C at the terminal: the client stops its tasks (`stop_run`), then it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def grade_class(root: Path, students: list[str], workers: int | None = None, scheduler: str | None = None,
                db_url: str | None = None, force: bool = False, threads: int | None = None,
                settings: dict[str, dict] | None = None, progress: bool = True, dry_run: bool = False,
                warm: bool = True, **options) -> ClassRun:
    """Autograde `students` of the course `root` as Dask tasks; reports come back in the order given.

    `threads`: torch threads per student graded (default: this machine's cores shared among `workers`
    local workers; 1 on a cluster). `settings` gives some students their own `pipeline.autograde`
    keyword arguments (a shorter timeout, say). `dry_run`: grade nobody, only say in `ClassRun.reasons`
    who would be graded and why. Ctrl-C stops every task and raises `GradingInterrupted` with what was
    graded and recorded before it. `warm`: each worker thread forks every student's nbgrader from its warm
    grading process (grader/warm.py); False starts a fresh one per student (the same grades, slower).
    """
    started = time.time()
    root = Path(root).resolve()
    url = gradebook_url(root, db_url)
    if db_url:
        ensure_assignment(root, url)
    record = GradingRecord.load(root)
    wanted = grading_settings.current(root)
    digests, done = check_class(root, students, url)
    if not dry_run:
        for report in done.values():
            if is_valid_student_id(report.student):
                record.note(report, None, url)  # not up to date: the next run checks the submission again
    if threads is None:
        threads = 1 if scheduler else max(1, (os.cpu_count() or 1) // (workers or os.cpu_count() or 1))
    reasons: dict[str, str] = {}
    for student in (s for s in students if s in digests):
        reasons[student] = "--force" if force else record.why_regrade(student, digests[student], wanted, url)
        if not reasons[student]:  # up to date: kept, unless the gradebook lost the score
            scores = pipeline.read_scores(root, student, url)
            done[student] = GradeReport(student, scores, seconds=record.students[student].get("seconds", 0.0))
            reasons[student] = "" if scores else "no score in the gradebook"
    todo = [s for s in students if reasons.get(s)]
    if dry_run:
        return ClassRun([done.get(s, GradeReport(s)) for s in students], skipped=[s for s in digests if s not in todo],
                        rejected=[s for s in students if s not in digests], reasons={s: reasons[s] for s in todo})
    state = RunState.new(root) if todo else None
    if todo:
        tasks = {student: (str(root), student, {**options, **(settings or {}).get(student, {}), "db_url": url,
                                                 "threads": threads, "warm": warm}, wanted, str(state.folder))
                 for student in longest_first(root, todo)}

        def keep(report: GradeReport) -> None:
            """Record a report the moment it arrives."""
            done[report.student] = report
            record.note(report, digests[report.student], url, wanted)

        try:
            with dask_client(workers, scheduler) as client:
                if warm:
                    client.register_plugin(WarmStart())
                try:
                    run_tasks(client, state, tasks, keep, progress)
                finally:  # a cluster's workers that join later are not warmed for a run that is over
                    if warm and scheduler:
                        with contextlib.suppress(Exception):
                            client.unregister_worker_plugin(WarmStart.name)
        except KeyboardInterrupt:
            raise GradingInterrupted(class_run(done, students, digests, todo, started, state)) from None
    return class_run(done, students, digests, todo, started, state)


def longest_first(root: Path, students: list[str]) -> list[str]:
    """`students` with the largest submissions first, so that a class ends on short tasks and no worker idles long."""
    def size(student: str) -> int:
        """The bytes a student submitted (0 when unreadable: its task reports why)."""
        try:
            return submission_bytes(root, student)
        except (OSError, ValueError):
            return 0
    return sorted(students, key=size, reverse=True)


class WarmStart(WorkerPlugin):
    """Start each worker's warm grading process when it joins, while the client prepares, not on its first student."""
    name = "aecourse-warm-start"

    def setup(self, worker) -> None:
        """Queue one warm start per worker thread in the executor the tasks run in (warm processes are per thread)."""
        for _ in range(worker.state.nthreads):
            worker.executors["default"].submit(pipeline.warm_up)


def run_tasks(client, state: RunState, tasks: dict[str, tuple], keep: Callable[[GradeReport], None],
              progress: bool) -> None:
    """Run the grading task of each student (`grade_student`'s arguments) and `keep` each report as it arrives.

    A task the scheduler gave up on (its workers lost) is started again while it has attempts left, then
    is a grading fault. Ctrl-C stops every task (`stop_run`) and is raised again.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    order = {student: len(tasks) - rank for rank, student in enumerate(tasks)}

    def submit(student: str):
        """Start the student's grading task (in the order of `tasks`)."""
        return client.submit(grade_student, *tasks[student], key=f"autograde-{student}-{time.time_ns()}",
                             pure=False, retries=1, priority=order[student])

    futures = {submit(student): student for student in tasks}
    started_again: set[str] = set()
    bar = tqdm(total=len(tasks), unit="student", desc="autograde", disable=not progress, file=sys.stderr)

    def arrived(future):
        """Keep a finished task's report; start a task the scheduler gave up on again (its new future returned)."""
        student = futures.pop(future)
        try:
            report = future.result()
        except Exception as error:
            # KilledWorker: the scheduler gave up after losing workers (its allowed-failures may be 0); the
            # task's own count of attempts decides. Any other exception is the task's: a fault at once.
            if (isinstance(error, KilledWorker) and student not in started_again
                    and len(state.attempts(student)) < MAX_ATTEMPTS and not state.stopped()):
                started_again.add(student)
                again = submit(student)
                futures[again] = student
                return again
            fault = f"the grading task failed: {type(error).__name__}: {str(error)[:500]}"
            root, _, options, _, _ = tasks[student]
            pipeline.remove_submission(Path(root), student, options["db_url"])
            report = GradeReport(student, error=fault, fault=fault)
        future.release()  # the scheduler forgets it: a worker lost later cannot make it grade again
        keep(report)
        bar.update(0 if report.interrupted else 1)
        return None

    try:
        completed = as_completed(list(futures))
        for future in completed:
            again = arrived(future)
            if again is not None:
                completed.add(again)
    except KeyboardInterrupt:
        stop_run(client, state, futures, arrived)
        raise
    finally:
        state.stop()  # no task grades after this command returns
        bar.close()


STOP_WAIT = 60  # seconds the client waits, after Ctrl-C, for running tasks to stop their nbgrader processes
STOP_POLL = 1.0


class GradingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `grade_class`; `run` holds what was graded and recorded before it."""

    def __init__(self, run: ClassRun):
        super().__init__("grading interrupted")
        self.run = run


def stop_run(client, state: RunState, futures: dict, arrived) -> None:
    """After Ctrl-C: stop every task, record those that end within `STOP_WAIT` s, cancel the rest."""
    from distributed import wait

    state.stop()
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    except ValueError:  # not the main thread
        previous = None
    try:
        deadline = time.time() + STOP_WAIT
        while time.time() < deadline and not all(future.done() for future in futures):
            with contextlib.suppress(Exception):
                if not any(client.processing().values()):  # every worker running a task is gone
                    break
                wait(list(futures), timeout=STOP_POLL)
        for future in [future for future in futures if future.done()]:
            arrived(future)
        client.cancel(list(futures))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def class_run(done: dict[str, GradeReport], students: list[str], digests: dict[str, str], todo: list[str],
              started: float, state: RunState | None) -> ClassRun:
    """The ClassRun of `students`: reports in the order given (a student left ungraded: interrupted)."""
    lost = {student: state.lost_workers(student) for student in todo} if state else {}
    retried = {student: workers for student, workers in lost.items() if workers}
    return ClassRun([done.get(s) or GradeReport(s, error=pipeline.INTERRUPTED, interrupted=pipeline.INTERRUPTED)
                     for s in students], seconds=time.time() - started,
                    skipped=[s for s in students if s in digests and s not in todo],
                    rejected=[s for s in students if s not in digests], retried=retried)

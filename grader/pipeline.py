"""The grading pipeline on a course directory: release, reference training, submissions, autograde, scores."""
from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
from nbclient import NotebookClient
from tqdm import tqdm

from aelib.data import offline_split
from grader import helper_answers, notebooks
from grader.faults import FAULT_FILE_ENV, read_faults
from grader.sandbox import KERNEL_TIME_LOG
from grader.variants import Variant
from grader.warm import WarmGraderDied, warm_grader

ASSIGNMENT = "autoencoders"
REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "source" / ASSIGNMENT
RELEASE = REPO / "release" / ASSIGNMENT
CACHE = REPO / ".cache"
# Offline mode (tests, CI and the demo: 8,000 training images) shortens training that no hidden test grades.
OFFLINE_SETTINGS = {"1_ae": {"AE2D_STEPS": "5_000"}}


# --- course directories --------------------------------------------------------------------------

def prepare_course(root: Path) -> Path:
    """Make `root` a course directory holding this repository's source and nbgrader config."""
    root = root.resolve()
    if root != REPO:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
        target = root / "source" / ASSIGNMENT
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("data", "__pycache__", "*.pth"))
    stale = notebooks.stale_sources(root / "source" / ASSIGNMENT)
    if stale:
        raise RuntimeError(f"source notebooks out of date with their .py sources: {stale}; run `aecourse build`")
    return root


def with_tools_on_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with this interpreter's bin folder first on PATH (nbgrader runs the `alembic` command)."""
    bin_dir = str(Path(sys.executable).parent)
    if env.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    return env


# A Dask nanny starts its worker process with MALLOC_TRIM_THRESHOLD_=65536 (freed memory goes back to the system at
# once). Kernels that inherited it ran 1.7 times as long (4_tsne: 16 s instead of 9.4 s): every large tensor became a
# fresh mmap. It is for the worker, not for what the worker starts.
WORKER_ONLY = ("MALLOC_TRIM_THRESHOLD_",)


def grading_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for nbgrader and its kernels (from `base`, default this process's): absolute data directory,
    no stray output."""
    env = with_tools_on_path(dict(os.environ if base is None else base))
    if env.get("AUTOENCODERS_DATA_DIR"):
        env["AUTOENCODERS_DATA_DIR"] = str(Path(env["AUTOENCODERS_DATA_DIR"]).resolve())
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["MPLBACKEND"] = "Agg"
    for name in WORKER_ONLY:
        env.pop(name, None)
    return env


def nbgrader(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one nbgrader command in the course directory `root`, capturing its log."""
    result = subprocess.run([sys.executable, "-m", "grader.nbgrader_cli", *args], cwd=root, env=grading_env(),
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def generate_release(root: Path) -> Path:
    """Run `nbgrader generate_assignment` and return the release folder."""
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root / "release" / ASSIGNMENT


def release_problems(release_dir: Path, source_dir: Path = SOURCE) -> list[str]:
    """Everything in a release that students must not see: solutions, hidden tests, grader code, answers in helpers."""
    problems = []
    for path in sorted(release_dir.rglob("*")):
        relative = path.relative_to(release_dir)
        if path.name in {"gradebook.db", "grader"} or path.suffix == ".pth" or path.match("[0-9]_*.py"):
            problems.append(f"{relative}: must not be released")
    for source_path in sorted(source_dir.glob("*.ipynb")):
        released = release_dir / source_path.name
        if not released.exists():
            problems.append(f"{source_path.name}: missing from the release")
            continue
        text = "\n".join(cell.source for cell in notebooks.read(released).cells)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "grader"):
            if marker in text:
                problems.append(f"{source_path.name}: contains {marker!r}")
        for line in secret_lines(notebooks.read(source_path)):
            if line in text:
                problems.append(f"{source_path.name}: contains the secret line {line!r}")
    if (release_dir / "aelib").is_dir():
        problems += helper_answers.answers_in_helpers(release_dir / "aelib", source_dir)
    return problems


def secret_lines(source_notebook: nbformat.NotebookNode) -> set[str]:
    """Distinctive lines of solution regions and hidden tests of a source notebook."""
    secrets = set()
    for cell in source_notebook.cells:
        for region in notebooks.HIDDEN.findall(cell.source) + notebooks.SOLUTION_REGION.findall(cell.source):
            secrets.update(line.strip() for line in region.splitlines()
                           if len(line.strip()) > 25 and "###" not in line)
    return secrets


# --- executing notebooks -------------------------------------------------------------------------

def execute(notebook: nbformat.NotebookNode, cwd: Path, label: str, timeout: int = 1800,
            threads: int | None = None) -> nbformat.NotebookNode:
    """Execute a notebook in `cwd` (torch on `threads` threads if given) with a progress bar over its cells."""
    code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
    env = grading_env()
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tqdm(total=code_cells, desc=label, unit="cell", file=sys.stdout) as bar:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}},
                                on_cell_complete=lambda cell, **_: bar.update(1))
        client.execute(env=env)
    return notebook


def training_notebook(source_notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of a source notebook whose guard cells no longer force skip_training (so it trains)."""
    notebook = nbformat.from_dict(source_notebook)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id", "").endswith("_guard"):
            cell.source = notebooks.strip_hidden_tests(cell.source)
    return notebook


def offline_settings(notebook: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """A copy of `notebook` with the constants of OFFLINE_SETTINGS set to their offline values (offline mode only)."""
    notebook = nbformat.from_dict(notebook)
    if not offline_split():
        return notebook
    for constant, value in OFFLINE_SETTINGS.get(name, {}).items():
        pattern = re.compile(rf"^{constant} = [^\n]*$", re.M)
        cells = [cell for cell in notebook.cells if cell.cell_type == "code" and pattern.search(cell.source)]
        if len(cells) != 1:
            raise RuntimeError(f"{name}: OFFLINE_SETTINGS names {constant}, assigned in {len(cells)} cells instead of one")
        cells[0].source = pattern.sub(f"{constant} = {value}  # offline mode: grader/pipeline.py OFFLINE_SETTINGS",
                                      cells[0].source)
    return notebook


def source_digest(name: str) -> str:
    """A hash of a notebook source and the helper code it runs, naming its reference checkpoints."""
    # Hidden tests do not change what the reference trains, so editing them keeps the cached checkpoints.
    digest = hashlib.sha256(notebooks.strip_hidden_tests((SOURCE / f"{name}.py").read_text()).encode())
    for helper in sorted((SOURCE / "aelib").glob("*.py")):
        digest.update(helper.read_bytes())
    digest.update(os.environ.get("AUTOENCODERS_OFFLINE_SPLIT", "").encode())
    digest.update(repr(OFFLINE_SETTINGS.get(name)).encode())
    return digest.hexdigest()[:16]


def cached(folder: Path, train: Callable[[Path], None]) -> Path:
    """`folder` once `train(folder)` has filled it; done once per folder, even by parallel processes."""
    done = folder / ".done"
    if done.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            train(folder)
            done.touch()
    return folder


def run_training(folder: Path, name: str, notebook: nbformat.NotebookNode, label: str,
                 threads: int | None = None) -> None:
    """Execute `notebook` (training on) in `folder` beside a copy of the helpers, and keep the executed notebook."""
    shutil.copytree(SOURCE / "aelib", folder / "aelib", ignore=shutil.ignore_patterns("__pycache__"))
    start = time.perf_counter()
    executed = execute(offline_settings(notebook, name), folder, label, threads=threads)
    notebooks.write(executed, folder / f"{name}.ipynb")
    print(f"{label}: {time.perf_counter() - start:.0f} s with {threads or 'all'} torch thread(s)")


def train_reference(name: str, cache: Path = CACHE / "reference", threads: int | None = None) -> Path:
    """Execute the reference solution of notebook `name` (training on), returning its folder of checkpoints.

    Its hidden tests collect without grading inputs (nothing is judged here); the test suite judges the reference.
    """
    notebook = training_notebook(notebooks.build_notebook(SOURCE / f"{name}.py"))
    folder = cached(cache / f"{name}-{source_digest(name)}",
                    lambda folder: run_training(folder, name, notebook, f"training the reference {name}", threads))
    keep_reference(name, folder)
    return folder


def keep_reference(name: str, checkpoints: Path) -> None:
    """Keep what the reference in `checkpoints` collects for the pictured checks of `name` (grader/judge/beside.py)."""
    from grader.judge import beside

    if beside.is_current(name):
        return
    beside.FOLDER.mkdir(parents=True, exist_ok=True)
    with open(beside.FOLDER / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if beside.is_current(name):
            return
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader.inprocess", name, str(checkpoints)], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"kept the reference {name}'s results for the feedback's pictures: {time.perf_counter() - start:.0f} s")


def train_variant(variant: Variant, cache: Path = CACHE / "variants", threads: int | None = None) -> Path:
    """Execute a variant's notebook as its student would (training on), returning its folder of checkpoints."""
    name = variant.notebook
    release = RELEASE / f"{name}.ipynb"
    digest = hashlib.sha256(f"{source_digest(name)}{sorted(variant.cells.items())}".encode())
    digest.update(release.read_bytes())
    notebook = fill_release(notebooks.read(release), notebooks.build_notebook(SOURCE / f"{name}.py"), variant.cells)
    return cached(cache / f"{name}-{variant.name}-{digest.hexdigest()[:16]}",
                  lambda folder: run_training(folder, name, notebook, f"training {name} {variant.name}", threads))


def train_all(names: list[str], variants: list[Variant], jobs: int = 2) -> dict[str, Path]:
    """Train the references of `names` and the `variants`, `jobs` notebooks at a time; folders by name."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # Longest first, so that no long run starts last while the other jobs sit idle: a retrained variant trains
    # more than its reference, and later notebooks train longer (measured: 5_conv_aae's variants 254 s,
    # 1_ae's reference 100 s).
    tasks = {f"{v.notebook}-{v.name}": functools.partial(train_variant, v, threads=threads)
             for v in sorted(variants, key=lambda v: v.notebook, reverse=True)}
    tasks.update({name: functools.partial(train_reference, name, threads=threads) for name in sorted(names, reverse=True)})
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {key: pool.submit(task) for key, task in tasks.items()}
        return {key: futures[key].result() for key in [*names, *(k for k in futures if k not in names)]}


# --- submissions ---------------------------------------------------------------------------------

def fill_release(release_notebook: nbformat.NotebookNode, source_notebook: nbformat.NotebookNode,
                 replacements: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """A student's notebook: the release with its solution cells answered by the reference or by `replacements`."""
    replacements = replacements or {}
    notebook = nbformat.from_dict(release_notebook)
    answers = notebooks.cells_by_grade_id(source_notebook)
    unknown = set(replacements) - set(answers)
    if unknown:
        raise KeyError(f"no solution cells named {sorted(unknown)}")
    for grade_id, cell in notebooks.cells_by_grade_id(notebook).items():
        if cell.metadata["nbgrader"].get("solution"):
            cell.source = replacements.get(grade_id, notebooks.solution_code(answers[grade_id].source))
    return notebook


def submit(root: Path, student: str, files: dict[str, nbformat.NotebookNode | Path | bytes],
           fresh: bool = True) -> Path:
    """Place a student's files in `submitted/<student>/<assignment>/` (emptied first when `fresh`)."""
    folder = root / "submitted" / student / ASSIGNMENT
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, nbformat.NotebookNode):
            notebooks.write(content, folder / name)
        elif isinstance(content, Path):
            shutil.copy(content, folder / name)
        else:
            (folder / name).write_bytes(content)
    return folder


# --- grading -------------------------------------------------------------------------------------

@dataclass
class GradeReport:
    """Autograde outcome of one student: scores per notebook and grade cell, any failure, and the time it took."""
    student: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    peak_mib: float = 0.0  # the nbgrader process's peak memory, as JudgeCollected logged it
    kernel_seconds: float = 0.0  # of `seconds`, those its notebooks' kernels ran (start, imports, cells)
    fault: str = ""        # a grading fault (grader/faults.py): no score was recorded, the next run retries
    interrupted: str = ""  # the grading was stopped (Ctrl-C): no score was recorded, the next run grades again

    def total(self, notebook: str | None = None) -> float:
        """Total score, of one notebook or of all."""
        chosen = [self.scores.get(notebook, {})] if notebook else self.scores.values()
        return sum(sum(cells.values()) for cells in chosen)


PEAK_MEMORY_LOG = "peak memory of this grading process:"
SUBMISSION_TIMEOUT = 600  # seconds for all notebooks of one submission (the sandbox's default too)
KILL_GRACE = 120          # beyond the deadline, nbgrader itself is killed
STOP_POLL = 0.5           # seconds between two looks at `stop` while nbgrader runs
INTERRUPTED = "grading interrupted before it finished: no score was recorded"


def kill_tree(pid: int) -> None:
    """Kill a process and every process it started, kernels in sessions of their own included.

    Each process is stopped before its children are listed, so none starts another unseen (a kernel being
    launched at that moment would outlive nbgrader if bubblewrap had not yet tied itself to its parent).
    """
    import psutil

    family, pending = [], [pid]
    while pending:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pending.pop())
            process.suspend()
            family.append(process)
            stopped_by = time.monotonic() + 1.0  # the stop takes effect when it next leaves the kernel
            while (process.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE)
                   and time.monotonic() < stopped_by):
                time.sleep(0.005)
            pending += [child.pid for child in process.children()]
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=30)


def wait_or_kill(process, deadline: float, stop: Callable[[], bool] | None) -> str:
    """Wait for `process` (a Popen or a warm child): "" once it ended, or "stopped" / "deadline" once it was killed
    for that."""
    while True:
        try:
            process.wait(timeout=STOP_POLL)
            return ""
        except subprocess.TimeoutExpired:
            killed = "stopped" if stop is not None and stop() else "deadline" if time.monotonic() > deadline else ""
            if killed:
                kill_tree(process.pid)
                process.wait()
                return killed


def dies_with_caller(command: list[str]) -> list[str]:
    """`command` run so that it is killed when the thread that started it dies (a lost Dask worker)."""
    setpriv = shutil.which("setpriv")  # util-linux; without it an orphan finishes, serialised by the student lock
    return [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command


LOG_TAIL = 4 * 2**20  # bytes of nbgrader's log read back (a kernel may write without end to the stderr it inherits)


def tail(log) -> str:
    """The last `LOG_TAIL` bytes of an open log file, as text."""
    size = log.seek(0, os.SEEK_END)
    log.seek(max(0, size - LOG_TAIL))
    return log.read().decode(errors="replace")


def warm_up():
    """This thread's warm grading process, started if needed (grader/warm.py); WarmGraderDied if it cannot start."""
    return warm_grader(dies_with_caller, grading_env())  # malloc reads its settings when a process starts


def start_nbgrader(args: list[str], root: Path, env: dict[str, str], log: int, pass_fds: tuple[int, ...],
                   warm: bool):
    """Start `nbgrader ARGS` in `root`, its log to the descriptor `log`: forked from this thread's warm grading
    process when `warm` (grader/warm.py), else a fresh Python; it dies with the thread that started it."""
    if warm:
        try:
            grader = warm_up()
        except WarmGraderDied as error:  # the fresh process grades alike, only slower to start
            os.write(log, f"[aecourse] {error}: starting a fresh nbgrader process\n".encode())
        else:
            with open(os.devnull, "wb") as null:
                return grader.start(args, root, env, null.fileno(), log, pass_fds)
    return subprocess.Popen(dies_with_caller([sys.executable, "-m", "grader.nbgrader_cli", *args]), cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, pass_fds=pass_fds)


def autograde(root: Path, student: str, timeout: float = SUBMISSION_TIMEOUT, options: tuple[str, ...] = (),
              db_url: str | None = None, threads: int | None = None, pass_fds: tuple[int, ...] = (),
              environment: dict[str, str | None] | None = None,
              stop: Callable[[], bool] | None = None, warm: bool = False) -> GradeReport:
    """Autograde one student in its own nbgrader process, so one bad submission cannot stop the batch.

    The submission's kernels share a wall-clock deadline (`timeout` seconds); an nbgrader process still
    running `KILL_GRACE` seconds after it is killed, and the student is reported with that error.
    Scores go to the gradebook `db_url` (default: the course's SQLite file). `threads`: torch threads of
    the kernels and the judges (default: every core; give cores // students graded at once).
    `environment`: variables that decide the grade (data directory, offline split, sandbox mode), given
    by the caller rather than taken from this process (None: unset). A grading fault (grader/faults.py) leaves the
    student without a score in the gradebook and is named in `fault`. `stop`: asked every half second;
    when it says True, nbgrader and its kernels are killed and the student is left without a score
    (`interrupted`). `warm`: nbgrader is forked from this thread's warm grading process (grader/warm.py)
    instead of started afresh, which saves its imports.
    """
    started = time.time()
    args = ["autograde", ASSIGNMENT, "--student", student, "--force",
            f"--SandboxedExecute.submission_timeout={int(timeout)}", *options]
    if db_url:
        args.append(f"--CourseDirectory.db_url={db_url}")
    base = dict(os.environ)
    for name, value in (environment or {}).items():  # None: unset here, whatever this process has
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    env = grading_env(base)
    if threads:  # N students at once on N cores: several torch processes on a core slow down tenfold
        args.append(f"--SandboxedKernelManager.threads={threads}")
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    handle, fault_file = tempfile.mkstemp(prefix=f"aecourse-faults-{student}-")
    os.close(handle)
    env[FAULT_FILE_ENV] = fault_file
    report = GradeReport(student)
    try:
        with tempfile.TemporaryFile() as log:
            process = start_nbgrader(args, root, env, log.fileno(), pass_fds, warm)
            try:
                killed = wait_or_kill(process, time.monotonic() + timeout + KILL_GRACE, stop)
            finally:
                stderr = tail(log)
        peaks = re.findall(rf"{PEAK_MEMORY_LOG} (\d+) MiB", stderr)
        report.peak_mib = float(max(map(int, peaks))) if peaks else 0.0
        report.kernel_seconds = sum(map(float, re.findall(rf"{KERNEL_TIME_LOG} ([\d.]+) s", stderr)))
        if killed == "stopped":
            report.error = report.interrupted = INTERRUPTED
        elif killed:
            report.error = report.fault = f"nbgrader was killed after the wall-clock limit of {timeout:g} s (+{KILL_GRACE} s)"
        elif process.returncode != 0:
            report.error = stderr[-2000:]
        if process.returncode < 0 and not killed:  # killed by a signal: the machine (OOM killer, an operator)
            report.fault = f"nbgrader was killed by signal {-process.returncode} while grading"
    except WarmGraderDied as died:
        report.error = report.fault = str(died)
    finally:
        faults = read_faults(Path(fault_file))
        os.unlink(fault_file)
    if not report.interrupted:
        report.fault = "; ".join(faults) or report.fault
    if report.fault or report.interrupted:
        report.error = report.error or report.fault
        remove_submission(root, student, db_url)
    report.scores = read_scores(root, student, db_url)
    report.seconds = time.time() - started
    return report


def remove_submission(root: Path, student: str, db_url: str | None = None) -> None:
    """Remove a student's submission from the gradebook (its scores with it), when there is one."""
    from nbgrader.api import Gradebook, MissingEntry

    with_tools_on_path(os.environ)
    with Gradebook(db_url or f"sqlite:///{Path(root) / 'gradebook.db'}") as gradebook:
        try:
            gradebook.remove_submission(ASSIGNMENT, student)
        except MissingEntry:
            pass


def read_scores(root: Path, student: str, db_url: str | None = None) -> dict[str, dict[str, float]]:
    """Scores of each grade cell of a student's notebooks, read from the gradebook (default: the course's SQLite)."""
    from nbgrader.api import Gradebook, MissingEntry

    scores: dict[str, dict[str, float]] = {}
    with_tools_on_path(os.environ)
    with Gradebook(db_url or f"sqlite:///{Path(root) / 'gradebook.db'}") as gradebook:
        try:
            submission = gradebook.find_submission(ASSIGNMENT, student)
        except MissingEntry:
            return scores
        for notebook in submission.notebooks:
            scores[notebook.name] = {grade.name: float(grade.score) for grade in notebook.grades}
    return scores


def generate_feedback(root: Path, db_url: str | None = None) -> Path:
    """Write nbgrader's HTML feedback for every autograded student (scores from the gradebook `db_url`)."""
    nbgrader(root, "generate_feedback", ASSIGNMENT, "--force", *([f"--CourseDirectory.db_url={db_url}"] if db_url else []))
    return root / "feedback"


def score_table(reports: list[GradeReport], max_points: dict[str, float],
                submitted: dict[str, set[str]] | None = None) -> str:
    """A plain-text table of each student's score per notebook ("-" where `submitted` says it was not handed in)."""
    names = sorted(max_points)
    header = ["student", *names, "total"]
    rows = [header, ["(max)", *(f"{max_points[n]:g}" for n in names), f"{sum(max_points.values()):g}"]]
    for report in reports:
        handed_in = names if submitted is None else submitted.get(report.student, names)
        rows.append([report.student, *(f"{report.total(n):g}" if n in handed_in else "-" for n in names),
                     f"{report.total():g}" + ("  (grading fault: not graded)" if report.fault else
                                              "  (autograde error)" if report.error else "")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def release_differences(committed: Path = RELEASE) -> list[str]:
    """Files of a freshly generated release that differ from the committed one (empty when up to date)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return folder_differences(generate_release(prepare_course(Path(tmp) / "course")), committed)


def folder_differences(first: Path, second: Path) -> list[str]:
    """Files (relative paths) present in only one of two folders or different between them; caches ignored."""
    import filecmp

    def files(folder: Path) -> set[Path]:
        return {p.relative_to(folder) for p in folder.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts} if folder.exists() else set()

    return sorted(str(name) for name in files(first) | files(second)
                  if not (first / name).is_file() or not (second / name).is_file()
                  or not filecmp.cmp(first / name, second / name, shallow=False))

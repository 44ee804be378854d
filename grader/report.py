"""A class report for the TA: one self-contained HTML page from nbgrader's gradebook and the autograded notebooks.

    from grader.report import write_report
    html_path = write_report(Path("course"))                       # course/reports/class_report.html
    write_report(Path("course"), db_url="postgresql://...", out=Path("/tmp/report/index.html"),
                 formgrader_url="http://localhost:8888")

The page opens with the students who need attention (a notebook not handed in, a grading error or fault,
a total below `LOW_TOTAL` of the maximum, a notebook the report could not read), then per notebook the
score statistics and histogram over the students who handed it in and how many did not, per graded cell
(cells worth points; zero-point guards are left out) the pass rate and mean points over those who handed
its notebook in and the most common *first real error* with the students who got it, a table of every
student (score per notebook, total, grading errors, grading time; links to their feedback and to their
formgrader pages) and the grading times. Plots are PNGs embedded in the page as `data:` URLs.
`class_summary` gives the same numbers as data.

A notebook is handed in when the student's submitted folder holds it (nbgrader scores a notebook missing
there as zero, and the gradebook cannot tell the two apart); for a student without a submitted folder, when
the autograded folder holds it. A failed cell whose verdict is the generic `NO_RESULTS` is counted under the
first error the student's code raised: in the cell itself (`[your code raised ...]` in the kernel's text the
grader keeps), else in the earliest cell before it with an error. Messages are grouped once numbers, paths
and object addresses are normalised.

The autograded notebooks, the submitted folders and the grading record hold what students made, so they are
read as hostile (grader/submitted.py): never through a link, never from a FIFO or device, at most 64 MiB, and
a notebook that cannot be read (too large, too deeply nested, not JSON) is listed, not a crash. Whatever the
page shows that came from students (ids, messages, errors) is HTML-escaped, and only valid student ids,
URL-quoted, go into links.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import stat
import statistics
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from grader.judge.carry import NO_RESULTS, VERDICT_PREFIX
from grader.parallel import RECORD_FILE, GradingRecord, gradebook_url
from grader.pipeline import ASSIGNMENT, with_tools_on_path
from grader.submitted import (MAX_JSON_BYTES, UnreadableFile, folder_problem, handed_in_notebooks,
                              is_valid_student_id, read_json_file, student_folders, submission_folder)

MAX_MESSAGE = 200        # characters of an error message kept
MAX_REASON = 300         # characters of a grading error shown in the needs-attention list
TOP_ERRORS = 3           # error groups shown per cell
LOW_TOTAL = 0.5          # a total below this fraction of the maximum needs attention
FULL_TOLERANCE = 1e-9
DEFAULT_FORMGRADER_URL = "http://localhost:8888"
# What grader/preprocessors.py writes: `verdict_output` starts a verdict with VERDICT_PREFIX (after `kernel_text`,
# before any `picture_output`), `kernel_text` marks an error the kernel raised with RAISED's form.
# One line each (linear time on any text): a multi-line value is cut to its first line, which is all that is shown.
RAISED = re.compile(r"^\[your code raised (?P<name>[^:\n]*): (?P<value>[^\n]*)", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ADDRESS = re.compile(r"\b0x[0-9A-Fa-f]+\b")
PATH = re.compile(r"(?<![\w)\]])(?:~|\.{1,2})?/[^\s'\"`,;:()\[\]{}<>]+|\b[\w.-]+(?:/[\w.-]+)*/[\w-]+\.[A-Za-z]\w*")
# A number on its own or in a size like 64x784; not the digits of a name like fc1 or conv2d.
NUMBER = re.compile(r"(?:(?<![\w.])|(?<=\dx))[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
OLD_PLOTS = ("{stem}_scores_*.png", "{stem}_pass_rates.png", "{stem}_seconds.png")  # what earlier reports wrote


# --- the numbers -----------------------------------------------------------------------------------

@dataclass
class NotebookStats:
    """One notebook: its maximum, each student's total from the gradebook, who handed it in and their submission ids."""

    name: str
    max_score: float
    totals: dict[str, float] = field(default_factory=dict)         # every student with a submission
    handed_in: set[str] = field(default_factory=set)
    submission_ids: dict[str, str] = field(default_factory=dict)   # the gradebook's submission notebook ids
    cell_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # student: graded cell: score

    @property
    def scores(self) -> list[float]:
        """The totals of the students who handed it in, in student order."""
        return [self.totals[student] for student in sorted(self.handed_in) if student in self.totals]

    def describe(self) -> dict[str, float]:
        """Mean, median, min and max of the handed-in totals (empty when nobody handed it in)."""
        scores = self.scores
        if not scores:
            return {}
        return {"mean": statistics.mean(scores), "median": statistics.median(scores),
                "min": min(scores), "max": max(scores)}

    def not_handed_in(self) -> list[str]:
        """Students with a submission who did not hand this notebook in, sorted."""
        return sorted(student for student in self.totals if student not in self.handed_in)


@dataclass
class ErrorGroup:
    """Students whose first real error in one cell reads the same once figures, paths and addresses are normalised."""

    pattern: str
    messages: dict[str, str] = field(default_factory=dict)  # each student's own text

    @property
    def students(self) -> list[str]:
        """The students in the group, sorted."""
        return sorted(self.messages)

    @property
    def example(self) -> str:
        """The text of the group's first student."""
        return self.messages[self.students[0]]


@dataclass
class CellStats:
    """One graded cell worth points, over the students who handed its notebook in."""

    notebook: str
    cell: str
    points: float
    scores: dict[str, float] = field(default_factory=dict)     # graded students who handed the notebook in
    errors: dict[str, ErrorGroup] = field(default_factory=dict)  # by normalised pattern

    @property
    def graded(self) -> int:
        """How many students who handed the notebook in have a score for the cell."""
        return len(self.scores)

    @property
    def full(self) -> int:
        """How many of them got all the cell's points."""
        return sum(score >= self.points - FULL_TOLERANCE for score in self.scores.values())

    @property
    def pass_rate(self) -> float | None:
        """Fraction of graded students with full points (None when nobody was graded)."""
        return self.full / self.graded if self.graded else None

    @property
    def mean_points(self) -> float | None:
        """Mean points of the graded students (None when nobody was graded)."""
        return statistics.mean(self.scores.values()) if self.scores else None

    def add_error(self, student: str, message: str) -> None:
        """Put a student's first real error into the group of its normalised text."""
        pattern = normalise(message)
        self.errors.setdefault(pattern, ErrorGroup(pattern)).messages[student] = message

    def common_errors(self) -> list[ErrorGroup]:
        """The error groups, the most students first."""
        return sorted(self.errors.values(), key=lambda group: (-len(group.messages), group.pattern))


@dataclass
class ClassSummary:
    """Everything the class report shows."""

    students: list[str] = field(default_factory=list)          # students with a submission in the gradebook
    gradebook_students: int = 0                                 # students in the gradebook
    without_submission: list[str] = field(default_factory=list)  # in the gradebook, without a submission
    notebooks: dict[str, NotebookStats] = field(default_factory=dict)
    cells: dict[tuple[str, str], CellStats] = field(default_factory=dict)   # by (notebook, grade_id), points > 0
    seconds: dict[str, float] = field(default_factory=dict)    # grading time, from the grading record
    errors: dict[str, str] = field(default_factory=dict)       # grading errors by student
    faults: dict[str, str] = field(default_factory=dict)       # grading faults (the grader's side) by student
    timing_recorded: bool = False                               # whether there is a grading record
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)  # why, by (student, notebook)

    @property
    def max_total(self) -> float:
        """The most a student can earn over all notebooks."""
        return sum(stats.max_score for stats in self.notebooks.values())

    def total(self, student: str) -> float:
        """A student's total in the gradebook (a notebook not handed in counts zero there)."""
        return sum(stats.totals.get(student, 0.0) for stats in self.notebooks.values())

    def missing(self, student: str) -> list[str]:
        """The notebooks a student with a submission did not hand in."""
        return [name for name, stats in self.notebooks.items() if student not in stats.handed_in]

    def everyone(self) -> list[str]:
        """Every student the report knows of: in the gradebook, in the grading record or in submitted/."""
        return sorted({*self.students, *self.without_submission, *self.errors, *self.faults, *self.seconds})

    def needs_attention(self) -> dict[str, list[str]]:
        """Why each student needs the TA's attention (students who need none are left out)."""
        reasons: dict[str, list[str]] = {}
        for student in self.everyone():
            found = attention_reasons(self, student)
            if found:
                reasons[student] = found
        return reasons


def attention_reasons(summary: ClassSummary, student: str) -> list[str]:
    """Why one student needs attention, in plain words (empty when nothing does)."""
    reasons = []
    if student in summary.without_submission:
        reasons.append(f"in the gradebook without a submission of {ASSIGNMENT}")
    if student in summary.students:
        missing = summary.missing(student) if is_valid_student_id(student) else []  # else: folders not read
        if missing:
            reasons.append("did not hand in " + ", ".join(missing))
        if summary.max_total > 0 and summary.total(student) < LOW_TOTAL * summary.max_total:
            reasons.append(f"low total: {summary.total(student):g} of {summary.max_total:g} "
                           f"({100 * summary.total(student) / summary.max_total:.0f} %)")
    if student in summary.faults:
        reasons.append(f"grading fault: {shorten(summary.faults[student], MAX_REASON)}")
    if summary.errors.get(student) and summary.errors[student] != summary.faults.get(student):
        reasons.append(f"grading error: {shorten(summary.errors[student], MAX_REASON)}")
    for (who, notebook), why in sorted(summary.unreadable.items()):
        if who == student:
            reasons.append(why if notebook == "*" else f"autograded {notebook} not read: {why}")
    return reasons


def is_graded(grade) -> bool:
    """Whether a gradebook grade holds a score from the autograder or a person."""
    return grade.auto_score is not None or grade.manual_score is not None


def read_gradebook(url: str, summary: ClassSummary) -> None:
    """Fill `summary` with the assignment's notebooks, graded cells, students, scores and submission ids."""
    from nbgrader.api import Gradebook, MissingEntry

    with_tools_on_path(os.environ)
    with Gradebook(url) as gradebook:
        everyone = sorted(student.id for student in gradebook.students)
        summary.gradebook_students = len(everyone)
        try:
            assignment = gradebook.find_assignment(ASSIGNMENT)
        except MissingEntry:
            summary.without_submission = everyone
            return
        for notebook in sorted(assignment.notebooks, key=lambda nb: nb.name):
            summary.notebooks[notebook.name] = NotebookStats(notebook.name, float(notebook.max_score))
            for cell in notebook.grade_cells:
                if float(cell.max_score) > 0:  # a guard cell worth nothing is no question
                    summary.cells[notebook.name, cell.name] = CellStats(notebook.name, cell.name, float(cell.max_score))
        for submission in assignment.submissions:
            summary.students.append(submission.student.id)
            for notebook in submission.notebooks:
                add_notebook_grades(summary, submission.student.id, notebook)
    summary.students.sort()
    summary.without_submission = [student for student in everyone if student not in summary.students]


def add_notebook_grades(summary: ClassSummary, student: str, notebook) -> None:
    """Keep one submitted notebook's total, submission id and graded cells' scores."""
    stats = summary.notebooks.setdefault(notebook.name, NotebookStats(notebook.name, float(notebook.max_score)))
    stats.totals[student] = sum(float(grade.score) for grade in notebook.grades)
    stats.submission_ids[student] = str(notebook.id)
    stats.cell_scores[student] = {grade.name: float(grade.score) for grade in notebook.grades if is_graded(grade)}


def handed_in_by(root: Path, student: str) -> set[str]:
    """The notebooks a student handed in: in their submitted folder, else (when there is none) the autograded one."""
    if os.path.lexists(Path(root) / "submitted" / student):
        folders = [Path(root) / "submitted" / student, submission_folder(root, student)]
    else:
        folders = [Path(root) / "autograded" / student, Path(root) / "autograded" / student / ASSIGNMENT]
    if any(folder_problem(folder) for folder in folders):  # a link is not followed, a missing folder holds nothing
        return set()
    return handed_in_notebooks(folders[-1])


def read_handed_in(root: Path, summary: ClassSummary) -> None:
    """Note who handed in each notebook and count the graded cells over those students only."""
    for student in summary.students:
        if not is_valid_student_id(student):  # an id from the gradebook that must not become a path
            summary.unreadable[student, "*"] = "not a valid student id: its folders were not read"
            continue
        for name in handed_in_by(root, student) & set(summary.notebooks):
            summary.notebooks[name].handed_in.add(student)
    for (name, cell), stats in summary.cells.items():
        notebook = summary.notebooks[name]
        for student in sorted(notebook.handed_in):
            score = notebook.cell_scores.get(student, {}).get(cell)
            if score is not None:
                stats.scores[student] = score


# --- the first real error --------------------------------------------------------------------------

def as_text(value: object) -> str:
    """A notebook text field as one string (a list of lines joined; anything else empty)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return ""


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis where cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def first_line(text: str) -> str:
    """The first non-empty line of `text`, without terminal colours, cut to `MAX_MESSAGE`."""
    lines = [line.strip() for line in ANSI.sub("", text[:10 * MAX_MESSAGE]).splitlines() if line.strip()]
    return shorten(lines[0] if lines else "")


def normalise(message: str) -> str:
    """`message` with object addresses, paths and numbers replaced, so one failure with other figures reads the same."""
    text = ADDRESS.sub("<address>", message)
    text = PATH.sub("<path>", text)
    return " ".join(NUMBER.sub("<n>", text).split())


def outputs_of(cell: object) -> list[dict]:
    """A code cell's outputs that are JSON objects (nothing else of a hostile notebook is trusted to be one)."""
    outputs = cell.get("outputs") if isinstance(cell, dict) and cell.get("cell_type") == "code" else None
    return [output for output in outputs if isinstance(output, dict)] if isinstance(outputs, list) else []


def is_verdict_error(output: dict) -> bool:
    """Whether an error output is the course grader's verdict of a failed cell."""
    traceback = output.get("traceback")
    return (output.get("output_type") == "error" and isinstance(traceback, list) and bool(traceback)
            and isinstance(traceback[0], str) and traceback[0].startswith(VERDICT_PREFIX))


def verdict(outputs: list[dict]) -> tuple[bool, str] | None:
    """The grader's verdict of a graded cell as (passed, message), None when it has none.

    The grader writes the kernel's text first and the verdict after it, followed only by pictures: the verdict
    is the last text or error output (a line the student printed to look like one comes before it).
    """
    texts = [output for output in outputs if output.get("output_type") in ("stream", "error")]
    if not texts:
        return None
    last = texts[-1]
    if last.get("output_type") == "stream" and as_text(last.get("text")).startswith(VERDICT_PREFIX):
        return True, as_text(last.get("text"))[len(VERDICT_PREFIX):].strip()
    if is_verdict_error(last):
        return False, as_text(last.get("evalue"))
    return None


def first_raised(outputs: list[dict], judged: bool) -> str | None:
    """The first error the cell's code raised: an error output, or in a cell the grader `judged`, one it noted in
    the kernel's text (elsewhere such a line is only something the student printed)."""
    for output in outputs:
        if output.get("output_type") == "stream" and judged:
            match = RAISED.search(as_text(output.get("text")))
            if match:
                value = match["value"][:-1] if match["value"].endswith("]") else match["value"]
                return error_text(match["name"], value)
        elif output.get("output_type") == "error" and not is_verdict_error(output):
            return error_text(as_text(output.get("ename")), as_text(output.get("evalue")))
    return None


def error_text(name: str, value: str) -> str:
    """An exception as one line, "Name: value" (just the name when the value is empty)."""
    name = name.strip() or "Error"
    return first_line(f"{name}: {value}" if value.strip() else name)


def failure_message(outputs: list[dict]) -> str | None:
    """Why a graded cell failed, as its verdict says (None when it passed or shows no failure).

    A notebook graded before verdicts were written this way: the last AssertionError, else the first error.
    """
    judged = verdict(outputs)
    if judged is not None:
        return None if judged[0] else judged[1]
    errors = [output for output in outputs if output.get("output_type") == "error"]
    if not errors:
        return None
    asserted = [output for output in errors if output.get("ename") == "AssertionError"]
    if asserted:
        return as_text(asserted[-1].get("evalue")).strip() or "AssertionError"
    return error_text(as_text(errors[0].get("ename")), as_text(errors[0].get("evalue")))


def first_real_errors(notebook: dict) -> dict[str, str]:
    """The first real error of each failed graded cell of an autograded notebook, by grade id.

    The verdict's message, unless it is the generic NO_RESULTS: then the first error raised in the cell itself,
    else in the earliest cell before it with one.
    """
    earliest: str | None = None
    found: dict[str, str] = {}
    for cell in notebook["cells"]:
        outputs = outputs_of(cell)
        grade_id = graded_cell_id(cell)
        raised = first_raised(outputs, judged=grade_id is not None and verdict(outputs) is not None)
        message = failure_message(outputs) if grade_id is not None else None
        if message is not None:
            generic = NO_RESULTS in message
            found[grade_id] = (raised or earliest or first_line(message)) if generic else first_line(message)
        earliest = earliest or raised
    return found


def graded_cell_id(cell: object) -> str | None:
    """The grade id of a graded cell (None for any other cell, or one whose metadata is not as nbgrader writes it)."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    if not isinstance(nbgrader, dict) or not nbgrader.get("grade"):
        return None
    return str(nbgrader.get("grade_id"))


def read_notebook(path: Path) -> dict:
    """An autograded notebook as plain JSON data, or UnreadableFile with the reason."""
    notebook = read_json_file(path, MAX_JSON_BYTES)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise UnreadableFile("it is not a notebook (no list of cells)")
    return notebook


def is_regular_file(path: Path) -> bool:
    """Whether `path` itself (not what a link points to) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read_failures(root: Path, summary: ClassSummary) -> None:
    """Group the first real errors of each graded cell over the handed-in autograded notebooks; list those not read."""
    for name, stats in summary.notebooks.items():
        for student in sorted(stats.handed_in):
            path = Path(root) / "autograded" / student / ASSIGNMENT / f"{name}.ipynb"
            try:
                errors = first_real_errors(read_notebook(path))
            except UnreadableFile as error:
                summary.unreadable[student, name] = str(error)
                continue
            for grade_id, message in errors.items():
                cell = summary.cells.get((name, grade_id))
                if cell is not None:
                    cell.add_error(student, message)


def read_record(root: Path, summary: ClassSummary) -> None:
    """Grading seconds, errors and faults per student from the pipeline's grading record, when there is one."""
    record = GradingRecord.load(root)
    summary.timing_recorded = bool(record.students)
    for student, entry in sorted(record.students.items()):
        seconds = entry.get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds):
            summary.seconds[student] = float(seconds)
        if entry.get("error"):
            summary.errors[student] = str(entry["error"])
        if entry.get("fault"):
            summary.faults[student] = str(entry["fault"])


def note_ungraded(root: Path, summary: ClassSummary) -> None:
    """Record an error for each student with a submission in `submitted/` but none in the gradebook."""
    submitted = Path(root) / "submitted"
    if not submitted.is_dir():
        return
    for name in student_folders(submitted):
        if name in summary.students:
            continue
        if not is_valid_student_id(name):
            summary.errors.setdefault(name, "a folder in submitted/ whose name is not a valid student id: not graded")
        elif os.path.lexists(submitted / name / ASSIGNMENT):
            summary.errors.setdefault(name, "submitted, but no submission in the gradebook")


def class_summary(root: Path, db_url: str | None = None) -> ClassSummary:
    """The class's scores, pass rates, first real errors, grading errors and times for the course directory `root`."""
    root = Path(root)
    if db_url is None and not (root / "gradebook.db").is_file():
        raise FileNotFoundError(f"{root / 'gradebook.db'} does not exist: autograde the class first")
    summary = ClassSummary()
    read_gradebook(gradebook_url(root, db_url), summary)
    read_handed_in(root, summary)
    read_failures(root, summary)
    read_record(root, summary)
    note_ungraded(root, summary)
    return summary


# --- the plots -------------------------------------------------------------------------------------

def new_figure(width: float, height: float):
    """A matplotlib figure drawn by the Agg canvas (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def png_url(figure) -> str:
    """A figure as a `data:image/png;base64,` URL, to embed in the page."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def score_bins(top: float) -> list[float]:
    """Histogram bin edges from 0 to `top`: one bar per whole point, at most about 40 bars."""
    step = max(1, math.ceil(top / 40))
    return [edge - 0.5 * step for edge in range(0, math.ceil(top) + 2 * step, step)]


def plot_scores(stats: NotebookStats) -> str:
    """Histogram of one notebook's handed-in totals."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(4.5, 2.8)
    axes = figure.add_subplot()
    axes.hist(stats.scores, bins=score_bins(max([stats.max_score, *stats.scores, 1.0])),
              color="tab:blue", edgecolor="white")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(f"total score (max {stats.max_score:g})")
    axes.set_ylabel("students")
    axes.set_title(f"{stats.name}: {len(stats.scores)} handed in")
    return png_url(figure)


def plot_pass_rates(cells: list[CellStats]) -> str:
    """Horizontal bar chart of the pass rate of each graded cell, coloured by notebook."""
    figure = new_figure(7, 1.2 + 0.25 * max(1, len(cells)))
    axes = figure.add_subplot()
    notebooks = sorted({cell.notebook for cell in cells})
    colours = {name: f"C{i % 10}" for i, name in enumerate(notebooks)}
    axes.barh(range(len(cells)), [100 * (cell.pass_rate or 0) for cell in cells],
              color=[colours[cell.notebook] for cell in cells])
    axes.set_yticks(range(len(cells)), [f"{cell.notebook} / {cell.cell}" for cell in cells], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("students with full points, of those who handed the notebook in (%)")
    axes.set_title("pass rate per graded cell")
    return png_url(figure)


def plot_seconds(seconds: dict[str, float]) -> str:
    """Histogram of grading seconds per student."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(5, 3)
    axes = figure.add_subplot()
    axes.hist(list(seconds.values()), bins=min(20, max(1, len(seconds))), color="tab:orange", edgecolor="white")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("grading time per student (s)")
    axes.set_ylabel("students")
    axes.set_title("grading time")
    return png_url(figure)


# --- links -----------------------------------------------------------------------------------------

@dataclass
class Links:
    """Where the page's links go: the course, the page's folder and the formgrader's address."""

    root: Path
    folder: Path
    formgrader: str

    def feedback(self, student: str, notebook: str) -> str | None:
        """The relative URL of a student's feedback on a notebook (None when there is none or the id is not valid)."""
        if not is_valid_student_id(student):
            return None
        path = self.root / "feedback" / student / ASSIGNMENT / f"{notebook}.html"
        if not is_regular_file(path):
            return None
        return urllib.parse.quote(os.path.relpath(path, self.folder))

    def student_page(self, student: str) -> str | None:
        """The formgrader's page of a student's notebooks of the assignment (None for an id that is not valid)."""
        if not is_valid_student_id(student):
            return None
        return (f"{self.formgrader}/formgrader/manage_students/{urllib.parse.quote(student, safe='')}/"
                f"{urllib.parse.quote(ASSIGNMENT, safe='')}")

    def similarity(self) -> str | None:
        """The relative URL of the course's similarity report (`aecourse similarity`), None when there is none."""
        path = self.root / "reports" / "similarity.html"
        return urllib.parse.quote(os.path.relpath(path, self.folder)) if is_regular_file(path) else None

    def submission(self, submission_id: str | None) -> str | None:
        """The formgrader's grading page of one submitted notebook (by the gradebook's submission notebook id)."""
        if not submission_id:
            return None
        return f"{self.formgrader}/formgrader/submissions/{urllib.parse.quote(submission_id, safe='')}"


def formgrader_base(url: str) -> str:
    """The formgrader's base URL without a trailing slash; ValueError unless it is an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the formgrader URL must be an http:// or https:// address, not {url!r}")
    return url.rstrip("/")


def link(href: str | None, text: str, title: str = "") -> str:
    """An <a> with escaped `text` (just the text when there is no `href`)."""
    if href is None:
        return esc(text)
    hint = f' title="{esc(title)}"' if title else ""
    return f'<a href="{esc(href)}"{hint}>{esc(text)}</a>'


def student_anchor(student: str) -> str | None:
    """The id of a student's row in the student table (None for an id that is not valid)."""
    return f"student-{student}" if is_valid_student_id(student) else None


# --- the page --------------------------------------------------------------------------------------

STYLE = """body { font-family: sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
td.missing { color: #a33; background: #fbeaea; }
pre { white-space: pre-wrap; margin: 0; }
ul { margin: 0; padding-left: 1.2em; }
nav a { margin-right: 1em; }
#needs-attention td { background: #fff6e5; }
.plots img { margin: 0 1em 1em 0; vertical-align: top; }
.muted { color: #777; }"""


def esc(value: object) -> str:
    """`value` as text safe in HTML content and attributes."""
    return html.escape(str(value), quote=True)


def table(header: list[str], rows: list[list], numeric: set[int] | None = None, table_id: str = "",
          row_attributes: list[str] | None = None) -> str:
    """An HTML table from already escaped cells: columns in `numeric` right-aligned, a (class, html) cell classed."""
    numeric = numeric or set()
    attributes = row_attributes or [""] * len(rows)

    def cell(index: int, content) -> str:
        """One <td>, classed by its column or by the cell itself."""
        css, text = content if isinstance(content, tuple) else ("num" if index in numeric else "", content)
        return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"

    head = "".join(f"<th>{text}</th>" for text in header)
    body = "".join(f"<tr{extra}>" + "".join(cell(i, content) for i, content in enumerate(row)) + "</tr>\n"
                   for row, extra in zip(rows, attributes))
    identity = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{identity}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def row_attributes(student: str, anchor: bool = False) -> str:
    """The attributes of a student's table row: their id as data, and an anchor when asked for."""
    target = student_anchor(student) if anchor else None
    return f' data-student="{esc(student)}"' + (f' id="{esc(target)}"' if target else "")


def image(url: str, alt: str) -> str:
    """An <img> of an embedded PNG."""
    return f'<img src="{url}" alt="{esc(alt)}">'


def number(value: float | None, digits: int = 2) -> str:
    """A number with `digits` decimals, or a dash for none."""
    return "-" if value is None else f"{value:.{digits}f}"


def attention_section(summary: ClassSummary, links: Links) -> str:
    """The students who need attention and why, first on the page."""
    heading = (f'<h2 id="attention">Needs attention</h2>\n<p class="muted">A notebook not handed in, a grading '
               f"error or fault, a notebook the report could not read, or a total below {100 * LOW_TOTAL:.0f} % of "
               f"the maximum ({LOW_TOTAL * summary.max_total:g} of {summary.max_total:g} points).</p>\n")
    reasons = summary.needs_attention()
    if not reasons:
        return heading + '<p id="needs-attention">Nobody: every student handed everything in and was graded.</p>\n'
    rows = []
    for student, why in reasons.items():
        anchor = student_anchor(student)
        name = link(f"#{anchor}" if anchor else None, student, "their row in the student table")
        items = "".join(f"<li>{esc(reason)}</li>" for reason in why)
        page = links.student_page(student) if student in summary.students else None
        rows.append([name, f"<ul>{items}</ul>", link(page, "formgrader") if page else ""])
    return heading + table(["student", "why", "grade"], rows, table_id="needs-attention",
                           row_attributes=[row_attributes(student) for student in reasons])


def scores_section(summary: ClassSummary) -> str:
    """Per notebook: statistics of the handed-in totals, who did not hand it in, and a histogram."""
    rows, images = [], []
    for name, stats in summary.notebooks.items():
        numbers = stats.describe()
        missing = stats.not_handed_in()
        rows.append([esc(name), f"{stats.max_score:g}", str(len(stats.scores)), str(len(missing)),
                     *(number(numbers.get(key)) for key in ("mean", "median", "min", "max")),
                     esc(", ".join(missing)) if missing else '<span class="muted">-</span>'])
        if stats.scores:
            images.append(image(plot_scores(stats), f"histogram of {name}'s totals"))
    header = ["notebook", "points", "handed in", "not handed in", "mean", "median", "lowest", "highest",
              "who did not hand it in"]
    return ('<h2 id="notebooks">Scores per notebook</h2>\n'
            '<p class="muted">Over the students who handed the notebook in; nbgrader scores a notebook not handed '
            "in as zero, which is left out here (but counts in the totals below).</p>\n"
            + table(header, rows, numeric={1, 2, 3, 4, 5, 6, 7}) + f'<div class="plots">{"".join(images)}</div>\n')


def pass_rate_text(cell: CellStats) -> str:
    """A cell's pass rate as a percentage, or a dash when nobody was graded."""
    return "-" if cell.pass_rate is None else f"{100 * cell.pass_rate:.0f}%"


def cells_section(summary: ClassSummary) -> str:
    """Per graded cell: pass rate and mean points over the students who handed its notebook in, and a bar chart."""
    cells = list(summary.cells.values())
    rows = [[esc(cell.notebook), esc(cell.cell), f"{cell.points:g}", f"{cell.full}/{cell.graded}",
             pass_rate_text(cell), number(cell.mean_points)] for cell in cells]
    scored = [cell for cell in cells if cell.pass_rate is not None]
    chart = f'<div class="plots">{image(plot_pass_rates(scored), "pass rate per graded cell")}</div>\n' \
        if scored else ""
    return ('<h2 id="cells">Graded cells</h2>\n<p class="muted">Cells worth points (zero-point guard cells are left '
            "out), over the students who handed the notebook in.</p>\n"
            + table(["notebook", "cell", "points", "passed/handed in", "pass rate", "mean points"], rows,
                    numeric={2, 3, 4, 5}, table_id="cells") + chart)


def who(students: list[str], notebook: str, links: Links) -> str:
    """Students, each linked to their feedback on `notebook` where there is one."""
    return ", ".join(link(links.feedback(student, notebook), student, "their feedback") for student in students)


def errors_section(summary: ClassSummary, links: Links) -> str:
    """The most common first real errors of each graded cell, with the students who got them."""
    rows = []
    for cell in summary.cells.values():
        groups = cell.common_errors()
        for group in groups[:TOP_ERRORS]:
            varied = len(set(group.messages.values())) > 1
            text = f"<pre>{esc(group.example)}</pre>" + (
                f'<span class="muted">(figures differ between students; e.g. {esc(group.students[0])}\'s)</span>'
                if varied else "")
            rows.append([esc(cell.notebook), esc(cell.cell), str(len(group.messages)), text,
                         who(group.students, cell.notebook, links)])
        if len(groups) > TOP_ERRORS:
            rest = groups[TOP_ERRORS:]
            rows.append([esc(cell.notebook), esc(cell.cell), str(sum(len(group.messages) for group in rest)),
                         f'<span class="muted">{len(rest)} other errors</span>',
                         who(sorted(s for group in rest for s in group.messages), cell.notebook, links)])
    body = table(["notebook", "cell", "students", "first real error", "who"], rows, numeric={2}, table_id="errors") \
        if rows else '<p class="muted">No failures recorded in the autograded notebooks.</p>\n'
    return ('<h2 id="errors">Most common first errors per cell</h2>\n<p class="muted">For a cell whose hidden tests '
            "did not run to the end, the first error the student's code raised (in the cell, else in the earliest "
            "cell before it); otherwise the grader's message. Grouped with numbers, paths and addresses "
            f"normalised; top {TOP_ERRORS} per cell.</p>\n" + body)


def score_cell(stats: NotebookStats, student: str, links: Links) -> str | tuple[str, str]:
    """A student's score on one notebook, linked to their feedback and formgrader page; "not handed in" otherwise."""
    if student not in stats.handed_in:
        known = student in stats.totals and is_valid_student_id(student)  # an invalid id's folders were not read
        return ("missing", "— not handed in") if known else '<span class="muted">—</span>'
    score = link(links.feedback(student, stats.name), f"{stats.totals.get(student, 0.0):g}", "their feedback")
    grade = link(links.submission(stats.submission_ids.get(student)), "grade", "this notebook in the formgrader")
    return f"{score} / {stats.max_score:g} <small>{grade}</small>"


def grading_problems(summary: ClassSummary, student: str) -> str:
    """A student's grading errors and faults, escaped, for the student table."""
    texts = [f"fault: {summary.faults[student]}"] if student in summary.faults else []
    if summary.errors.get(student) and summary.errors[student] != summary.faults.get(student):
        texts.append(summary.errors[student])
    return "".join(f"<pre>{esc(shorten(text, 2000))}</pre>" for text in texts)


def students_section(summary: ClassSummary, links: Links) -> str:
    """Every student: score per notebook, total, grading errors and time, with links."""
    students = summary.everyone()
    rows = []
    for student in students:
        page = links.student_page(student) if student in summary.students else None
        name = esc(student) + (f" <small>{link(page, 'formgrader')}</small>" if page else "")
        in_gradebook = student in summary.students or student in summary.without_submission
        rows.append([name, *(score_cell(stats, student, links) for stats in summary.notebooks.values()),
                     f"{summary.total(student):g}" if in_gradebook else "-",
                     grading_problems(summary, student),
                     f"{summary.seconds[student]:.1f}" if student in summary.seconds else "-"])
    columns = len(summary.notebooks)
    header = ["student", *(esc(name) for name in summary.notebooks), f"total (of {summary.max_total:g})",
              "grading errors", "grading time (s)"]
    return ('<h2 id="students">Students</h2>\n<p class="muted">A score links to the student\'s feedback where it was '
            'generated; "grade" opens the notebook in the formgrader.</p>\n'
            + table(header, rows, numeric={columns + 1, columns + 3}, table_id="student-table",
                    row_attributes=[row_attributes(student, anchor=True) for student in students]))


def timing_section(summary: ClassSummary) -> str:
    """Grading seconds over the class: totals and a histogram."""
    heading = '<h2 id="timing">Grading time</h2>\n'
    if not summary.timing_recorded:
        return heading + f'<p class="muted">no timing recorded ({RECORD_FILE} not found)</p>\n'
    values = list(summary.seconds.values())
    if not values:
        return heading + '<p class="muted">no timing recorded</p>\n'
    chart = image(plot_seconds(summary.seconds), "grading time")
    return (heading + f"<p>{len(values)} students timed: total {sum(values):.0f} s, "
            f"mean {statistics.mean(values):.1f} s, max {max(values):.1f} s.</p>\n"
            f'<div class="plots">{chart}</div>\n')


def unreadable_section(summary: ClassSummary) -> str:
    """The autograded notebooks that were not read, and why (shown only when there are some)."""
    if not summary.unreadable:
        return ""
    rows = [[esc(student), esc(notebook), esc(shorten(reason, 500))]
            for (student, notebook), reason in sorted(summary.unreadable.items())]
    return ('<h2 id="unreadable">Autograded notebooks not read</h2>\n'
            '<p class="muted">Their errors are not counted above; the scores come from the gradebook.</p>\n'
            + table(["student", "notebook", "why"], rows))


NAVIGATION = ('<nav><a href="#attention">needs attention</a><a href="#notebooks">notebooks</a>'
              '<a href="#cells">graded cells</a><a href="#errors">common errors</a><a href="#students">students</a>'
              '<a href="#timing">grading time</a></nav>\n')


def render(summary: ClassSummary, root: Path, links: Links) -> str:
    """The whole report page, its plots embedded."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Class report: {ASSIGNMENT}"
    intro = (f"<p>{len(summary.students)} students with a submission ({summary.gradebook_students} in the gradebook), "
             f"{summary.max_total:g} points in all; course directory <code>{esc(root.resolve())}</code>; formgrader "
             f"links to <code>{esc(links.formgrader)}</code>; generated {when}.</p>\n")
    similarity = links.similarity()
    if similarity:
        intro += (f'<p>Academic integrity: {link(similarity, "the similarity report", "aecourse similarity")} compares '
                  "every student's solution code with the others' and with the reference.</p>\n")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n" + intro + NAVIGATION
            + attention_section(summary, links) + scores_section(summary) + cells_section(summary)
            + errors_section(summary, links) + students_section(summary, links) + timing_section(summary)
            + unreadable_section(summary) + "</body>\n</html>\n")


def remove_old_plots(folder: Path, stem: str) -> None:
    """Delete the PNG files an earlier version of the report wrote beside a page of this name."""
    for pattern in OLD_PLOTS:
        for stale in folder.glob(pattern.format(stem=glob_escape(stem))):
            stale.unlink()


def glob_escape(text: str) -> str:
    """`text` matched literally by `Path.glob`."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def write_report(root: Path, db_url: str | None = None, out: Path | None = None,
                 formgrader_url: str = DEFAULT_FORMGRADER_URL) -> Path:
    """Write the class report, one self-contained HTML page, and return its path.

    `formgrader_url`: where the TA's formgrader runs (its links go there); ValueError unless http(s).
    """
    root = Path(root)
    out = Path(out) if out is not None else root / "reports" / "class_report.html"
    links = Links(root.resolve(), out.parent.resolve(), formgrader_base(formgrader_url))
    summary = class_summary(root, db_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(render(summary, root, links), encoding="utf-8")
    temporary.replace(out)
    remove_old_plots(out.parent, out.stem)
    return out

"""A class report for the TA: one HTML page with PNG plots, from nbgrader's gradebook and the autograded notebooks.

    from grader.report import write_report
    html_path = write_report(Path("course"))                       # course/reports/class_report.html
    write_report(Path("course"), db_url="postgresql://...", out=Path("/tmp/report/index.html"))

The page shows each notebook's score distribution, the pass rate of every graded cell, the most common
failure messages the judges gave, grading time per student (from `grading_record.json`, written by the
grading pipeline) and the students whose autograding failed. `class_summary` gives the same numbers as data.

The autograded notebooks and the grading record hold what students' code wrote, so they are read as
hostile (grader/submitted.py): never through a link, never from a FIFO or device, at most 64 MiB, and a
notebook that cannot be read (too large, too deeply nested, not JSON) is listed, not a crash. Whatever
the page shows that came from students (ids, messages, errors) is HTML-escaped.
"""
from __future__ import annotations

import html
import math
import os
import re
import stat
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from grader.parallel import RECORD_FILE, GradingRecord, gradebook_url
from grader.pipeline import ASSIGNMENT, with_tools_on_path
from grader.submitted import MAX_JSON_BYTES, UnreadableFile, is_valid_student_id, read_json_file, student_folders

MAX_MESSAGE = 200   # characters of a failure message kept
TOP_MESSAGES = 3    # failure messages shown per cell
FULL_TOLERANCE = 1e-9


# --- the numbers -----------------------------------------------------------------------------------

@dataclass
class NotebookStats:
    """Scores of one notebook: each student's total and the most a student can earn."""

    name: str
    max_score: float
    totals: dict[str, float] = field(default_factory=dict)
    handed_in: set[str] = field(default_factory=set)

    @property
    def scores(self) -> list[float]:
        """The students' totals, in student order."""
        return [self.totals[student] for student in sorted(self.totals)]

    def describe(self) -> dict[str, float]:
        """Mean, median, min and max of the totals (empty when nobody was graded)."""
        scores = self.scores
        if not scores:
            return {}
        return {"mean": statistics.mean(scores), "median": statistics.median(scores),
                "min": min(scores), "max": max(scores)}


@dataclass
class CellStats:
    """One graded cell: its points, how many students were graded and got them all, and why others failed."""

    notebook: str
    cell: str
    points: float
    graded: int = 0
    full: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def pass_rate(self) -> float | None:
        """Fraction of graded students with full points (None for a cell worth nothing or graded for nobody)."""
        if self.points <= 0 or self.graded == 0:
            return None
        return self.full / self.graded


@dataclass
class ClassSummary:
    """Everything the class report shows."""

    students: list[str] = field(default_factory=list)          # students with a submission
    gradebook_students: int = 0                                 # students in the gradebook
    notebooks: dict[str, NotebookStats] = field(default_factory=dict)
    cells: dict[tuple[str, str], CellStats] = field(default_factory=dict)   # by (notebook, grade_id)
    seconds: dict[str, float] = field(default_factory=dict)    # grading time, from the grading record
    errors: dict[str, str] = field(default_factory=dict)       # autograde errors by student
    timing_recorded: bool = False                               # whether there is a grading record
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)  # why, by (student, notebook)


def is_graded(grade) -> bool:
    """Whether a gradebook grade holds a score from the autograder or a person."""
    return grade.auto_score is not None or grade.manual_score is not None


def read_gradebook(url: str, summary: ClassSummary) -> None:
    """Fill `summary` with the assignment's notebooks, cells, students and scores from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with_tools_on_path(os.environ)
    with Gradebook(url) as gradebook:
        summary.gradebook_students = len(gradebook.students)
        try:
            assignment = gradebook.find_assignment(ASSIGNMENT)
        except MissingEntry:
            return
        for notebook in sorted(assignment.notebooks, key=lambda nb: nb.name):
            summary.notebooks[notebook.name] = NotebookStats(notebook.name, float(notebook.max_score))
            for cell in notebook.grade_cells:
                summary.cells[notebook.name, cell.name] = CellStats(notebook.name, cell.name, float(cell.max_score))
        for submission in assignment.submissions:
            summary.students.append(submission.student.id)
            for notebook in submission.notebooks:
                add_notebook_grades(summary, submission.student.id, notebook)
    summary.students.sort()


def add_notebook_grades(summary: ClassSummary, student: str, notebook) -> None:
    """Add one submitted notebook's grades to the notebook's totals and its cells' counts."""
    stats = summary.notebooks.setdefault(notebook.name, NotebookStats(notebook.name, float(notebook.max_score)))
    stats.totals[student] = sum(float(grade.score) for grade in notebook.grades)
    for grade in notebook.grades:
        cell = summary.cells.get((notebook.name, grade.name))
        if cell is None or not is_graded(grade):
            continue
        cell.graded += 1
        cell.full += float(grade.score) >= cell.points - FULL_TOLERANCE


def failure_message(cell: dict) -> str | None:
    """Why a graded cell failed: the judge's message, else the first error raised (None when it did not fail)."""
    outputs = cell.get("outputs")
    errors = [output for output in outputs if isinstance(output, dict) and output.get("output_type") == "error"] \
        if isinstance(outputs, list) else []
    if not errors:
        return None
    judged = [output for output in errors if output.get("ename") == "AssertionError"]
    if judged:
        text = str(judged[-1].get("evalue", "")).strip() or "AssertionError"
    else:
        text = f"{errors[0].get('ename', 'Error')}: {errors[0].get('evalue', '')}".strip()
    return shorten(text.splitlines()[0] if text else "")


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis where cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
    """Count the failure messages of each graded cell over the students' autograded notebooks; list those not read."""
    for student in summary.students:
        if not is_valid_student_id(student):  # an id from the gradebook that must not become a path
            summary.unreadable[student, "*"] = "not a valid student id: the autograded folder was not read"
            continue
        folder = root / "autograded" / student / ASSIGNMENT
        for name in summary.notebooks:
            path = folder / f"{name}.ipynb"
            if not os.path.lexists(path):
                continue
            if is_regular_file(path):
                summary.notebooks[name].handed_in.add(student)
            try:
                add_failures(summary, name, read_notebook(path))
            except UnreadableFile as error:
                summary.unreadable[student, name] = str(error)


def graded_cell_id(cell: object) -> str | None:
    """The grade id of a graded cell (None for any other cell, or one whose metadata is not as nbgrader writes it)."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    if not isinstance(nbgrader, dict) or not nbgrader.get("grade"):
        return None
    return str(nbgrader.get("grade_id"))


def add_failures(summary: ClassSummary, name: str, notebook: dict) -> None:
    """Add the failure messages of one autograded notebook's graded cells."""
    for cell in notebook["cells"]:
        stats = summary.cells.get((name, graded_cell_id(cell)))
        if stats is None:
            continue
        message = failure_message(cell)
        if message is not None:
            stats.failures[message] += 1


def read_record(root: Path, summary: ClassSummary) -> None:
    """Grading seconds and errors per student from the pipeline's grading record, when there is one."""
    record = GradingRecord.load(root)
    summary.timing_recorded = bool(record.students)
    for student, entry in sorted(record.students.items()):
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("seconds"), (int, float)) and math.isfinite(entry["seconds"]):
            summary.seconds[student] = float(entry["seconds"])
        if entry.get("error"):
            summary.errors[student] = str(entry["error"])


def note_ungraded(root: Path, summary: ClassSummary) -> None:
    """Record an error for each student with a submission in `submitted/` but none in the gradebook."""
    submitted = root / "submitted"
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
    """The class's scores, pass rates, failure messages and grading times for the course directory `root`."""
    root = Path(root)
    if db_url is None and not (root / "gradebook.db").is_file():
        raise FileNotFoundError(f"{root / 'gradebook.db'} does not exist: autograde the class first")
    summary = ClassSummary()
    read_gradebook(gradebook_url(root, db_url), summary)
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


def save(figure, path: Path) -> Path:
    """Write a figure as a PNG."""
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def score_bins(top: float) -> list[float]:
    """Histogram bin edges from 0 to `top`: one bar per whole point, at most about 40 bars."""
    step = max(1, math.ceil(top / 40))
    return [edge - 0.5 * step for edge in range(0, math.ceil(top) + 2 * step, step)]


def plot_scores(stats: NotebookStats, path: Path) -> Path:
    """Histogram of one notebook's totals."""
    figure = new_figure(5, 3)
    axes = figure.add_subplot()
    axes.hist(stats.scores, bins=score_bins(max([stats.max_score, *stats.scores, 1.0])),
              color="tab:blue", edgecolor="white")
    axes.set_xlabel(f"total score (max {stats.max_score:g})")
    axes.set_ylabel("students")
    axes.set_title(stats.name)
    return save(figure, path)


def plot_pass_rates(cells: list[CellStats], path: Path) -> Path:
    """Horizontal bar chart of the pass rate of each graded cell, coloured by notebook."""
    figure = new_figure(7, 1.2 + 0.25 * max(1, len(cells)))
    axes = figure.add_subplot()
    notebooks = sorted({cell.notebook for cell in cells})
    colours = {name: f"C{i % 10}" for i, name in enumerate(notebooks)}
    labels = [f"{cell.notebook} / {cell.cell}" for cell in cells]
    axes.barh(range(len(cells)), [100 * (cell.pass_rate or 0) for cell in cells],
              color=[colours[cell.notebook] for cell in cells])
    axes.set_yticks(range(len(cells)), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("students with full points (%)")
    axes.set_title("pass rate per graded cell")
    return save(figure, path)


def plot_seconds(seconds: dict[str, float], path: Path) -> Path:
    """Histogram of grading seconds per student."""
    figure = new_figure(5, 3)
    axes = figure.add_subplot()
    axes.hist(list(seconds.values()), bins=min(20, max(1, len(seconds))), color="tab:orange", edgecolor="white")
    axes.set_xlabel("grading time per student (s)")
    axes.set_ylabel("students")
    axes.set_title("grading time")
    return save(figure, path)


# --- the page --------------------------------------------------------------------------------------

STYLE = """body { font-family: sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; }
pre { white-space: pre-wrap; margin: 0; }
.muted { color: #777; }"""


def esc(value: object) -> str:
    """`value` as text safe in HTML content and attributes."""
    return html.escape(str(value), quote=True)


def table(header: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """An HTML table from already escaped cells; columns in `numeric` are right-aligned."""
    numeric = numeric or set()
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def image(path: Path) -> str:
    """An <img> of a PNG lying beside the page."""
    return f'<p><img src="{esc(path.name)}" alt="{esc(path.stem)}"></p>\n'


def safe_name(text: str) -> str:
    """`text` usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def scores_section(summary: ClassSummary, folder: Path, stem: str) -> str:
    """Per notebook: a histogram of totals and a table of mean, median, min and max."""
    rows, images = [], []
    for name, stats in summary.notebooks.items():
        numbers = stats.describe()
        rows.append([esc(name), f"{stats.max_score:g}", str(len(stats.totals)), str(len(stats.handed_in)),
                     *(f"{numbers[key]:.2f}" if numbers else "-" for key in ("mean", "median", "min", "max"))])
        if stats.totals:
            images.append(image(plot_scores(stats, folder / f"{stem}_scores_{safe_name(name)}.png")))
    header = ["notebook", "points", "students", "handed in", "mean", "median", "lowest", "highest"]
    return ("<h2>Score distribution per notebook</h2>\n"
            '<p class="muted">Totals from the gradebook; a notebook not handed in scores zero there.</p>\n'
            + table(header, rows, numeric={1, 2, 3, 4, 5, 6, 7}) + "".join(images))


def pass_rate_text(cell: CellStats) -> str:
    """A cell's pass rate as a percentage, or why there is none."""
    rate = cell.pass_rate
    if rate is None:
        return "n/a (no points)" if cell.points <= 0 else "n/a"
    return f"{100 * rate:.0f}%"


def pass_rate_section(summary: ClassSummary, folder: Path, stem: str) -> str:
    """Table and bar chart of the pass rate of each graded cell."""
    cells = list(summary.cells.values())
    rows = [[esc(cell.notebook), esc(cell.cell), f"{cell.points:g}", f"{cell.full}/{cell.graded}", pass_rate_text(cell)]
            for cell in cells]
    scored = [cell for cell in cells if cell.pass_rate is not None]
    chart = image(plot_pass_rates(scored, folder / f"{stem}_pass_rates.png")) if scored else ""
    return ("<h2>Pass rate per graded cell</h2>\n"
            + table(["notebook", "cell", "points", "passed/graded", "%"], rows, numeric={2, 3, 4}) + chart)


def failures_section(summary: ClassSummary) -> str:
    """The most common failure messages of each graded cell, with counts."""
    rows = []
    for cell in summary.cells.values():
        for message, count in cell.failures.most_common(TOP_MESSAGES):
            rows.append([esc(cell.notebook), esc(cell.cell), str(count), f"<pre>{esc(message)}</pre>"])
    body = table(["notebook", "cell", "students", "message"], rows, numeric={2}) if rows else \
        '<p class="muted">No failures recorded in the autograded notebooks.</p>\n'
    return f"<h2>Most common failure messages (top {TOP_MESSAGES} per cell)</h2>\n" + body


def timing_section(summary: ClassSummary, folder: Path, stem: str) -> str:
    """Grading seconds per student: a table and a histogram."""
    heading = "<h2>Grading time per student</h2>\n"
    if not summary.timing_recorded:
        return heading + f'<p class="muted">no timing recorded ({RECORD_FILE} not found)</p>\n'
    students = sorted(set(summary.students) | set(summary.seconds))
    rows = [[esc(student), f"{summary.seconds[student]:.1f}" if student in summary.seconds else "-",
             "error" if student in summary.errors else "ok"] for student in students]
    values = list(summary.seconds.values())
    total = (f"<p>{len(values)} students timed: total {sum(values):.0f} s, mean {statistics.mean(values):.1f} s, "
             f"max {max(values):.1f} s.</p>\n") if values else '<p class="muted">no timing recorded</p>\n'
    chart = image(plot_seconds(summary.seconds, folder / f"{stem}_seconds.png")) if values else ""
    return heading + total + chart + table(["student", "seconds", "status"], rows, numeric={1})


def unreadable_section(summary: ClassSummary) -> str:
    """The autograded notebooks that were not read, and why (shown only when there are some)."""
    if not summary.unreadable:
        return ""
    rows = [[esc(student), esc(notebook), esc(shorten(reason, 500))]
            for (student, notebook), reason in sorted(summary.unreadable.items())]
    return ("<h2>Autograded notebooks not read</h2>\n"
            '<p class="muted">Their failure messages are not counted above; the scores come from the gradebook.</p>\n'
            + table(["student", "notebook", "why"], rows))


def errors_section(summary: ClassSummary) -> str:
    """The students whose autograding reported an error."""
    heading = "<h2>Students with autograde errors</h2>\n"
    if not summary.errors:
        return heading + '<p class="muted">none</p>\n'
    rows = [[esc(student), f"<pre>{esc(shorten(error, 2000))}</pre>"]
            for student, error in sorted(summary.errors.items())]
    return heading + table(["student", "error"], rows)


def render(summary: ClassSummary, root: Path, folder: Path, stem: str) -> str:
    """The whole report page, writing its plots into `folder`."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Class report: {ASSIGNMENT}"
    intro = (f"<p>{len(summary.students)} students with a submission ({summary.gradebook_students} in the gradebook); "
             f"course directory <code>{esc(root.resolve())}</code>; generated {when}.</p>\n")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n" + intro
            + scores_section(summary, folder, stem) + pass_rate_section(summary, folder, stem)
            + failures_section(summary) + unreadable_section(summary) + timing_section(summary, folder, stem)
            + errors_section(summary)
            + "</body>\n</html>\n")


def write_report(root: Path, db_url: str | None = None, out: Path | None = None) -> Path:
    """Write the class report page (and its PNG plots beside it) and return the page's path."""
    root = Path(root)
    out = Path(out) if out is not None else root / "reports" / "class_report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = class_summary(root, db_url)
    stem = safe_name(out.stem)
    for stale in out.parent.glob(f"{stem}_*.png"):  # plots of an earlier report
        stale.unlink()
    out.write_text(render(summary, root, out.parent, stem), encoding="utf-8")
    return out

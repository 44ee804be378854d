"""Notebook sources: jupytext percent files (`source/<assignment>/N_name.py`) built into nbgrader notebooks.

A cell's header names its nbgrader role, e.g. `# %% kind="solution" grade_id="encoder"`:
  solution  a cell the student completes (### BEGIN/END SOLUTION regions are replaced by stubs),
  tests     a locked grade cell worth `points` (### BEGIN/END HIDDEN TESTS regions never reach students),
  guard     a locked 0-point grade cell whose hidden part runs only under autograde (skip_training),
  locked    a read-only cell.
Cells without a kind are ordinary cells students may edit.

Cells state the grader's figures as `{{TABLE.key.threshold}}` or `{{TABLE.key.reference:.2f}}`
(TABLE one of `grader.reference`'s tables, an optional format spec after the colon); the build writes
the numbers in, so the text and the grader cannot disagree. Training cells are marked `timed="KEY"` in
their header; `{{TIME.KEY}}` states how long the cell takes with all 60,000 training images and
`{{TIME.KEY.offline}}` with the offline set, both from the measurements of `benchmarks/bench_training.py`
(grader/training_times.json).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jupytext
import nbformat

from grader import reference

SOURCE_GLOB = "[0-9]_*.py"
ROLES = {
    "solution": {"solution": True, "grade": False, "locked": False},
    "tests": {"solution": False, "grade": True, "locked": True},
    "guard": {"solution": False, "grade": True, "locked": True},
    "locked": {"solution": False, "grade": False, "locked": True},
}
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS\n.*?^[ \t]*### END HIDDEN TESTS\n?", re.S | re.M)
SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION", re.S | re.M)
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
FIGURE = re.compile(r"\{\{\s*([A-Z_]+)\.(\w+)\.(reference|threshold)(?::([^}\s]+))?\s*\}\}")
TIME = re.compile(r"\{\{\s*TIME\.(\w+)(\.offline)?\s*\}\}")
TIMES_FILE = Path(__file__).with_name("training_times.json")


def training_times() -> dict:
    """The measured training times (benchmarks/bench_training.py): the machine and each timed cell's seconds."""
    return json.loads(TIMES_FILE.read_text())


def duration(low: float, high: float) -> str:
    """A range of seconds in words: "20 to 35 seconds", "2 to 4 minutes"."""
    if high < 90:
        low, high, unit = round(low / 5) * 5 or 5, round(high / 5) * 5 or 5, "seconds"
    else:
        low, high, unit = round(low / 60 * 2) / 2 or 0.5, round(high / 60 * 2) / 2 or 0.5, "minutes"
    return f"about {low:g} {unit}" if low == high else f"{low:g} to {high:g} {unit}"


def fill_times(text: str, times: dict | None = None) -> str:
    """Text with every `{{TIME.KEY[.offline]}}` replaced by the measured range of that timed cell."""
    if not TIME.search(text):
        return text
    measured = training_times() if times is None else times

    def words(match: re.Match) -> str:
        key, offline = match.group(1), bool(match.group(2))
        if key == "machine":
            return measured["machine"].replace(", one torch thread", "")
        cells = measured["cells"]
        if key not in cells:
            raise ValueError(f"{match.group(0)} names no timed cell of {TIMES_FILE.name}; run benchmarks/bench_training.py")
        seconds = list(cells[key]["seconds"].values())
        scale = 1.0 if offline else cells[key]["full_scale"]
        return duration(min(seconds) * scale, max(seconds) * scale)
    return TIME.sub(words, text)


def fill_figures(text: str) -> str:
    """Markdown with every `{{TABLE.key.attribute[:spec]}}` replaced by that figure of grader.reference."""
    def number(match: re.Match) -> str:
        table, key, attribute, spec = match.groups()
        figures = getattr(reference, table, None)
        if not isinstance(figures, dict) or key not in figures:
            raise ValueError(f"{match.group(0)} names no figure of grader/reference.py")
        return format(getattr(figures[key], attribute), spec or "g")
    return FIGURE.sub(number, text)


def nbgrader_metadata(metadata: dict) -> dict | None:
    """The nbgrader cell metadata for a percent cell's header metadata, or None for a plain cell."""
    kind = metadata.get("kind")
    if kind is None:
        return None
    if kind not in ROLES:
        raise ValueError(f"unknown cell kind {kind!r}; use one of {sorted(ROLES)}")
    if "grade_id" not in metadata:
        raise ValueError(f"a {kind} cell needs a grade_id")
    meta = {"schema_version": 3, "grade_id": metadata["grade_id"], "task": False, **ROLES[kind]}
    if meta["grade"]:
        meta["points"] = metadata.get("points", 0) if kind == "guard" else metadata["points"]
    return meta


def build_notebook(py_path: Path) -> nbformat.NotebookNode:
    """Read a percent-format source and return the nbgrader source notebook it describes."""
    text = jupytext.read(py_path, fmt="py:percent")
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": text.metadata["kernelspec"],
                                                  "language_info": {"name": "python"}})
    for index, cell in enumerate(text.cells):
        meta = nbgrader_metadata(cell.metadata) if cell.cell_type == "code" else None
        cell_id = meta["grade_id"] if meta else f"{py_path.stem}-{index}"
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(fill_times(fill_figures(cell.source)), id=cell_id)
        else:
            new = nbformat.v4.new_code_cell(fill_figures(cell.source), id=cell_id)
        if meta:
            new.metadata["nbgrader"] = meta
        if cell.cell_type == "code" and "timed" in cell.metadata:
            new.metadata["timed"] = str(cell.metadata["timed"])
        notebook.cells.append(new)
    nbformat.validate(notebook)
    return notebook


def serialise(notebook: nbformat.NotebookNode) -> str:
    """The notebook as the exact text written to disk (stable, so drift checks can compare text)."""
    return nbformat.writes(notebook) + "\n"


def source_files(assignment_dir: Path) -> list[Path]:
    """The percent-format notebook sources of an assignment, in order."""
    return sorted(assignment_dir.glob(SOURCE_GLOB))


def build_sources(assignment_dir: Path) -> list[Path]:
    """Write each percent source's nbgrader notebook beside it; return the notebooks built.

    A notebook is rewritten only when it changes, through a temporary file renamed over it: a process
    reading it meanwhile (a parallel test, a grading run) sees the old or the new file, never half of one.
    """
    written = []
    for py_path in source_files(assignment_dir):
        target = py_path.with_suffix(".ipynb")
        text = serialise(build_notebook(py_path))
        if not target.exists() or target.read_text() != text:
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            temporary.write_text(text)
            temporary.replace(target)
        written.append(target)
    return written


def stale_sources(assignment_dir: Path) -> list[str]:
    """Names of source notebooks that are missing or differ from what their percent source builds."""
    stale = []
    for py_path in source_files(assignment_dir):
        target = py_path.with_suffix(".ipynb")
        if not target.exists() or target.read_text() != serialise(build_notebook(py_path)):
            stale.append(target.name)
    return stale


def strip_hidden_tests(source: str) -> str:
    """A cell's source without its hidden-test regions."""
    return HIDDEN.sub("", source)


def solution_code(source: str) -> str:
    """A solution cell's source with the solution markers removed (what a perfect student writes)."""
    return SOLUTION_MARKERS.sub("", source)


def cells_by_grade_id(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """Map each nbgrader cell's grade_id to the cell."""
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in notebook.cells
            if "nbgrader" in cell.metadata and "grade_id" in cell.metadata["nbgrader"]}


def read(path: Path) -> nbformat.NotebookNode:
    """Read a notebook file."""
    return nbformat.read(path, as_version=4)


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook file."""
    Path(path).write_text(serialise(notebook))


def points(notebook: nbformat.NotebookNode) -> dict[str, float]:
    """Points of each grade cell of a notebook, by grade_id."""
    return {gid: float(cell.metadata["nbgrader"].get("points", 0))
            for gid, cell in cells_by_grade_id(notebook).items() if cell.metadata["nbgrader"].get("grade")}



def setup_namespace(notebook: nbformat.NotebookNode) -> dict:
    """Run a source notebook's set-up cells (the code cells before its first solution cell) and return the namespace."""
    namespace: dict = {"__name__": "__notebook__"}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.metadata.get("nbgrader", {}).get("solution"):
            break
        exec(compile(cell.source, cell.get("id", "setup"), "exec"), namespace)
    return namespace


def definitions(notebook: nbformat.NotebookNode, replacements: dict[str, str] | None = None,
                setup: dict | None = None) -> dict:
    """Run a source notebook's set-up cells and its solution cells (or `replacements`) and return the namespace.

    Set-up cells are the code cells before the first solution cell (flags, imports, data); training
    cells come later and are never run, so this takes seconds. A `setup` namespace from
    `setup_namespace` is copied instead of running the set-up again.
    """
    replacements = replacements or {}
    namespace = dict(setup) if setup is not None else setup_namespace(notebook)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {}) if cell.cell_type == "code" else {}
        if meta.get("solution"):
            exec(compile(replacements.get(meta["grade_id"], solution_code(cell.source)), meta["grade_id"], "exec"),
                 namespace)
    return namespace


def hidden_tests(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """The hidden-test code of each grade cell that has some, by grade_id."""
    found = {}
    for grade_id, cell in cells_by_grade_id(notebook).items():
        regions = HIDDEN.findall(cell.source)
        if regions and cell.metadata["nbgrader"].get("points", 0) > 0:
            found[grade_id] = "\n".join(line for region in regions for line in region.splitlines()
                                        if "HIDDEN TESTS" not in line)
    return found

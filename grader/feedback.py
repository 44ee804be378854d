"""What `nbgrader generate_feedback` gives students, and how graded notebooks read in the formgrader.

nbgrader_config.py wires these into nbgrader's own steps, all after `grader.sanitize.SanitizeOutputs`:

  NameGradedCells       a GenerateFeedback preprocessor: the task of each graded cell (`grader.checks`: the first line of
                        its judge's docstring) in `resources["aecourse"]["tasks"]`, which FEEDBACK_TEMPLATE lists in
                        the page's summary beside the cell's grade id;
  SummariseHiddenTests  a GenerateFeedback preprocessor: each graded cell's hidden-test region (the
                        `grader.collect` calls between the HIDDEN TESTS markers) becomes one comment line saying
                        what the course's grader checks there;
  FEEDBACK_TEMPLATE     the feedback page: nbgrader's feedback template with that summary and OUTPUT_WRAP_CSS;
  PAGE_TEMPLATE         every other page an HTMLExporter renders from the course's config (the formgrader's
                        submission view): the selected template with OUTPUT_WRAP_CSS;
  OUTPUT_WRAP_CSS       the grader's own CSS (never a student's) that wraps printed text, verdicts and errors
                        at the page edge instead of letting them run past it;
  keep_only_pages       GenerateFeedback's post-convert hook: a feedback folder keeps only the HTML pages of its
                        notebooks. nbgrader copies the autograded folder's other files (checkpoints, aelib/) into
                        it; nbgrader_config.py stops that copy in `nbgrader generate_feedback`, and the hook
                        removes it where the formgrader generates feedback (its converter shares the
                        CourseDirectory that autograde and generate_assignment copy files with).
"""
from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path
from typing import Callable

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List

TEMPLATES = Path(__file__).resolve().parent / "templates"
FEEDBACK_TEMPLATE = TEMPLATES / "feedback.html.j2"
PAGE_TEMPLATE = TEMPLATES / "wrapped_outputs.html.j2"
OUTPUT_WRAP_CSS = TEMPLATES / "output_wrap.css"
# A BEGIN marker that no END marker closes: everything from it to the end of the cell is hidden.
UNCLOSED_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*(\n.*)?\Z", re.S | re.M)
HIDDEN_TESTS_HEADER = "# Hidden tests (run by the course's grader; the result is shown below):"
HIDDEN_WIDTH = 96  # characters a summary line may take before it wraps (the page shows about 110)
HIDDEN_SETUP_LINE = "# Hidden setup (run only while the course's grader grades this notebook); it is not a test."
SETUP_TASK = "prepares the notebook for grading (no points)"


# --- tasks ---------------------------------------------------------------------------------------

def judge_task(notebook: str, grade_id: str) -> str:
    """What the check of `grade_id` in `notebook` verifies (its judge's docstring; "" for no such check)."""
    from grader.checks import checks_of

    check = checks_of(notebook).get(grade_id)
    return check.task if check is not None else ""


def is_graded(cell: NotebookNode) -> bool:
    """Whether nbgrader scores a cell (a grade cell or a task cell)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return isinstance(meta, dict) and bool(meta.get("grade") or meta.get("task")) and isinstance(
        meta.get("grade_id"), str)


def graded_code_cell(cell: NotebookNode) -> bool:
    """Whether a cell is a locked code grade cell (nbgrader restores its source, hidden tests included)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and is_graded(cell) and not meta.get("solution")


def cell_task(notebook: str, cell: NotebookNode) -> str:
    """What a graded cell is about, in a few words: its judge's task, else its nbgrader role."""
    meta = cell.metadata["nbgrader"]
    task = judge_task(notebook, meta["grade_id"])
    if task:
        return task
    if graded_code_cell(cell) and not meta.get("points"):
        return SETUP_TASK
    if meta.get("task"):
        return "Task"
    if cell.get("cell_type") == "markdown":
        return "Written response"
    return "Coding free-response" if meta.get("solution") else "Test cell"


def hidden_line(task: str) -> str:
    """The comment that stands for a hidden region: what it checks (wrapped to the page), or that it only sets up
    grading."""
    if not task or task == SETUP_TASK:
        return HIDDEN_SETUP_LINE
    lines = textwrap.wrap(" ".join(task.split()), HIDDEN_WIDTH - 4, break_long_words=False)
    return "\n".join([HIDDEN_TESTS_HEADER, *(f"#   {line}" for line in lines)])


def summarise_hidden(source: str, line: str) -> str:
    """`source` with each hidden region (and an unclosed one's rest) replaced by `line`, at the marker's indent."""
    from grader.notebooks import HIDDEN  # here: nbgrader_config.py imports this module for every nbgrader command

    def replace(match: re.Match) -> str:
        text = match.group(0)
        indent = text[:len(text) - len(text.lstrip(" \t"))]
        return "\n".join(indent + part for part in line.split("\n")) + ("\n" if text.endswith("\n") else "")
    return UNCLOSED_HIDDEN.sub(replace, HIDDEN.sub(replace, source))


# --- preprocessors -------------------------------------------------------------------------------

class FeedbackPreprocessor(NbGraderPreprocessor):
    """A GenerateFeedback step of this course."""

    # Unused; declared so that nbconvert's HTMLExporter, which sets it on every preprocessor it builds, does not
    # warn that it is not recognized (as in grader.sanitize.SanitizeOutputs).
    display_data_priority = List().tag(config=True)


class NameGradedCells(FeedbackPreprocessor):
    """Feedback: each graded cell's task, by grade id, in `resources["aecourse"]["tasks"]` for the summary."""

    def preprocess(self, nb, resources):
        """Record the task of every graded cell of the notebook."""
        notebook = resources["nbgrader"]["notebook"]
        tasks = {cell.metadata["nbgrader"]["grade_id"]: cell_task(notebook, cell)
                 for cell in nb.cells if is_graded(cell)}
        resources.setdefault("aecourse", {})["tasks"] = tasks
        return nb, resources


class SummariseHiddenTests(FeedbackPreprocessor):
    """Feedback: each graded cell's hidden-test region shown as one line saying what it checks."""

    def preprocess(self, nb, resources):
        """Replace the hidden regions of every locked grade cell."""
        notebook = resources["nbgrader"]["notebook"]
        for cell in nb.cells:
            if graded_code_cell(cell) and "HIDDEN TESTS" in cell.source:
                cell.source = summarise_hidden(cell.source, hidden_line(cell_task(notebook, cell)))
        return nb, resources


# --- the feedback folder -------------------------------------------------------------------------

def page_names(autograded: Path) -> set[str]:
    """The names of the feedback pages of an autograded folder's notebooks (`1_ae.ipynb` gives `1_ae.html`)."""
    with os.scandir(autograded) as entries:
        return {entry.name[:-len(".ipynb")] + ".html" for entry in entries
                if entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False)}


def remove_all_but(folder: Path, keep: set[str]) -> None:
    """Delete everything in `folder` but the regular files named in `keep` (links removed, never followed)."""
    with os.scandir(folder) as entries:
        for entry in list(entries):
            if entry.name in keep and entry.is_file(follow_symlinks=False):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def keep_only_pages(root: Path) -> Callable:
    """GenerateFeedback's post-convert hook for the course at `root` (nbgrader's default folder layout)."""
    autograded_root = Path(root).resolve() / "autograded"
    feedback_root = Path(root).resolve() / "feedback"

    def hook(notebooks=(), **_) -> None:
        """Each feedback folder just written keeps only the HTML pages of its autograded notebooks."""
        for autograded in {Path(notebook).resolve().parent for notebook in notebooks}:
            if autograded.parent.parent != autograded_root:
                continue
            feedback = feedback_root / autograded.parent.name / autograded.name
            if feedback.is_dir() and not feedback.is_symlink():
                remove_all_but(feedback, page_names(autograded))
    return hook


def feedback_preprocessors() -> list[type]:
    """nbgrader's GenerateFeedback steps (GetGrades, its CSS header) followed by this module's two."""
    from nbgrader.converters import GenerateFeedback

    return [*GenerateFeedback.class_traits()["preprocessors"].default(), NameGradedCells, SummariseHiddenTests]

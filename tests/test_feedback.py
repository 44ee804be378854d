"""Feedback pages (grader/feedback.py) on a small hand-made course: one autograded 1_ae notebook with a passing,
a failing and a setup grade cell, a gradebook made with nbgrader's API, and files beside the notebook that must
not reach the feedback folder. `nbgrader generate_feedback` runs once (through grader.pipeline); no notebook is
executed or graded here.
"""
from __future__ import annotations

import html.parser
import os
import shutil
import warnings
from pathlib import Path

import nbformat
import pytest
from sqlalchemy.exc import SAWarning

from browser import chromium
from grader import feedback, pipeline
from grader.judge import judges_of
from grader.pipeline import ASSIGNMENT, REPO, with_tools_on_path

NOTEBOOK = "1_ae"
STUDENT = "alice"
PASSING, FAILING, GUARD, SOLUTION = "test_sample_train", "test_encoder_decoder", "skip_training_guard", "sample_train"
SCORES = {GUARD: (0, 0), PASSING: (1, 1), FAILING: (0, 2)}  # grade_id: (score, points)
LONG_MESSAGE = " ".join(f"Encoder({n}) output should have shape (1, {n}), got (1, {n + 1})." for n in range(2, 30))
PASS_MESSAGE = "sample_train(8) returned images of shape (8, 1, 28, 28) drawn from the training split " * 4
SCRIPT = "<script>window.aecourseFeedbackCanary = 1</script>"
COLLECT = ('import grader.collect.ae\nimport grader.collect.common\ngrader.collect.common.store("{id}", '
           'grader.collect.ae.collect_{id}, sample_train)\n')
# Files an autograded folder holds beside its notebooks (the submission's checkpoints, the released aelib/,
# what a kernel might leave): none of them belongs in feedback.
LEFTOVERS = ["1_ae_compression.pth", "1_ae_sparse.safetensors", "aelib/__init__.py", "aelib/data.py",
             ".aecourse/collected/test_sample_train.safetensors", "timestamp.txt", "notes.html"]


# --- the course ----------------------------------------------------------------------------------

def grade_cell(grade_id: str, source: str, outputs: list) -> nbformat.NotebookNode:
    """A locked code grade cell as nbgrader's autograde leaves it (source restored, hidden tests included)."""
    meta = {"nbgrader": {"grade": True, "grade_id": grade_id, "locked": True, "points": SCORES[grade_id][1],
                         "schema_version": 3, "solution": False, "task": False}}
    return nbformat.v4.new_code_cell(source, metadata=meta, outputs=outputs)


def verdict(passed: bool, message: str) -> nbformat.NotebookNode:
    """The output the course's grader leaves under a graded cell (grader/preprocessors.py's verdict_output)."""
    if passed:
        return nbformat.v4.new_output("stream", name="stdout", text=f"Graded by the course's grader: {message}\n")
    return nbformat.v4.new_output("error", ename="AssertionError", evalue=message,
                                  traceback=[f"Graded by the course's grader: {message}"])


def autograded_notebook() -> nbformat.NotebookNode:
    """The student's graded 1_ae: markdown with a script, a setup cell, a solution, a passing and a failing cell."""
    solution_meta = {"nbgrader": {"grade": False, "grade_id": SOLUTION, "locked": False, "schema_version": 3,
                                  "solution": True, "task": False}}
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"# Autoencoders\n\nMy notes. {SCRIPT}"),
        grade_cell(GUARD, "# This cell is locked.\n### BEGIN HIDDEN TESTS\nskip_training = True\n"
                          "### END HIDDEN TESTS\n", []),
        nbformat.v4.new_code_cell("def sample_train(n, return_labels=False):\n    return n\n", metadata=solution_meta),
        grade_cell(PASSING, 'print("Visible tests passed.")\n### BEGIN HIDDEN TESTS\n' + COLLECT.format(id=PASSING)
                   + "### END HIDDEN TESTS\n", [verdict(True, PASS_MESSAGE)]),
        grade_cell(FAILING, "images = sample_train(2)\n### BEGIN HIDDEN TESTS\n" + COLLECT.format(id=FAILING)
                   + '### END HIDDEN TESTS\nprint("Visible tests passed.")', [verdict(False, LONG_MESSAGE)]),
    ])


def make_gradebook(url: str) -> None:
    """The assignment with 1_ae's cells, and alice's scores, entered through nbgrader's API."""
    from nbgrader.api import Gradebook

    with_tools_on_path(os.environ)
    with warnings.catch_warnings(), Gradebook(url) as gradebook:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission under SQLAlchemy 2
        gradebook.add_assignment(ASSIGNMENT)
        gradebook.add_notebook(NOTEBOOK, ASSIGNMENT)
        gradebook.add_solution_cell(SOLUTION, NOTEBOOK, ASSIGNMENT)
        for grade_id, (_, points) in SCORES.items():
            gradebook.add_grade_cell(grade_id, NOTEBOOK, ASSIGNMENT, max_score=points, cell_type="code")
        gradebook.add_student(STUDENT)
        gradebook.add_submission(ASSIGNMENT, STUDENT)
        for grade_id, (score, _) in SCORES.items():
            grade = gradebook.find_grade(grade_id, NOTEBOOK, ASSIGNMENT, STUDENT)
            grade.auto_score = float(score)
            grade.needs_manual_grade = False
        gradebook.db.commit()


def make_course(root: Path) -> Path:
    """A course directory with this repository's nbgrader config, the gradebook and alice's autograded folder."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    make_gradebook(f"sqlite:///{root / 'gradebook.db'}")
    folder = root / "autograded" / STUDENT / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(autograded_notebook(), folder / f"{NOTEBOOK}.ipynb")
    for name in LEFTOVERS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\0" * 4096)
    return root


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The course, not yet given feedback (copy it before writing any)."""
    return make_course(tmp_path_factory.mktemp("feedback") / "course")


@pytest.fixture(scope="module")
def written(course: Path, tmp_path_factory) -> Path:
    """A copy of the course after `nbgrader generate_feedback` (grader.pipeline's run of it)."""
    root = Path(shutil.copytree(course, tmp_path_factory.mktemp("cli") / "course"))
    pipeline.generate_feedback(root)
    return root


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the module's checks of how pages lay out."""
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(written: Path) -> str:
    """alice's feedback page for 1_ae."""
    return (written / "feedback" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.html").read_text()


# --- reading pages ------------------------------------------------------------------------------

class _Text(html.parser.HTMLParser):
    """The text a page shows (no style or script content), and the text of its summary (`#toc`) items."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.summary: list[str] = []
        self._skip = 0
        self._in_toc = False
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        if tag == "div" and ("id", "toc") in attrs:
            self._in_toc, self._depth = True, 0
        if self._in_toc and tag == "div":
            self._depth += 1
        if self._in_toc and tag == "li":
            self.summary.append("")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1
        if self._in_toc and tag == "div":
            self._depth -= 1
            self._in_toc = self._depth > 0

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._in_toc and self.summary:
            self.summary[-1] += data


def read_page(page_html: str) -> _Text:
    """The parsed text of a page."""
    parsed = _Text()
    parsed.feed(page_html)
    return parsed


def shown_text(page_html: str) -> str:
    """Everything a page shows, as one string."""
    return "".join(read_page(page_html).text)


def summary_of(page_html: str) -> list[str]:
    """The items of a feedback page's summary, whitespace collapsed."""
    return [" ".join(item.split()) for item in read_page(page_html).summary]


def expected_summary() -> list[str]:
    """The summary items alice's 1_ae page must show: grade id, task and score of each graded cell."""
    return [f"{grade_id}: {' '.join(task(grade_id).split())} (Score: {score:.1f} / {points:.1f})"
            for grade_id, (score, points) in SCORES.items()]


def folder_contents(folder: Path) -> list[str]:
    """Every path under `folder`, relative to it, sorted."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def course_config(root: Path):
    """The course's nbgrader configuration, loaded as nbgrader and its formgrader load it."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def task(grade_id: str) -> str:
    """The task a graded cell of 1_ae is named by: its judge docstring's first line, or the setup label."""
    judge = judges_of(NOTEBOOK).get(grade_id)
    return judge.__doc__.strip().splitlines()[0].strip() if judge else feedback.SETUP_TASK


def overflow(driver, selector: str) -> list[tuple[int, int]]:
    """(scrollWidth, clientWidth) of each element matching `selector` in the open page."""
    return [tuple(pair) for pair in driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => [e.scrollWidth, e.clientWidth]);",
        selector)]


def check_text_wraps(driver, url: str) -> None:
    """Open `url`: the failing verdict and the printed text wrap inside their boxes, none runs past them."""
    driver.get(url)
    for selector in ("div.output_error pre", "div.output_stdout pre"):
        boxes = overflow(driver, selector)
        assert boxes, f"no {selector} on the page"
        for scroll_width, client_width in boxes:
            assert scroll_width <= client_width + 1, f"{selector}: {scroll_width} px of text in a {client_width} px box"


# --- tests -----------------------------------------------------------------------------------------

def test_summary_names_graded_cells_by_grade_id_and_task(page):
    assert summary_of(page) == expected_summary()
    assert "Test cell" not in page


def test_hidden_tests_show_as_one_line_saying_what_is_checked(page):
    text = shown_text(page)
    assert "grader.collect" not in page and "HIDDEN TESTS" not in text
    assert "skip_training = True" not in text
    for grade_id in (PASSING, FAILING):
        assert text.count(feedback.hidden_line(task(grade_id))) == 1, grade_id
    assert text.count(feedback.HIDDEN_SETUP_LINE) == 1
    assert text.count('print("Visible tests passed.")') == 2, "the visible lines around a hidden region are kept"
    assert "images = sample_train(2)" in text


def test_hidden_region_replacement_keeps_indent_and_closes_an_unclosed_region():
    source = ("x = 1\n    ### BEGIN HIDDEN TESTS\n    check(x)\n    ### END HIDDEN TESTS\n"
              "y = 2\n### BEGIN HIDDEN TESTS\nz")
    assert feedback.summarise_hidden(source, "# line") == "x = 1\n    # line\ny = 2\n# line"
    assert feedback.hidden_line("Checks a thing.") == (
        "# Hidden tests (run by the course's grader; the result is shown below):\n#   Checks a thing.")
    long = feedback.hidden_line("word " * 60)
    assert all(len(line) <= feedback.HIDDEN_WIDTH for line in long.split("\n")) and long.count("\n") == 4
    assert feedback.summarise_hidden("  ### BEGIN HIDDEN TESTS\n  x\n  ### END HIDDEN TESTS\n", "# a\n# b") == (
        "  # a\n  # b\n")
    assert feedback.hidden_line(feedback.SETUP_TASK) == feedback.HIDDEN_SETUP_LINE


def test_only_pages_reach_the_feedback_folder(written):
    assert folder_contents(written / "feedback" / STUDENT / ASSIGNMENT) == [f"{NOTEBOOK}.html"]
    assert all((written / "autograded" / STUDENT / ASSIGNMENT / name).is_file() for name in LEFTOVERS)


def test_student_script_is_still_stripped(page):
    assert "aecourseFeedbackCanary" not in page
    assert "My notes." in shown_text(page)


def test_verdicts_wrap_in_the_feedback_page(written, page, driver):
    assert LONG_MESSAGE in shown_text(page) and feedback.OUTPUT_WRAP_CSS.read_text() in page
    check_text_wraps(driver, (written / "feedback" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.html").as_uri())


def test_formgrader_view_wraps_and_sanitizes(course, tmp_path, driver):
    """The submission view, rendered as the formgrader renders it from the course's config."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    config = Config()  # what the formgrader extension sets before it loads the course's config
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.merge(course_config(course))
    assert config.HTMLExporter.preprocessors[0] == "grader.sanitize.SanitizeOutputs"
    resources = {"assignment_id": ASSIGNMENT, "notebook_id": NOTEBOOK, "submission_id": "1", "index": 0, "total": 1,
                 "base_url": "", "student": STUDENT, "last_name": "", "first_name": "", "notebook_path": ""}
    view, _ = HTMLExporter(config=config).from_filename(
        str(course / "autograded" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.ipynb"), resources=resources)
    assert "aecourseFeedbackCanary" not in view and feedback.OUTPUT_WRAP_CSS.read_text() in view
    (tmp_path / "view.html").write_text(view)
    check_text_wraps(driver, (tmp_path / "view.html").as_uri())


def test_formgrader_feedback_keeps_only_pages(course, tmp_path):
    """Feedback written as the formgrader's button writes it: nbgrader's API, sharing the course's CourseDirectory."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root = Path(shutil.copytree(course, tmp_path / "course"))
    config = course_config(root)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config, root=str(root)), config=config)
    result = api.generate_feedback(ASSIGNMENT, STUDENT)
    assert result["success"], result.get("log")
    folder = root / "feedback" / STUDENT / ASSIGNMENT
    assert folder_contents(folder) == [f"{NOTEBOOK}.html"]
    assert summary_of((folder / f"{NOTEBOOK}.html").read_text()) == expected_summary()

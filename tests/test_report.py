"""The class report on a small synthetic course: a gradebook made with nbgrader's API, autograded notebooks
written with nbformat and a grading record; no autograding, seconds to run.

`check_report_against_gradebook` is reusable on any autograded course (tests/test_pipeline.py calls it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import uuid
import warnings
from pathlib import Path

import nbformat
import pytest
from sqlalchemy.exc import SAWarning

from grader import parallel, report
from grader.pipeline import ASSIGNMENT, with_tools_on_path

CELLS = {"1_ae": {"skip_training_guard": 0.0, "test_encoder": 2.0, "test_loss": 1.0},
         "2_dae": {"test_add_noise": 2.0}}
SCORES = {
    "alice": {"1_ae": {"skip_training_guard": 0, "test_encoder": 2, "test_loss": 1}, "2_dae": {"test_add_noise": 2}},
    "bob": {"1_ae": {"skip_training_guard": 0, "test_encoder": 0, "test_loss": 1}, "2_dae": {"test_add_noise": 1}},
    "carol": {"1_ae": {"skip_training_guard": 0, "test_encoder": 0, "test_loss": 0}, "2_dae": {"test_add_noise": 0}},
}
HANDED_IN = {"alice": ["1_ae", "2_dae"], "bob": ["1_ae", "2_dae"], "carol": ["1_ae"]}  # nbgrader zeroes the rest
NOT_SUBMITTED = "dave"  # in the gradebook, without a submission
SHAPE = "Encoder(2) output should have shape (1, 2), got (1, 3)."
HOSTILE = "<script>alert('x')</script> is not a tensor"
RECORD = {"students": {
    "alice": {"digest": "a" * 64, "seconds": 61.2, "error": "", "finished": "2026-11-23T04:31:30Z"},
    "bob": {"digest": "b" * 64, "seconds": 30.0, "error": "", "finished": "2026-11-23T04:32:00Z"},
    "carol": {"digest": "c" * 64, "seconds": 12.5, "error": "kernel died <b>badly</b>",
              "finished": "2026-11-23T04:33:00Z"},
}}


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    """An error output as a kernel or the course's judge leaves it."""
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


OUTPUTS = {  # (student, notebook, cell): outputs of the autograded cell
    ("bob", "1_ae", "test_encoder"): [error_output("AssertionError", SHAPE)],
    ("carol", "1_ae", "test_encoder"): [error_output("ZeroDivisionError", "division by zero"),
                                        error_output("AssertionError", SHAPE + "\nsecond line")],
    ("carol", "1_ae", "test_loss"): [error_output("AssertionError", HOSTILE)],
    ("bob", "2_dae", "test_add_noise"): [error_output("NameError", "name 'x' is not defined")],
}


def make_gradebook(url: str) -> None:
    """The assignment, its grade cells, the students and their scores, entered through nbgrader's API."""
    from nbgrader.api import Gradebook

    with_tools_on_path(os.environ)
    with warnings.catch_warnings(), Gradebook(url) as gradebook:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission under SQLAlchemy 2
        gradebook.add_assignment(ASSIGNMENT)
        for notebook, cells in CELLS.items():
            gradebook.add_notebook(notebook, ASSIGNMENT)
            for cell, points in cells.items():
                gradebook.add_grade_cell(cell, notebook, ASSIGNMENT, max_score=points, cell_type="code")
        for student in [*SCORES, NOT_SUBMITTED]:
            gradebook.add_student(student)
        for student, notebooks in SCORES.items():
            gradebook.add_submission(ASSIGNMENT, student)
            for notebook, cells in notebooks.items():
                for cell, score in cells.items():
                    grade = gradebook.find_grade(cell, notebook, ASSIGNMENT, student)
                    grade.auto_score = float(score)
                    grade.needs_manual_grade = False
            gradebook.db.commit()


def autograded_notebook(student: str, notebook: str) -> nbformat.NotebookNode:
    """An autograded notebook: graded cells with their outputs, plus cells whose errors must not count."""
    cells = [nbformat.v4.new_markdown_cell(f"# {notebook}"),
             nbformat.v4.new_code_cell("1 / 0", outputs=[error_output("ZeroDivisionError", "not graded")])]
    for cell, points in CELLS[notebook].items():
        meta = {"nbgrader": {"grade": True, "grade_id": cell, "points": points, "solution": False,
                             "locked": True, "schema_version": 3}}
        cells.append(nbformat.v4.new_code_cell(f"# hidden tests of {cell}", metadata=meta,
                                               outputs=OUTPUTS.get((student, notebook, cell), [])))
    return nbformat.v4.new_notebook(cells=cells)


def make_course(root: Path, db_url: str | None = None) -> Path:
    """A course directory with a gradebook (SQLite unless `db_url`), autograded notebooks and a grading record."""
    root.mkdir(parents=True, exist_ok=True)
    make_gradebook(db_url or parallel.gradebook_url(root))
    for student, notebooks in HANDED_IN.items():
        folder = root / "autograded" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for notebook in notebooks:
            nbformat.write(autograded_notebook(student, notebook), folder / f"{notebook}.ipynb")
    (root / report.RECORD_FILE).write_text(json.dumps(RECORD))
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The synthetic course, with its SQLite gradebook, made once (nbgrader starts `alembic` for each new gradebook)."""
    return make_course(tmp_path_factory.mktemp("report") / "course")


@pytest.fixture
def course(template: Path, tmp_path: Path) -> Path:
    """A copy of the synthetic course that a test may change."""
    return Path(shutil.copytree(template, tmp_path / "course"))


def check_report_against_gradebook(root: Path, db_url: str | None = None) -> None:
    """Recompute totals and pass rates straight from the gradebook; check `class_summary` and the page agree."""
    from nbgrader.api import Gradebook

    totals: dict[str, dict[str, float]] = {}
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    with_tools_on_path(os.environ)
    with Gradebook(db_url or f"sqlite:///{Path(root).resolve() / 'gradebook.db'}") as gradebook:
        assignment = gradebook.find_assignment(ASSIGNMENT)
        students = sorted(submission.student.id for submission in assignment.submissions)
        for notebook in assignment.notebooks:
            totals[notebook.name] = {student: float(gradebook.find_submission_notebook(
                notebook.name, ASSIGNMENT, student).score) for student in students}
            for cell in notebook.grade_cells:
                grades = [gradebook.find_grade(cell.name, notebook.name, ASSIGNMENT, student) for student in students]
                graded = [g for g in grades if g.auto_score is not None or g.manual_score is not None]
                counts[notebook.name, cell.name] = (len(graded),
                                                    sum(float(g.score) >= cell.max_score - 1e-9 for g in graded))
    summary = report.class_summary(root, db_url)
    assert summary.students == students
    assert set(summary.notebooks) == set(totals)
    for name, expected in totals.items():
        assert summary.notebooks[name].totals == pytest.approx(expected), name
    assert {key: (cell.graded, cell.full) for key, cell in summary.cells.items()} == counts
    page = report.write_report(root, db_url).read_text()
    for name, expected in totals.items():
        if expected:
            assert f"{statistics.mean(expected.values()):.2f}" in page, f"mean total of {name} not in the report"
    for (notebook, cell), (graded, full) in counts.items():
        assert f"{full}/{graded}" in page, f"{notebook}/{cell} pass count not in the report"


def test_summary_has_the_gradebooks_numbers(course):
    summary = report.class_summary(course)
    assert summary.students == ["alice", "bob", "carol"]
    assert summary.gradebook_students == 4
    assert summary.notebooks["1_ae"].max_score == 3 and summary.notebooks["2_dae"].max_score == 2
    assert summary.notebooks["1_ae"].totals == {"alice": 3, "bob": 1, "carol": 0}
    assert summary.notebooks["2_dae"].totals == {"alice": 2, "bob": 1, "carol": 0}
    assert summary.notebooks["2_dae"].scores == [2, 1, 0]
    assert summary.notebooks["2_dae"].handed_in == {"alice", "bob"}
    assert summary.notebooks["1_ae"].describe() == {"mean": pytest.approx(4 / 3), "median": 1, "min": 0, "max": 3}
    stats = {key: (cell.points, cell.graded, cell.full) for key, cell in summary.cells.items()}
    assert stats == {("1_ae", "skip_training_guard"): (0, 3, 3), ("1_ae", "test_encoder"): (2, 3, 1),
                     ("1_ae", "test_loss"): (1, 3, 2), ("2_dae", "test_add_noise"): (2, 3, 1)}
    assert summary.cells["1_ae", "test_loss"].pass_rate == pytest.approx(2 / 3)
    assert summary.cells["1_ae", "skip_training_guard"].pass_rate is None  # worth no points


def test_summary_counts_failure_messages(course):
    cells = report.class_summary(course).cells
    assert cells["1_ae", "test_encoder"].failures == {SHAPE: 2}  # the judge's message, first line only
    assert cells["1_ae", "test_loss"].failures == {HOSTILE: 1}
    assert cells["2_dae", "test_add_noise"].failures == {"NameError: name 'x' is not defined": 1}
    assert not cells["1_ae", "skip_training_guard"].failures


def test_summary_reads_the_grading_record(course):
    summary = report.class_summary(course)
    assert summary.timing_recorded
    assert summary.seconds == {"alice": 61.2, "bob": 30.0, "carol": 12.5}
    assert summary.errors == {"carol": "kernel died <b>badly</b>"}


def test_failure_message():
    cell = nbformat.v4.new_code_cell("", outputs=[error_output("ValueError", "bad value\nmore")])
    assert report.failure_message(cell) == "ValueError: bad value"
    cell.outputs.append(error_output("AssertionError", "x" * 500))
    assert report.failure_message(cell) == "x" * (report.MAX_MESSAGE - 1) + "…"
    assert report.failure_message(nbformat.v4.new_code_cell("")) is None


def test_report_page_and_plots(course):
    page_path = report.write_report(course)
    assert page_path == course / "reports" / "class_report.html"
    page = page_path.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(CELLS) + 2  # a histogram per notebook, pass rates, grading seconds
    for name in images:
        assert (page_path.parent / name).read_bytes().startswith(b"\x89PNG"), name
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>badly</b>" not in page and "kernel died &lt;b&gt;badly&lt;/b&gt;" in page
    assert "1.33" in page and "1/3" in page and "2/3" in page and "67%" in page
    assert "61.2" in page


def test_report_elsewhere(course, tmp_path):
    page_path = report.write_report(course, out=tmp_path / "out" / "index.html")
    assert page_path.is_file()
    assert sorted(path.name for path in page_path.parent.glob("*.png")) == [
        "index_pass_rates.png", "index_scores_1_ae.png", "index_scores_2_dae.png", "index_seconds.png"]


def test_missing_grading_record(course):
    (course / report.RECORD_FILE).unlink()
    summary = report.class_summary(course)
    assert not summary.timing_recorded and summary.seconds == {} and summary.errors == {}
    page = report.write_report(course).read_text()
    assert "no timing recorded" in page
    assert "seconds.png" not in page


def test_submitted_but_not_graded(course):
    (course / "submitted" / "erin" / ASSIGNMENT).mkdir(parents=True)
    assert "erin" in report.class_summary(course).errors


def test_missing_gradebook(tmp_path):
    with pytest.raises(FileNotFoundError):
        report.class_summary(tmp_path)


def test_check_report_against_gradebook(course):
    check_report_against_gradebook(course)


def test_postgresql_gradebook(tmp_path, postgres_url):
    import sqlalchemy

    name = f"report_{uuid.uuid4().hex[:8]}"  # a database of its own: other tests share the server's gradebook
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    root = make_course(tmp_path / "course", url)
    assert not (root / "gradebook.db").exists()
    assert report.class_summary(root, url).notebooks["1_ae"].totals == {"alice": 3, "bob": 1, "carol": 0}
    check_report_against_gradebook(root, url)


def test_stale_plots_are_removed(course):
    page_path = report.write_report(course)
    assert (page_path.parent / "class_report_seconds.png").is_file()
    (course / report.RECORD_FILE).unlink()
    report.write_report(course)
    assert not (page_path.parent / "class_report_seconds.png").exists()


def test_unreadable_autograded_notebooks_are_listed_not_a_crash(course):
    autograded = course / "autograded"
    (autograded / "carol" / ASSIGNMENT / "1_ae.ipynb").write_text("[" * 100_000)  # RecursionError in json
    os.mkfifo(autograded / "bob" / ASSIGNMENT / "3_vae.ipynb")  # a notebook the gradebook does not know: not read
    (autograded / "bob" / ASSIGNMENT / "2_dae.ipynb").unlink()
    os.mkfifo(autograded / "bob" / ASSIGNMENT / "2_dae.ipynb")
    (autograded / "alice" / ASSIGNMENT / "2_dae.ipynb").unlink()
    (autograded / "alice" / ASSIGNMENT / "2_dae.ipynb").symlink_to(autograded / "bob" / ASSIGNMENT / "1_ae.ipynb")
    with open(autograded / "alice" / ASSIGNMENT / "1_ae.ipynb", "wb") as handle:
        handle.truncate(65 * 2**20)
    summary = report.class_summary(course)
    assert summary.unreadable == {
        ("alice", "1_ae"): "it is 65.0 MiB, more than the 64 MiB read",
        ("alice", "2_dae"): "it is a symbolic link (links are not followed)",
        ("bob", "2_dae"): "it is a named pipe (FIFO), not a file",
        ("carol", "1_ae"): "its JSON is nested too deeply to read"}
    cells = summary.cells
    assert cells["1_ae", "test_encoder"].failures == {SHAPE: 1}  # bob's, still read
    assert not cells["2_dae", "test_add_noise"].failures  # bob's FIFO was not read, alice's link not followed
    assert summary.notebooks["2_dae"].handed_in == set()  # a link or a FIFO is not a handed-in notebook
    page = report.write_report(course).read_text()
    assert "Autograded notebooks not read" in page and "its JSON is nested too deeply to read" in page
    assert "named pipe" in page and "symbolic link" in page


def test_an_unreadable_grading_record_is_no_record(course):
    (course / report.RECORD_FILE).write_text('{"students": ' * 100_000)
    summary = report.class_summary(course)
    assert not summary.timing_recorded and summary.seconds == {}
    assert "no timing recorded" in report.write_report(course).read_text()


def test_student_made_names_are_escaped(course):
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(parallel.gradebook_url(course)) as gradebook:
        warnings.simplefilter("ignore", SAWarning)
        gradebook.add_student("<u>mallory")  # graded before ids were checked: its folder must not be read
        gradebook.add_submission(ASSIGNMENT, "<u>mallory")
    (course / "submitted" / "<b>eve" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "frank" / ASSIGNMENT).mkdir(parents=True)
    summary = report.class_summary(course)
    assert summary.errors["<b>eve"] == "a folder in submitted/ whose name is not a valid student id: not graded"
    assert summary.errors["frank"] == "submitted, but no submission in the gradebook"
    assert summary.unreadable == {("<u>mallory", "*"): "not a valid student id: the autograded folder was not read"}
    record = json.loads((course / report.RECORD_FILE).read_text())
    record["students"]["<i>x</i>"] = {"seconds": 1.0, "error": "submission rejected: <s>1_ae.ipynb</s> is a link"}
    (course / report.RECORD_FILE).write_text(json.dumps(record))
    page = report.write_report(course).read_text()
    assert "<b>eve" not in page and "&lt;b&gt;eve" in page
    assert "<u>mallory" not in page and "&lt;u&gt;mallory" in page
    assert "<i>x" not in page and "&lt;i&gt;x&lt;/i&gt;" in page and "&lt;s&gt;1_ae.ipynb" in page

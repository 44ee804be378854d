"""The class report on a small synthetic course: a gradebook made with nbgrader's API, submitted and autograded
notebooks written with nbformat (graded cells' outputs made by the grader's own `kernel_text` and
`verdict_output`), feedback for one notebook and a grading record; no autograding, seconds to run.

`check_report_against_gradebook` is reusable on any autograded course (tests/test_pipeline.py calls it).
"""
from __future__ import annotations

import base64
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

from grader import cli, parallel, report, submitted
from grader.judge.carry import NO_RESULTS
from grader.pipeline import ASSIGNMENT, with_tools_on_path
from grader.preprocessors import kernel_text, picture_output, verdict_output

CELLS = {"1_ae": {"skip_training_guard": 0.0, "test_encoder": 2.0, "test_loss": 1.0},
         "2_dae": {"test_add_noise": 2.0}}
SCORES = {
    "alice": {"1_ae": {"skip_training_guard": 0, "test_encoder": 2, "test_loss": 1}, "2_dae": {"test_add_noise": 2}},
    "bob": {"1_ae": {"skip_training_guard": 0, "test_encoder": 0, "test_loss": 1}, "2_dae": {"test_add_noise": 1}},
    "carol": {"1_ae": {"skip_training_guard": 0, "test_encoder": 0, "test_loss": 0}, "2_dae": {"test_add_noise": 0}},
}
HANDED_IN = {"alice": ["1_ae", "2_dae"], "bob": ["1_ae", "2_dae"], "carol": ["1_ae"]}  # nbgrader zeroes the rest
NOT_SUBMITTED = "dave"  # in the gradebook, without a submission
FEEDBACK = [("alice", "1_ae"), ("carol", "1_ae")]  # the feedback pages generated
MATMUL = "mat1 and mat2 shapes cannot be multiplied ({} and 748x128)"
NOISE = "add_noise(x) should have shape (2, 3), got (2, 4)."
HOSTILE = "<script>alert('x')</script> is not a tensor"
FAKE_PASS = "Graded by the course's grader: passed (printed by the student's code)\n"
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="  # a 1x1 PNG
RECORD = {"students": {
    "alice": {"digest": "a" * 64, "seconds": 61.2, "error": "", "finished": "2026-11-23T04:31:30Z"},
    "bob": {"digest": "b" * 64, "seconds": 30.0, "error": "", "finished": "2026-11-23T04:32:00Z"},
    "carol": {"digest": "c" * 64, "seconds": 12.5, "error": "kernel died <b>badly</b>",
              "finished": "2026-11-23T04:33:00Z"},
}}


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    """An error output as a kernel leaves it."""
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


KERNEL = {  # (student, notebook, cell): what the kernel left in a graded cell before the grader judged it
    ("bob", "1_ae", "test_encoder"): [nbformat.v4.new_output("stream", name="stdout", text=FAKE_PASS),
                                      error_output("RuntimeError", MATMUL.format("1x784"))],
    ("carol", "1_ae", "test_encoder"): [error_output("RuntimeError", MATMUL.format("64x784"))],
}
FAILED = {  # (student, notebook, cell): the grader's message of a failed cell; every other cell worth points passed
    ("bob", "1_ae", "test_encoder"): NO_RESULTS,
    ("carol", "1_ae", "test_encoder"): NO_RESULTS,
    ("carol", "1_ae", "test_loss"): NO_RESULTS,
    ("bob", "2_dae", "test_add_noise"): NOISE,
}
SOLUTION = {("carol", "1_ae"): [error_output("ValueError", HOSTILE)]}  # outputs of the (ungraded) solution cell


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


def graded_outputs(student: str, notebook: str, cell: str, points: float) -> list:
    """A graded cell's outputs as the grader leaves them: the kernel's text and the verdict (a guard: as it ran)."""
    outputs = KERNEL.get((student, notebook, cell), [])
    if points <= 0:  # not judged: the grader leaves a zero-point cell's outputs as they are
        return outputs
    message = FAILED.get((student, notebook, cell))
    pictures = [picture_output(PIXEL)] if cell == "test_encoder" else []  # a picture the judge drew, under the verdict
    return kernel_text(outputs) + [verdict_output(message is None, message or "all hidden checks passed"), *pictures]


def autograded_notebook(student: str, notebook: str) -> nbformat.NotebookNode:
    """An autograded notebook: a solution cell, then the graded cells with their outputs."""
    cells = [nbformat.v4.new_markdown_cell(f"# {notebook}"),
             nbformat.v4.new_code_cell("def encoder(): ...", outputs=SOLUTION.get((student, notebook), []))]
    for cell, points in CELLS[notebook].items():
        meta = {"nbgrader": {"grade": True, "grade_id": cell, "points": points, "solution": False,
                             "locked": True, "schema_version": 3}}
        cells.append(nbformat.v4.new_code_cell(f"# hidden tests of {cell}", metadata=meta,
                                               outputs=graded_outputs(student, notebook, cell, points)))
    return nbformat.v4.new_notebook(cells=cells)


def make_course(root: Path, db_url: str | None = None) -> Path:
    """A course directory with a gradebook (SQLite unless `db_url`), submitted and autograded notebooks, one
    feedback page and a grading record."""
    root.mkdir(parents=True, exist_ok=True)
    make_gradebook(db_url or parallel.gradebook_url(root))
    for student, notebooks in HANDED_IN.items():
        for stage in ("submitted", "autograded"):
            (root / stage / student / ASSIGNMENT).mkdir(parents=True)
        for notebook in notebooks:
            nbformat.write(nbformat.v4.new_notebook(), root / "submitted" / student / ASSIGNMENT / f"{notebook}.ipynb")
            nbformat.write(autograded_notebook(student, notebook),
                           root / "autograded" / student / ASSIGNMENT / f"{notebook}.ipynb")
    for student, notebook in FEEDBACK:
        (root / "feedback" / student / ASSIGNMENT).mkdir(parents=True)
        (root / "feedback" / student / ASSIGNMENT / f"{notebook}.html").write_text("<p>feedback</p>")
    (root / report.RECORD_FILE).write_text(json.dumps(RECORD))
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The synthetic course, with its SQLite gradebook, made once (nbgrader starts `alembic` for each new gradebook)."""
    return make_course(tmp_path_factory.mktemp("report") / "course")


@pytest.fixture
def course(template: Path, tmp_path: Path) -> Path:
    """A copy of the synthetic course that a test may change."""
    return Path(shutil.copytree(template, tmp_path / "course", symlinks=True))


def submission_ids(root: Path, db_url: str | None = None) -> dict[tuple[str, str], str]:
    """The gradebook's submission notebook id of each (student, notebook)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url or parallel.gradebook_url(root)) as gradebook:
        return {(submission.student.id, notebook.name): notebook.id
                for submission in gradebook.find_assignment(ASSIGNMENT).submissions
                for notebook in submission.notebooks}


def check_report_against_gradebook(root: Path, db_url: str | None = None) -> None:
    """Recompute handed-in totals and pass rates from the gradebook and the submitted folders; check
    `class_summary` and the page agree."""
    from nbgrader.api import Gradebook

    totals: dict[str, dict[str, float]] = {}
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    with_tools_on_path(os.environ)
    with Gradebook(db_url or f"sqlite:///{Path(root).resolve() / 'gradebook.db'}") as gradebook:
        assignment = gradebook.find_assignment(ASSIGNMENT)
        students = sorted(submission.student.id for submission in assignment.submissions)
        handed_in = {student: submitted.handed_in_notebooks(submitted.submission_folder(root, student))
                     for student in students}
        for notebook in assignment.notebooks:
            handed = [student for student in students if notebook.name in handed_in[student]]
            totals[notebook.name] = {student: float(gradebook.find_submission_notebook(
                notebook.name, ASSIGNMENT, student).score) for student in handed}
            for cell in notebook.grade_cells:
                if cell.max_score <= 0:
                    continue
                grades = [gradebook.find_grade(cell.name, notebook.name, ASSIGNMENT, student) for student in handed]
                graded = [g for g in grades if g.auto_score is not None or g.manual_score is not None]
                counts[notebook.name, cell.name] = (len(graded),
                                                    sum(float(g.score) >= cell.max_score - 1e-9 for g in graded))
    summary = report.class_summary(root, db_url)
    assert summary.students == students
    assert set(summary.notebooks) == set(totals)
    for name, expected in totals.items():
        stats = summary.notebooks[name]
        assert stats.handed_in == set(expected), name
        assert {student: stats.totals[student] for student in stats.handed_in} == pytest.approx(expected), name
    assert {key: (cell.graded, cell.full) for key, cell in summary.cells.items()} == counts
    page = report.write_report(root, db_url).read_text()
    for name, expected in totals.items():
        if expected:
            assert f"{statistics.mean(expected.values()):.2f}" in page, f"mean handed-in total of {name} not shown"
    for (notebook, cell), (graded, full) in counts.items():
        assert f"{full}/{graded}" in page, f"{notebook}/{cell} pass count not in the report"


def row_of(page: str, table_id: str, student: str) -> str:
    """The HTML of a student's row in the table `table_id` of a report page (escaped id)."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.DOTALL)
    assert table, f"no table {table_id} in the page"
    row = re.search(rf'<tr data-student="{re.escape(report.esc(student))}"[^>]*>(.*?)</tr>', table.group(1), re.DOTALL)
    assert row, f"no row of {student} in {table_id}"
    return row.group(1)


def students_in(page: str, table_id: str) -> list[str]:
    """The (escaped) student ids of a table's rows, in order."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.DOTALL)
    return re.findall(r'<tr data-student="([^"]*)"', table.group(1)) if table else []


# --- the numbers -----------------------------------------------------------------------------------

def test_statistics_count_only_students_who_handed_the_notebook_in(course):
    summary = report.class_summary(course)
    assert summary.students == ["alice", "bob", "carol"]
    assert summary.gradebook_students == 4 and summary.without_submission == [NOT_SUBMITTED]
    assert summary.notebooks["1_ae"].max_score == 3 and summary.notebooks["2_dae"].max_score == 2
    dae = summary.notebooks["2_dae"]
    assert dae.totals == {"alice": 2, "bob": 1, "carol": 0}  # the gradebook's, carol's zero included
    assert dae.handed_in == {"alice", "bob"} and dae.not_handed_in() == ["carol"]
    assert dae.scores == [2, 1]
    assert dae.describe() == {"mean": 1.5, "median": 1.5, "min": 1, "max": 2}
    assert summary.notebooks["1_ae"].describe() == {"mean": pytest.approx(4 / 3), "median": 1, "min": 0, "max": 3}
    stats = {key: (cell.points, cell.graded, cell.full) for key, cell in summary.cells.items()}
    assert stats == {("1_ae", "test_encoder"): (2, 3, 1), ("1_ae", "test_loss"): (1, 3, 2),
                     ("2_dae", "test_add_noise"): (2, 2, 1)}  # no guard cell; carol's 2_dae not counted
    assert summary.cells["2_dae", "test_add_noise"].pass_rate == 0.5
    assert summary.cells["2_dae", "test_add_noise"].mean_points == 1.5
    assert summary.cells["1_ae", "test_loss"].pass_rate == pytest.approx(2 / 3)
    assert summary.max_total == 5 and summary.total("carol") == 0 and summary.missing("carol") == ["2_dae"]


def test_needs_attention(course):
    attention = report.class_summary(course).needs_attention()
    assert list(attention) == ["bob", "carol", NOT_SUBMITTED]  # alice has 5/5 and no error
    assert attention["bob"] == ["low total: 2 of 5 (40 %)"]
    assert attention["carol"] == ["did not hand in 2_dae", "low total: 0 of 5 (0 %)",
                                  "grading error: kernel died <b>badly</b>"]
    assert attention[NOT_SUBMITTED] == [f"in the gradebook without a submission of {ASSIGNMENT}"]
    assert report.LOW_TOTAL == 0.5


def test_first_real_errors_are_grouped_with_their_students(course):
    cells = report.class_summary(course).cells
    [matmul] = cells["1_ae", "test_encoder"].common_errors()  # 1x784 and 64x784: one group, both students
    assert matmul.students == ["bob", "carol"]  # bob's printed "Graded by ...: passed" is no pass
    assert matmul.messages == {"bob": "RuntimeError: " + MATMUL.format("1x784"),
                               "carol": "RuntimeError: " + MATMUL.format("64x784")}
    assert matmul.pattern == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (<n>x<n> and <n>x<n>)"
    [earlier] = cells["1_ae", "test_loss"].common_errors()  # nothing raised in the cell: the solution cell's error
    assert earlier.messages == {"carol": f"ValueError: {HOSTILE}"}
    [judged] = cells["2_dae", "test_add_noise"].common_errors()  # not NO_RESULTS: the grader's message itself
    assert judged.messages == {"bob": NOISE}
    assert not any(NO_RESULTS in group.pattern for cell in cells.values() for group in cell.errors.values())


def test_first_real_errors_of_one_notebook():
    def graded(grade_id: str, kernel: list, passed: bool, message: str, points: float = 1.0) -> dict:
        """A graded cell as the grader leaves it."""
        meta = {"nbgrader": {"grade": True, "grade_id": grade_id, "points": points}}
        outputs = kernel_text(kernel) + [verdict_output(passed, message), picture_output(PIXEL)]
        return nbformat.v4.new_code_cell("", metadata=meta, outputs=outputs)

    limit = "Grading limit: the cell ran out of time."
    notebook = json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(  # printed, not raised: no error
            "stream", name="stdout", text="hi\n[your code raised Fake: printed]\n")]),
        graded("a", [error_output("KeyError", "'z'\nmore")], False, NO_RESULTS),
        graded("b", [], False, NO_RESULTS),
        nbformat.v4.new_code_cell("", outputs=[error_output("TypeError", "later")]),
        graded("c", [nbformat.v4.new_output("stream", name="stdout", text=FAKE_PASS),
                     nbformat.v4.new_output("display_data", data={"image/png": PIXEL})], False, "wrong value 3.5"),
        graded("d", [], True, "all hidden checks passed"),
        graded("e", [error_output("GradingLimit", limit)], False, f"{limit} {NO_RESULTS}"),
        graded("f", [error_output("KeyError", "['a', 'b']")], False, NO_RESULTS),
        graded("g", [error_output("NotImplementedError", "")], False, NO_RESULTS),
    ])))  # as stored on disk: multi-line texts as lists of lines
    assert report.first_real_errors(notebook) == {
        "a": "KeyError: 'z'", "b": "KeyError: 'z'", "c": "wrong value 3.5", "e": f"GradingLimit: {limit}",
        "f": "KeyError: ['a', 'b']", "g": "NotImplementedError"}
    assert report.first_real_errors({"cells": [graded("x", [], False, NO_RESULTS)]}) == {"x": NO_RESULTS[:199] + "…"}


def test_normalise():
    assert report.normalise("Tensor at 0x7f3a2b in /tmp/scratch-1/x.py is 3.5 > 1e-3, not -2.") == \
        "Tensor at <address> in <path> is <n> > <n>, not <n>."
    assert report.normalise("fc1 of conv2d in data/1_ae.pt: shape (64x784)") == \
        "fc1 of conv2d in <path>: shape (<n>x<n>)"
    assert report.normalise("a  b\tc") == "a b c"


def test_summary_reads_the_grading_record(course):
    record = json.loads((course / report.RECORD_FILE).read_text())
    record["students"]["bob"].update(error="the grading task failed: boom", fault="the grading task failed: boom")
    record["students"]["alice"]["seconds"] = True  # not a number of seconds
    (course / report.RECORD_FILE).write_text(json.dumps(record))
    summary = report.class_summary(course)
    assert summary.timing_recorded
    assert summary.seconds == {"bob": 30.0, "carol": 12.5}
    assert summary.errors == {"bob": "the grading task failed: boom", "carol": "kernel died <b>badly</b>"}
    assert summary.faults == {"bob": "the grading task failed: boom"}
    assert summary.needs_attention()["bob"] == ["low total: 2 of 5 (40 %)",
                                                "grading fault: the grading task failed: boom"]


def test_a_student_without_a_submitted_folder_counts_by_the_autograded_one(course):
    shutil.rmtree(course / "submitted")
    summary = report.class_summary(course)
    assert summary.notebooks["2_dae"].handed_in == {"alice", "bob"}
    assert summary.notebooks["1_ae"].handed_in == {"alice", "bob", "carol"}


# --- the page --------------------------------------------------------------------------------------

def test_report_page(course):
    page_path = report.write_report(course)
    assert page_path == course / "reports" / "class_report.html"
    page = page_path.read_text()
    assert sorted(path.name for path in page_path.parent.iterdir()) == ["class_report.html"]  # nothing beside it
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(CELLS) + 2  # a histogram per notebook, pass rates, grading seconds
    for url in images:
        assert url.startswith("data:image/png;base64,")
        assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    assert page.index('id="needs-attention"') < page.index('id="cells"') < page.index('id="student-table"')
    assert students_in(page, "needs-attention") == ["bob", "carol", NOT_SUBMITTED]
    assert students_in(page, "student-table") == ["alice", "bob", "carol", NOT_SUBMITTED]
    assert "not handed in" in row_of(page, "student-table", "carol") and "did not hand in 2_dae" in page
    assert "not handed in" not in row_of(page, "student-table", "bob")
    assert "below 50 % of the maximum" in page
    assert "skip_training_guard" not in page
    assert "1.50" in page and "1/2" in page and "50%" in page  # 2_dae over alice and bob only
    assert "1.33" in page and "1/3" in page and "67%" in page
    assert "61.2" in page
    assert NO_RESULTS[:60] not in page  # every failure shown by its real error


def test_error_groups_name_their_students(course):
    page = report.write_report(course).read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", re.search(r'<table id="errors">(.*?)</table>', page, re.DOTALL).group(1))
    matmul = [row for row in rows if "mat1 and mat2" in row]
    assert len(matmul) == 1
    cells = re.findall(r"<td[^>]*>(.*?)</td>", matmul[0], re.DOTALL)
    assert cells[:3] == ["1_ae", "test_encoder", "2"] and "figures differ between students" in cells[3]
    assert cells[4] == 'bob, <a href="../feedback/carol/autoencoders/1_ae.html" title="their feedback">carol</a>'


def test_links_to_feedback_and_formgrader(course):
    ids = submission_ids(course)
    page = report.write_report(course).read_text()
    alice = row_of(page, "student-table", "alice")
    assert '<a href="../feedback/alice/autoencoders/1_ae.html" title="their feedback">3</a>' in alice
    assert f'href="http://localhost:8888/formgrader/submissions/{ids["alice", "1_ae"]}"' in alice
    assert f'href="http://localhost:8888/formgrader/submissions/{ids["alice", "2_dae"]}"' in alice
    assert 'href="http://localhost:8888/formgrader/manage_students/alice/autoencoders"' in alice
    assert "feedback/alice/autoencoders/2_dae.html" not in page  # never generated: no link
    assert "feedback/bob" not in page and "feedback/carol/autoencoders/2_dae" not in page
    carol = row_of(page, "student-table", "carol")
    assert ids["carol", "1_ae"] in carol and ids["carol", "2_dae"] not in carol  # no page for what was not handed in

    elsewhere = report.write_report(course, out=course / "deep" / "er" / "index.html",
                                    formgrader_url="https://grader.example/course/")
    text = elsewhere.read_text()
    assert 'href="../../feedback/alice/autoencoders/1_ae.html"' in text
    assert f'href="https://grader.example/course/formgrader/submissions/{ids["alice", "1_ae"]}"' in text
    with pytest.raises(ValueError, match="http"):
        report.write_report(course, formgrader_url="javascript:alert(1)")


def test_student_ids_in_links_are_quoted(course):
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(parallel.gradebook_url(course)) as gradebook:
        warnings.simplefilter("ignore", SAWarning)
        gradebook.add_student("e@x")
        gradebook.add_submission(ASSIGNMENT, "e@x")
    (course / "submitted" / "e@x" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "e@x" / ASSIGNMENT / "1_ae.ipynb").write_text("{}")
    (course / "feedback" / "e@x" / ASSIGNMENT).mkdir(parents=True)
    (course / "feedback" / "e@x" / ASSIGNMENT / "1_ae.html").write_text("")
    row = row_of(report.write_report(course).read_text(), "student-table", "e@x")
    assert 'href="../feedback/e%40x/autoencoders/1_ae.html"' in row
    assert 'href="http://localhost:8888/formgrader/manage_students/e%40x/autoencoders"' in row


def test_report_elsewhere_and_old_plots_removed(course, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ["index_pass_rates.png", "index_scores_1_ae.png", "index_seconds.png", "keep.png", "index.png"]:
        (folder / name).write_bytes(b"\x89PNG")
    page_path = report.write_report(course, out=folder / "index.html")
    assert sorted(path.name for path in folder.iterdir()) == ["index.html", "index.png", "keep.png"]
    assert 'src="data:image/png;base64,' in page_path.read_text()


def test_missing_grading_record(course):
    (course / report.RECORD_FILE).unlink()
    summary = report.class_summary(course)
    assert not summary.timing_recorded and summary.seconds == {} and summary.errors == {}
    page = report.write_report(course).read_text()
    assert "no timing recorded" in page
    assert len(re.findall(r"<img ", page)) == len(CELLS) + 1


def test_submitted_but_not_graded(course):
    (course / "submitted" / "erin" / ASSIGNMENT).mkdir(parents=True)
    summary = report.class_summary(course)
    assert summary.errors["erin"] == "submitted, but no submission in the gradebook"
    assert summary.needs_attention()["erin"] == ["grading error: submitted, but no submission in the gradebook"]


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
    page = (root / "reports" / "class_report.html").read_text()
    assert f'formgrader/submissions/{submission_ids(root, url)["bob", "2_dae"]}"' in page


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
    assert [group.students for group in cells["1_ae", "test_encoder"].common_errors()] == [["bob"]]  # still read
    assert not cells["2_dae", "test_add_noise"].errors  # bob's FIFO was not read, alice's link not followed
    assert summary.notebooks["2_dae"].handed_in == {"alice", "bob"}  # by their submitted folders
    assert "autograded 1_ae not read: its JSON is nested too deeply to read" in summary.needs_attention()["carol"]
    page = report.write_report(course).read_text()
    assert "Autograded notebooks not read" in page and "its JSON is nested too deeply to read" in page
    assert "named pipe" in page and "symbolic link" in page


def test_links_in_submitted_are_not_followed(course):
    (course / "submitted" / "bob" / ASSIGNMENT / "2_dae.ipynb").unlink()
    (course / "submitted" / "bob" / ASSIGNMENT / "2_dae.ipynb").symlink_to(
        course / "submitted" / "alice" / ASSIGNMENT / "2_dae.ipynb")
    shutil.rmtree(course / "submitted" / "carol")
    (course / "submitted" / "carol").symlink_to(course / "submitted" / "alice")
    summary = report.class_summary(course)
    assert summary.notebooks["2_dae"].handed_in == {"alice"}
    assert summary.notebooks["1_ae"].handed_in == {"alice", "bob"}


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
    assert summary.unreadable == {("<u>mallory", "*"): "not a valid student id: its folders were not read"}
    record = json.loads((course / report.RECORD_FILE).read_text())
    record["students"]["<i>x</i>"] = {"seconds": 1.0, "error": "submission rejected: <s>1_ae.ipynb</s> is a link"}
    (course / report.RECORD_FILE).write_text(json.dumps(record))
    page = report.write_report(course).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>badly</b>" not in page and "kernel died &lt;b&gt;badly&lt;/b&gt;" in page
    assert "<b>eve" not in page and "&lt;b&gt;eve" in page
    assert "<u>mallory" not in page and "&lt;u&gt;mallory" in page
    assert "<i>x" not in page and "&lt;i&gt;x&lt;/i&gt;" in page and "&lt;s&gt;1_ae.ipynb" in page
    assert {"&lt;b&gt;eve", "&lt;u&gt;mallory", "&lt;i&gt;x&lt;/i&gt;"} <= set(students_in(page, "needs-attention"))
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert not [href for href in hrefs if "mallory" in href or "eve" in href or "&lt;" in href or "%3C" in href]


def test_cli_report(course, capsys):
    out = course / "page.html"
    assert cli.main(["report", "--course", str(course), "--out", str(out),
                     "--formgrader-url", "https://grader.example"]) == 0
    assert "https://grader.example/formgrader/manage_students/alice/autoencoders" in out.read_text()
    assert cli.main(["report", "--course", str(course), "--formgrader-url", "file:///etc"]) == 2
    assert "http:// or https://" in capsys.readouterr().err


def test_report_in_a_browser(course, tmp_path):
    from browser import chromium, open_page

    page_path = report.write_report(course)
    screenshot = tmp_path / "class_report.png"
    with chromium() as driver:
        open_page(driver, page_path.as_uri())
        assert driver.title == f"Class report: {ASSIGNMENT}"
        images = driver.execute_script(
            "return Array.from(document.images, i => [i.getAttribute('src').slice(0, 22), i.complete, "
            "i.naturalWidth]);")
        assert len(images) == len(CELLS) + 2
        assert all(src == "data:image/png;base64," and complete and width > 0
                   for src, complete, width in images), images
        rows = driver.execute_script(
            "return Object.fromEntries(['needs-attention', 'student-table'].map(t => [t, Array.from("
            "document.querySelectorAll('#' + t + ' tbody tr'), r => [r.dataset.student, r.innerText])]));")
        assert [student for student, _ in rows["needs-attention"]] == ["bob", "carol", NOT_SUBMITTED]
        assert "did not hand in 2_dae" in dict(rows["needs-attention"])["carol"]
        assert [student for student, _ in rows["student-table"]] == ["alice", "bob", "carol", NOT_SUBMITTED]
        assert "not handed in" in dict(rows["student-table"])["carol"]
        attention_top = driver.execute_script("return document.getElementById('needs-attention').offsetTop;")
        assert attention_top < driver.execute_script("return document.getElementById('student-table').offsetTop;")
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1400, min(height + 150, 8000))
        assert driver.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")

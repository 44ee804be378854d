"""nbgrader's formgrader on a graded course, as a TA sees it: a real Jupyter Server driven by headless Chromium.

`check_formgrader_shows` runs on the class that tests/test_pipeline.py grades (its PostgreSQL gradebook).

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) and the `selenium`
package; without them the test fails (it never skips). The formgrader's pages are Backbone apps that fill their
tables from the formgrader REST API, so every check waits for the page's models to load, never for a fixed time.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import browser
from browser import WAIT, chromium
from grader import notebooks, pipeline
from grader.formgrader import Formgrader, start_formgrader


class Page:
    """The browser and the server together, so that a failed wait reports what both were doing."""

    def __init__(self, driver, server: Formgrader):
        self.driver = driver
        self.server = server

    def wait(self, condition, what: str):
        """Wait until `condition(driver)` is truthy (and return it), or fail saying `what` never happened."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:  # a row redrawn while it is read is read again
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            body = self.driver.execute_script("return document.body ? document.body.innerText : ''") or ""
            pytest.fail(f"formgrader: {what} within {WAIT} s at {self.driver.current_url}\n"
                        f"page text:\n{body[:2000]}\nserver log:\n{self.server.log_tail(3000)}", pytrace=False)

    def loaded(self, what: str, flag: str = "models.loaded") -> None:
        """Wait for a Backbone page's collection to be fetched and its rows rendered."""
        self.wait(lambda d: d.execute_script(f"try {{ return {flag} === true; }} catch (e) {{ return false; }}"),
                  f"{what} did not load")

    def row(self, key_class: str, key: str):
        """The table row whose cell of class `key_class` reads `key` exactly (None when there is none)."""
        from selenium.webdriver.common.by import By

        for row in self.driver.find_elements(By.CSS_SELECTOR, "#main-table tr"):
            cells = row.find_elements(By.CSS_SELECTOR, f"td.{key_class}")
            # A notebook the student did not hand in is listed as "<name> (file missing)".
            if cells and cells[0].text.strip().removesuffix(" (file missing)") == key:
                return row
        return None

    def cell(self, row, css: str):
        """The element `css` inside the table row `row`."""
        from selenium.webdriver.common.by import By

        return row.find_element(By.CSS_SELECTOR, css)

    def follow(self, row, css: str, what: str) -> None:
        """Click the link in the cell `css` of `row` and wait for the next page to replace this one."""
        from selenium.webdriver.common.by import By

        link = row.find_element(By.CSS_SELECTOR, f"{css} a")
        target = link.get_attribute("href")
        link.click()
        self.wait(lambda d: d.current_url.split("?")[0].rstrip("/") == target.split("?")[0].rstrip("/"),
                  f"following the link to {what} ({target}) did not open it")


def shown_score(text: str) -> tuple[float, float]:
    """The score and maximum of a formgrader score cell ("10.5 / 75")."""
    match = re.fullmatch(r"\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)\s*", text)
    assert match, f"not a score: {text!r}"
    return float(match.group(1)), float(match.group(2))


def check_formgrader_shows(root: Path, students: dict[str, float], feedback_student: str,
                           db_url: str | None = None) -> None:
    """Open the formgrader of the graded course `root` in headless Chromium and check what a TA sees.

    `students` are autograded students with their expected total scores (which must equal the gradebook's);
    `feedback_student` is one of them whose notebook submission and feedback are opened (the feedback is
    generated first if the course has none for that student). `db_url`: the gradebook, when not the course's
    SQLite file (a PostgreSQL URL, say).
    """
    assignment = pipeline.ASSIGNMENT
    extra = (db_url,) if db_url else ()
    gradebook = {student: pipeline.read_scores(root, student, *extra) for student in students}
    for student, total in students.items():
        assert sum(sum(cells.values()) for cells in gradebook[student].values()) == pytest.approx(total), student
    max_score = sum(sum(notebooks.points(notebooks.read(path)).values())
                    for path in sorted((root / "source" / assignment).glob("*.ipynb")))
    chosen = gradebook[feedback_student]
    # The notebook to open: the best scored one of those the student handed in (and nbgrader autograded).
    handed_in = [name for name in sorted(chosen)
                 if (root / "autograded" / feedback_student / assignment / f"{name}.ipynb").exists()]
    assert handed_in, f"{feedback_student} has no autograded notebook"
    notebook = max(handed_in, key=lambda name: sum(chosen[name].values()))
    feedback = root / "feedback" / feedback_student / assignment / f"{notebook}.html"
    if not feedback.exists():
        pipeline.generate_feedback(root, *extra)
    assert feedback.exists(), f"nbgrader wrote no feedback at {feedback}"

    with start_formgrader(root, db_url=db_url) as server, chromium() as driver:
        page = Page(driver, server)

        # Manage Assignments (the formgrader's start page): the assignment and its submissions.
        driver.get(server.url)
        page.loaded("the assignment list")
        row = page.wait(lambda d: page.row("name", assignment), f"the assignment {assignment!r} was not listed")
        shown = int(page.cell(row, "td.num-submissions").text)
        assert shown >= len(students), f"{shown} submissions shown, {len(students)} graded"

        # Its submissions: every graded student, with the total score the gradebook holds.
        page.follow(row, "td.num-submissions", f"the submissions of {assignment}")
        page.loaded("the submissions list")
        for student, total in students.items():
            row = page.wait(lambda d: page.row("student-id", student), f"student {student!r} was not listed")
            status = page.cell(row, "td.status").text.strip()
            assert status in {"graded", "needs manual grading"}, f"{student}: status {status!r}"
            score, maximum = shown_score(page.cell(row, "td.score").text)
            assert score == pytest.approx(round(total, 2)), f"{student}: shown {score}, gradebook {total}"
            assert maximum == pytest.approx(round(max_score, 2)), f"{student}: shown maximum {maximum}"

        # One student's notebooks, each with its score.
        row = page.row("student-id", feedback_student)
        page.follow(row, "td.student-name", f"the notebooks of {feedback_student}")
        page.loaded(f"the notebooks of {feedback_student}")
        for name, cells in chosen.items():
            row = page.wait(lambda d: page.row("name", name), f"notebook {name!r} of {feedback_student} was not listed")
            score, _ = shown_score(page.cell(row, "td.score").text)
            assert score == pytest.approx(round(sum(cells.values()), 2)), f"{feedback_student}/{name}: shown {score}"

        # The graded notebook itself: its cells, and every grade cell's autograded score.
        page.follow(page.row("name", notebook), "td.name", f"the submission of {notebook}")
        page.loaded(f"the grades of {feedback_student}'s {notebook}", flag="formgrader.grades.loaded")
        text = driver.execute_script("return document.getElementById('notebook-container').innerText")
        released = notebooks.read(root / "release" / assignment / f"{notebook}.ipynb")
        heading = next(line.lstrip("# ").strip() for cell in released.cells if cell.cell_type == "markdown"
                       for line in cell.source.splitlines() if line.startswith("#"))
        assert heading in text, f"the submission page lacks the notebook's heading {heading!r}"
        for grade_id, score in chosen[notebook].items():
            shown = driver.execute_script(
                "var e = document.getElementById(arguments[0]); return e ? e.getAttribute('placeholder') : null;",
                grade_id)
            assert shown is not None, f"no grade input for {grade_id} on the submission page"
            assert float(shown) == pytest.approx(score), f"{grade_id}: shown {shown}, gradebook {score}"

        # The feedback nbgrader wrote for the student, served by the same server.
        driver.get(server.page(f"/files/feedback/{feedback_student}/{assignment}/{notebook}.html"))
        header = page.wait(lambda d: d.execute_script(
            "var h = document.querySelector('h4'); return h ? h.innerText : null;"), "the feedback did not open")
        match = re.search(r"\(Score:\s*([\d.]+)\s*/\s*([\d.]+)\)", header)
        assert match and notebook in header, f"unexpected feedback header {header!r}"
        assert float(match.group(1)) == pytest.approx(sum(chosen[notebook].values()), abs=0.01), header
        assert heading in driver.execute_script("return document.body.innerText"), "the feedback lacks the notebook"
    assert server.process.poll() is not None, "the formgrader server is still running"


def test_chromium_missing_is_a_clear_failure(monkeypatch):
    """Without the browser the test fails and says what to install (it is never skipped)."""
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        with chromium():
            pass

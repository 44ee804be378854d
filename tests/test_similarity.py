"""The similarity report (grader/similarity.py) on real submissions: the demo's students and made-up ones.

One course holds the reference, two blank releases, the demo's wrong students, two independent correct
solutions of 4_tsne (alice and bob, the variants that rewrite every cell), mallory (alice's code with every
name renamed, the definitions reordered, and her solution cells' metadata saying they are none), copycat
(the reference disguised the same way, every notebook), eve and her twin (the reference with HTML in a
solution), and students who cannot be compared: a notebook that is a link, a notebook that is not JSON, a
folder name that is no student id.
"""
from __future__ import annotations

import ast
import csv
import html.parser
import os
import random
import sys
import urllib.parse
from pathlib import Path

import pytest
from copydetect import compare_files

from grader import cli, notebooks, pipeline, report, similarity
from grader.similarity import REFERENCE
from grader.variants import variants_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_similarity import disguised  # noqa: E402

NAMES = ["1_ae", "2_dae", "3_vae", "4_tsne", "5_conv_aae"]
SCRIPT = "</pre><script>alert(1)</script>"
IMAGE = '<img src=x onerror="alert(2)">'
INVALID = "<img src=x onerror=alert(3)>"   # a folder name that is no student id


def source(name: str):
    """The source notebook of `name`."""
    return notebooks.read(pipeline.SOURCE / f"{name}.ipynb")


def release(name: str):
    """The committed release notebook of `name`."""
    return notebooks.read(pipeline.RELEASE / f"{name}.ipynb")


def reference_cells(name: str) -> dict[str, str]:
    """The reference solution of each solution cell of `name`."""
    cells = notebooks.cells_by_grade_id(source(name))
    return {grade_id: notebooks.solution_code(cells[grade_id].source)
            for grade_id in similarity.solution_ids(source(name))}


def independent_tsne() -> list[dict[str, str]]:
    """The cells of the correct 4_tsne variants that rewrite every solution cell: solutions written independently."""
    every = set(similarity.solution_ids(source("4_tsne")))
    found = [variant.cells for variant in variants_of("4_tsne").VARIANTS
             if variant.correct and set(variant.cells) == every]
    assert len(found) >= 2, "grader/variants/tsne.py no longer has two independent correct solutions"
    return found[:2]


def hand_in(root: Path, student: str, name: str, replacements: dict[str, str] | None = None, blank: bool = False,
            unmarked: bool = False):
    """Submit the release of `name` answered by the reference or `replacements` (or left blank); `unmarked`: with
    the nbgrader metadata of its solution cells saying they are not solutions (as a student may edit it)."""
    notebook = release(name) if blank else pipeline.fill_release(release(name), source(name), replacements)
    for cell in notebook.cells if unmarked else ():
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.metadata["nbgrader"]["solution"] = False
    pipeline.submit(root, student, {f"{name}.ipynb": notebook}, fresh=False)


def rotated(cells: dict[str, str]) -> dict[str, str]:
    """The code of each solution cell moved to the cell before it: every function in another place."""
    ids = list(cells)
    return {grade_id: cells[ids[(index + 1) % len(ids)]] for index, grade_id in enumerate(ids)}


def shapes(code: str) -> list[int]:
    """The size (AST nodes) of each top-level function of `code`, in order: kept by renaming, not by reordering."""
    return [len(list(ast.walk(node))) for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)]


def with_payloads() -> dict[str, str]:
    """1_ae's reference with HTML that would be live if the page did not escape it, in code and in a comment."""
    cells = reference_cells("1_ae")
    first = next(iter(cells))
    cells[first] += f'\n# {SCRIPT}\npayload = "{SCRIPT}"\nother = \'{IMAGE}\'\n'
    return cells


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The course described above, with its submissions."""
    root = pipeline.prepare_course(tmp_path_factory.mktemp("similarity") / "course")
    alice, bob = independent_tsne()
    for name in NAMES:
        hand_in(root, "reference", name)
        hand_in(root, "blank", name, blank=True)
        hand_in(root, "blank2", name, blank=True)
        hand_in(root, "copycat", name, disguised(reference_cells(name), random.Random(1)))
        variants = {variant.name: variant for variant in variants_of(name).VARIANTS}
        for wrong in getattr(variants_of(name), "DEMO", ()):
            hand_in(root, f"wrong-{name}-{wrong.replace('_', '-')}", name, variants[wrong].cells)
    hand_in(root, "alice", "4_tsne", alice)
    hand_in(root, "bob", "4_tsne", bob)
    hand_in(root, "mallory", "4_tsne", rotated(disguised({**reference_cells("4_tsne"), **alice}, random.Random(2))),
            unmarked=True)
    for student in ("eve", "eve-twin"):
        hand_in(root, student, "1_ae", with_payloads())
    hand_in(root, "linker", "4_tsne", alice)
    folder = pipeline.submit(root, "linker", {}, fresh=False)
    os.symlink(root / "submitted" / "alice" / pipeline.ASSIGNMENT / "4_tsne.ipynb", folder / "1_ae.ipynb")
    hand_in(root, "broken", "4_tsne", bob)
    pipeline.submit(root, "broken", {"2_dae.ipynb": b'{"cells": [not json'}, fresh=False)
    hand_in(root, INVALID, "1_ae")
    return root


@pytest.fixture(scope="module")
def found(course) -> similarity.Similarity:
    """The class compared at the default threshold."""
    return similarity.compare_class(course)


def flagged(found: similarity.Similarity) -> set[frozenset[str]]:
    """The student pairs the page lists."""
    return {frozenset(pair) for pair in found.pairs()}


def test_a_renamed_and_reordered_copy_is_flagged(found):
    alice, mallory = found.codes[("4_tsne", "alice")], found.codes[("4_tsne", "mallory")]
    defined = {node.name for node in ast.walk(ast.parse(alice)) if isinstance(node, ast.FunctionDef)}
    assert defined and not defined & {node.name for node in ast.walk(ast.parse(mallory))
                                      if isinstance(node, ast.FunctionDef)}, "every function renamed"
    assert shapes(alice) != shapes(mallory) and sorted(shapes(alice)) == sorted(shapes(mallory)), "reordered"
    assert frozenset({"alice", "mallory"}) in flagged(found)
    match = found.match("alice", "mallory", "4_tsne")
    assert match.score >= found.threshold and all(match.regions), "the page shows where they match"


@pytest.mark.parametrize("disguise", ["renamed", "reordered"])
def test_renaming_alone_and_reordering_alone_keep_the_score(disguise):
    alice = independent_tsne()[0]
    ids = similarity.solution_ids(source("4_tsne"))
    changed = disguised(alice, random.Random(3), reorder=False) if disguise == "renamed" else rotated(alice)
    original, copy = similarity.document(alice, ids), similarity.document(changed, ids)
    assert original != copy and (shapes(original) == shapes(copy)) == (disguise == "renamed")
    task = similarity.NotebookTask("4_tsne", "", original, {"copy": copy}, similarity.DEFAULT_THRESHOLD)
    assert similarity.compare_notebook(task).scores[("copy", REFERENCE)] >= 0.9


def test_independent_correct_solutions_are_not_flagged(found):
    assert frozenset({"alice", "bob"}) not in flagged(found)
    for pair in [("alice", "bob"), ("alice", REFERENCE), ("bob", REFERENCE)]:
        assert found.score(*pair, "4_tsne") < found.threshold, pair
    assert not {"alice", "bob"} & set(found.reference_matches())


def test_copies_of_the_reference_are_listed_as_such(found):
    assert {"copycat", "reference"} <= set(found.reference_matches())
    for name in NAMES:
        assert found.match("copycat", REFERENCE, name) is not None, name
        assert found.score("reference", REFERENCE, name) == pytest.approx(1.0)
    # the demo's wrong students are the reference with one cell changed: the reference's code all the same
    wrong = [student for student in found.compared("1_ae") if student.startswith("wrong-")]
    assert wrong and all(found.match(student, REFERENCE, "1_ae") for student in wrong)


def test_the_blank_release_matches_nothing(found):
    for name in NAMES:
        assert found.score("blank", "blank2", name) == 0.0
        assert found.score("blank", REFERENCE, name) == 0.0
    assert not {"blank", "blank2"} & {student for pair in found.pairs() for student in pair}
    assert not {"blank", "blank2"} & set(found.reference_matches())
    # what the boilerplate prevents: without the release's starter code, two blank notebooks are one copy
    blank = found.codes[("1_ae", "blank")]
    task = similarity.NotebookTask("1_ae", "", found.codes[("1_ae", REFERENCE)],
                                   {"blank": blank, "blank2": blank}, found.threshold)
    assert ("blank", "blank2") in similarity.compare_notebook(task).matches


def test_scores_are_copydetects_similarities(found):
    starter = similarity.boilerplate_hashes(found.starters["4_tsne"])
    students = ["alice", "mallory", "bob", "blank", REFERENCE]
    prints = [similarity.fingerprint(found.codes[("4_tsne", student)], starter) for student in students]
    shares = similarity.share_matrix([similarity.Occurrences.of(print_) for print_ in prints])
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            _, expected, _ = compare_files(prints[i], prints[j])
            assert (shares[i, j], shares[j, i]) == pytest.approx(expected), (students[i], students[j])


def test_regions_are_placed_exactly():
    first = ("import torch\nx = 1  # a comment long enough to shift copydetect's offsets\n"
             "class Encoder(nn.Module):\n    def __init__(self, n_components):\n        super().__init__()\n"
             "        self.layers = nn.Sequential(nn.Linear(784, 500), nn.Tanh(), nn.Linear(500, n_components))\n"
             "    def forward(self, x):\n        return self.layers(x.view(x.shape[0], -1))\n")
    second = first[first.index("class"):].replace("Encoder", "Enc").replace("layers", "net").replace("x", "inp")
    ours, theirs = similarity.Locator("").regions(first, second)
    assert [first[start:end] for start, end in ours] == [first[first.index("class"):].rstrip("\n")]
    assert [second[start:end] for start, end in theirs] == [second.rstrip("\n")]
    assert similarity.highlighted("a <b> c", [(2, 5)]) == "a <mark>&lt;b&gt;</mark> c"


def test_students_not_compared_are_listed_with_the_reason(found):
    reasons = {student: " ".join(why) for student, why in found.not_compared.items()}
    assert "symbolic link" in reasons["linker"]
    assert "4_tsne.ipynb" not in reasons["linker"] and "linker" not in found.compared("4_tsne")  # not read at all
    assert "2_dae.ipynb cannot be read: it is not valid JSON" in reasons["broken"]
    assert "broken" in found.compared("4_tsne")
    assert "not a valid student id" in reasons[INVALID]
    assert found.not_compared["alice"] == ["did not hand in 1_ae.ipynb, 2_dae.ipynb, 3_vae.ipynb, 5_conv_aae.ipynb"]


class Tags(html.parser.HTMLParser):
    """The start tags of a page and the targets of its links."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        """Note one tag and its link."""
        self.tags.append(tag)
        self.hrefs += [value for name, value in attrs if name == "href"]


def test_the_page_escapes_student_code(found, tmp_path):
    page = similarity.render(found)
    assert not {"script", "img", "iframe", "link"} & set(Tags(page).tags)
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page and "&lt;img src=x onerror=alert(3)&gt;" in page
    eve = found.match("eve", "eve-twin", "1_ae")
    assert eve is not None and page.count(similarity.anchor(eve)) == 2  # the score links to the code shown
    from browser import active_content, chromium, open_page

    path = tmp_path / "similarity.html"
    path.write_text(page, encoding="utf-8")
    with chromium() as driver:
        open_page(driver, path.as_uri())
        assert active_content(driver) == []
        assert driver.execute_script("return document.querySelectorAll('mark').length") > 0
        texts = driver.execute_script("return Array.from(document.querySelectorAll('pre'), p => p.innerText)")
        assert any(SCRIPT in text and IMAGE in text for text in texts)
        driver.execute_script(f"document.getElementById({similarity.anchor(eve)!r}).scrollIntoView()")
        driver.save_screenshot(str(Path(os.environ.get("AECOURSE_SCREENSHOTS", tmp_path)) / "similarity.png"))


def test_cli_writes_the_page_and_the_csv(course, capsys):
    assert cli.main(["similarity", "--course", str(course), "--notebooks", "4_tsne", "1_ae"]) == 0
    page, table = course / "reports" / "similarity.html", course / "reports" / "similarity.csv"
    assert "similarity report written to" in capsys.readouterr().out
    assert "alice" in page.read_text() and 'id="pairs"' in page.read_text()
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["student_a", "student_b", "notebook", "score", "flagged"]
    assert {row["notebook"] for row in rows} == {"4_tsne", "1_ae"}
    alice = {row["student_b"]: row for row in rows if row["student_a"] == "alice" and row["notebook"] == "4_tsne"}
    assert alice["mallory"]["flagged"] == "1" and alice["bob"]["flagged"] == "0" and REFERENCE in alice
    assert cli.main(["similarity", "--course", str(course), "--notebooks", "6_gan"]) == 1


def test_each_notebook_can_be_a_dask_task(course, found):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        on_dask = similarity.compare_class(course, ["4_tsne", "2_dae"], scheduler=cluster.scheduler_address)
        ran = cluster.scheduler.task_prefixes["compare_notebook"].state_counts
    assert ran["memory"] == 2, "one task per notebook, computed on the cluster"
    for name in ("4_tsne", "2_dae"):
        assert on_dask.results[name].scores == pytest.approx(found.results[name].scores)


def test_the_class_report_links_to_the_similarity_report(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    from grader.parallel import gradebook_url

    root = pipeline.prepare_course(tmp_path / "course")
    monkeypatch.setenv("PATH", pipeline.with_tools_on_path(dict(os.environ))["PATH"])  # nbgrader runs `alembic`
    with Gradebook(gradebook_url(root)):
        pass
    assert "similarity report" not in report.write_report(root).read_text()
    hand_in(root, "reference", "4_tsne")
    similarity.write_similarity(root, ["4_tsne"])
    for out in (None, tmp_path / "elsewhere" / "class.html"):
        page = report.write_report(root, out=out)
        hrefs = [href for href in Tags(page.read_text()).hrefs if "similarity" in href]
        assert len(hrefs) == 1
        target = (page.parent / urllib.parse.unquote(hrefs[0])).resolve()
        assert target == (root / "reports" / "similarity.html").resolve()

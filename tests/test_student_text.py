"""What a student reads agrees with the notebook's structure and with what grading does."""
from __future__ import annotations

import ast
import importlib
import inspect
import re

import pytest

from grader import notebooks, pipeline, reference
from grader.checks import MODULES

NAMES = [path.stem for path in notebooks.source_files(pipeline.SOURCE)]


def markdown(name: str) -> str:
    """The markdown cells of a source notebook, joined."""
    notebook = notebooks.build_notebook(pipeline.SOURCE / f"{name}.py")
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def sections(text: str) -> list[int]:
    """Numbers of the numbered sections (`## 3. ...`), in order."""
    return [int(number) for number in re.findall(r"^## (\d+)\. ", text, flags=re.M)]


@pytest.mark.parametrize("name", NAMES)
def test_the_introduction_lists_every_numbered_part(name):
    text = markdown(name)
    numbers = sections(text)
    assert numbers == list(range(1, len(numbers) + 1)), f"sections are numbered {numbers}"
    intro = text.split("In this notebook you will", 1)[1].split("\n\n", 1)[0]
    listed = [int(n) for n in re.findall(r"^(\d+)\. ", intro, flags=re.M)]
    assert listed == numbers, f"the introduction lists parts {listed}, the notebook has {numbers}"


@pytest.mark.parametrize("name", NAMES)
def test_every_part_reference_exists(name):
    text = markdown(name)
    referenced = {int(n) for n in re.findall(r"\bparts? (\d+)", text)}
    assert referenced <= set(sections(text)), f"text refers to parts {sorted(referenced)}"


def trains_in_grading(name: str) -> bool:
    """Whether a collector of the notebook trains the student's model (a short run from scratch)."""
    return "train_briefly(" in inspect.getsource(importlib.import_module(f"grader.collect.{MODULES[name]}"))


@pytest.mark.parametrize("name", NAMES)
def test_the_grading_paragraph_says_whether_grading_trains(name):
    paragraph = " ".join(markdown(name).split("**How grading works.**", 1)[1].split("\n\n", 1)[0].split())
    assert "never trains:" not in paragraph and "Grading never trains." not in paragraph
    if trains_in_grading(name):
        assert "for a few hundred steps" in paragraph, "the hidden tests train: say so"


@pytest.mark.parametrize("name", NAMES)
def test_images_with_negative_pixels_share_one_colour_map(name):
    code = (pipeline.SOURCE / f"{name}.py").read_text()
    assert not re.search(r"show_images\([^\n]*vmin=-", code), "use show_signed_images for signed images"
    assert '"RdBu"' not in code, "signed images are drawn by aelib.plotting.show_signed_images"


@pytest.mark.parametrize("name", NAMES)
def test_every_graded_threshold_is_stated_from_the_reference_figures(name):
    figures = importlib.import_module(f"grader.judge.{MODULES[name]}").FIGURES
    table = next(t for t in ("AE", "DAE", "VAE", "TSNE", "CONV_AAE") if getattr(reference, t) is figures)
    source = (pipeline.SOURCE / f"{name}.py").read_text()
    graded = [key for key in figures if not key.startswith("notebook_")]  # notebook_*: the notebook's own runs
    missing = [key for key in graded if not re.search(r"\{\{\s*%s\.%s\.threshold" % (table, key), source)]
    assert not missing, f"state these thresholds as {{{{{table}.<key>.threshold}}}} so the text follows the grader"


def test_stated_figures_are_filled_in_at_build_time():
    assert notebooks.fill_figures("below {{AE.ae10_mse.threshold}}, about {{AE.ae10_mse.reference:.3f}}") == \
        f"below {reference.AE['ae10_mse'].threshold:g}, about {reference.AE['ae10_mse'].reference:.3f}"
    with pytest.raises(ValueError, match="names no figure"):
        notebooks.fill_figures("{{AE.no_such_figure.threshold}}")
    for name in NAMES:
        built = notebooks.build_notebook(pipeline.SOURCE / f"{name}.py")
        assert not any("{{" in cell.source for cell in built.cells), name


def student_definitions(name: str) -> list[ast.FunctionDef | ast.ClassDef]:
    """Functions, classes and methods the student writes (those of solution cells)."""
    found = []
    for cell in notebooks.build_notebook(pipeline.SOURCE / f"{name}.py").cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            for node in ast.parse(notebooks.solution_code(cell.source)).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    found.append(node)
                    if isinstance(node, ast.ClassDef):
                        found += [item for item in node.body if isinstance(item, ast.FunctionDef)
                                  and item.name != "__init__"]
    return found


@pytest.mark.parametrize("name", NAMES)
def test_student_code_documents_its_arguments_and_results(name):
    for node in student_definitions(name):
        doc = ast.get_docstring(node) or ""
        if isinstance(node, ast.ClassDef):
            assert "Args:" in doc or "takes no arguments" in doc, f"{node.name}: say what the constructor takes"
        else:
            assert "Returns:" in doc, f"{node.name}: describe what it returns, with shapes"
            has_arguments = len(node.args.args) > (node.args.args[0].arg == "self" if node.args.args else 0)
            assert "Args:" in doc or not has_arguments, f"{node.name}: describe its arguments, with shapes"


def test_progress_bars_redraw_rarely_in_a_notebook_and_often_in_a_terminal():
    import io
    import time

    from aelib import training

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    redraws = {}
    for output in (io.StringIO(), Terminal()):
        for _ in training.progress(range(30), file=output):
            time.sleep(0.05)
        redraws[type(output).__name__] = output.getvalue().count("\r")
    # 1.5 s of work: a notebook sees the first and the last state only, a terminal a few in between
    assert redraws["StringIO"] <= 3 < redraws["Terminal"], redraws


@pytest.mark.parametrize("name", NAMES)
def test_every_training_cell_is_timed_and_its_time_quoted(name):
    source = (pipeline.SOURCE / f"{name}.py").read_text()
    timed = set(re.findall(r'^# %% .*timed="(\w+)"', source, flags=re.M))
    measured = {key for key, cell in notebooks.training_times()["cells"].items() if cell["notebook"] == name}
    assert timed == measured, "run benchmarks/bench_training.py after adding or renaming a timed cell"
    quoted = set(re.findall(r"\{\{\s*TIME\.(\w+)", source))
    assert timed <= quoted, f"timed cells whose time the text never states: {sorted(timed - quoted)}"
    training = {match.start() for match in re.finditer(r"^if not skip_training:\n\s+\S*\s*=?\s*train", source, re.M)}
    assert len(training) <= len(timed), "a training cell is not marked timed=..."


def test_durations_read_as_ranges():
    assert notebooks.duration(10.5 * 7.5, 11.2 * 7.5) == "80 to 85 seconds"
    assert notebooks.duration(46.4 * 10, 74.5 * 10) == "7.5 to 12.5 minutes"
    assert notebooks.duration(30, 31) == "about 30 seconds"
    times = {"machine": "a CPU, one torch thread", "cells": {"x": {"full_scale": 7.5, "seconds": {"a": 4, "b": 6}}}}
    assert notebooks.fill_times("{{TIME.x}}; {{TIME.x.offline}}; {{TIME.machine}}", times) == (
        "30 to 45 seconds; about 5 seconds; a CPU")
    with pytest.raises(ValueError, match="names no timed cell"):
        notebooks.fill_times("{{TIME.y}}", times)

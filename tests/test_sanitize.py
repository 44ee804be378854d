"""grader.sanitize: no student HTML or script becomes active in nbgrader's feedback or formgrader pages.

Unit tests run every payload of tests/browser.py through `clean_html` and `safe_markdown`; the browser test
renders the payload notebook as `nbgrader generate_feedback` and the formgrader do (their exporters, their
templates, the settings of `COURSE_CONFIG`) and opens the pages in headless Chromium beside a canary server.
The same notebook rendered without those settings must set the canary off, so the test can fail.
"""
from __future__ import annotations

import copy
import html.parser
import re
import time

import nbformat
import pytest
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from traitlets.config import Config

from browser import (PAYLOADS, PNG_PIXEL, SETTLE, Canary, active_content, assert_no_script_ran, canary_flag,
                     chromium, open_tab, payload_notebook)
from grader.sanitize import (ALLOWED_TAGS, REMOVED_CELL, REMOVED_OUTPUT, SanitizeOutputs, clean_html,
                             safe_markdown, safe_url, sanitize_notebook)

# Word for word the lines nbgrader_config.py needs: both the feedback and the formgrader build an nbconvert
# HTMLExporter from the course's config, which runs these preprocessors first and sanitizes in its templates.
COURSE_CONFIG = """
c.HTMLExporter.preprocessors = ["grader.sanitize.SanitizeOutputs"]
c.HTMLExporter.sanitize_html = True
"""
CANARY_URL = "http://127.0.0.1:9/canary"  # for the tests without a browser: nothing listens there
HTML_PAYLOADS = [payload for payload in PAYLOADS(CANARY_URL) if not payload.markdown_only]
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "poster", "background", "ping", "srcset",
                  "xlink:href", "srcdoc"}
IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=]*")
# Payloads whose canary request the unsanitized feedback page must make (the proof that the test can fail).
MUST_FIRE = {"script-tag", "img-onerror", "svg-onload", "iframe-srcdoc", "body-onload", "details-ontoggle",
             "style-tag", "style-attribute", "object-data", "execute-result", "image-width", "grade-id"}


def course_config() -> Config:
    """A traitlets config holding `COURSE_CONFIG`, as nbgrader loads it from nbgrader_config.py."""
    config = Config()
    exec(COURSE_CONFIG, {"c": config})
    return config


# --- an independent check of HTML ------------------------------------------------------------------

class _ActiveFinder(html.parser.HTMLParser):
    """Collects the tags and attributes of an HTML text that could run script or reach out of the page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        """Note a tag outside the allow-list, any handler, style or unsafe URL, and any mention of the canary."""
        if tag not in ALLOWED_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            image = tag == "img" and name == "src" and IMAGE_DATA.fullmatch(value)
            if (name.startswith("on") or name == "style" or (name in URL_ATTRIBUTES and not (safe_url(value) or image))
                    or CANARY_URL in value):
                self.found.append(f"{tag}[{name}={value!r}]")


def active_in(text: str) -> list[str]:
    """The active tags and attributes in an HTML text, and those naming the canary (empty when it is inert)."""
    finder = _ActiveFinder()
    finder.feed(text)
    finder.close()
    return finder.found


def rendered_markdown(source: str) -> str:
    """Markdown rendered by nbconvert's own markdown filter (the parser the feedback and formgrader use)."""
    return markdown2html_mistune(source)


# --- clean_html ------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", HTML_PAYLOADS, ids=lambda payload: payload.name)
def test_clean_html_leaves_nothing_active(payload):
    cleaned = clean_html(payload.text)
    assert active_in(cleaned) == []
    assert CANARY_URL not in cleaned  # not even as text: scripts, styles and their attributes go whole


def test_clean_html_keeps_formatting():
    text = ('<p>Loss <b>0.12</b> <i>i</i> <code>x &lt; y</code></p><a href="https://example.org">ref</a>'
            f'<img src="data:image/png;base64,{PNG_PIXEL}" width="3"><table><tr><td colspan="2">1</td></tr></table>')
    cleaned = clean_html(text)
    for kept in ("<b>0.12</b>", "<i>i</i>", "<code>x &lt; y</code>", 'colspan="2"', 'width="3"',
                 f'src="data:image/png;base64,{PNG_PIXEL}"', 'href="https://example.org"', 'rel="noopener noreferrer"'):
        assert kept in cleaned


@pytest.mark.parametrize("text", [
    '<img src="data:image/svg+xml;base64,PHN2Zz4=">', '<a href="data:image/png;base64,AAAA">x</a>',
    '<p style="background:url(https://example.org/x)">x</p>',
    '<a href="https://x.org" onclick="x()" id="formgrader">x</a>',
    '<div class="modal" data-toggle="modal">x</div>',
])
def test_clean_html_drops_data_urls_styles_ids_and_classes(text):
    cleaned = clean_html(text)
    for gone in ("data:image/svg", "data:image/png", "style=", "onclick", "id=", "class=", "data-toggle"):
        assert gone not in cleaned


def test_clean_html_takes_anything():
    assert clean_html(None) == ""
    assert clean_html(b"<b>x</b>") == "<b>x</b>"
    assert clean_html(3) == "3"


# --- URLs and markdown -------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "javascript:alert(1)", " JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "java\nscript:alert(1)",
    "jav&#x61;script:alert(1)", "jav&#97;script:alert(1)", "&#106;avascript:alert(1)", "javascript&colon;alert(1)",
    "jav&amp;#x61;script:alert(1)", "\x01javascript:alert(1)", "vbscript:msgbox(1)", "data:text/html,<script>",
    "DATA:image/svg+xml,<svg>", "file:///etc/passwd", "attachment:x.png",
])
def test_unsafe_urls(url):
    assert not safe_url(url)


@pytest.mark.parametrize("url", ["https://example.org/a?b=c", "http://x.org", "mailto:ta@example.org",
                                 "figures/loss.png", "#section", "/files/x", "?q=1", "//example.org/x"])
def test_safe_urls(url):
    assert safe_url(url)


@pytest.mark.parametrize("payload", PAYLOADS(CANARY_URL), ids=lambda payload: payload.name)
def test_safe_markdown_leaves_nothing_active(payload):
    source = safe_markdown(payload.text)
    rendered = rendered_markdown(source)
    assert active_in(rendered) == []  # a link's target may remain as its text, never as an attribute
    assert safe_markdown(source) == source, "sanitizing twice changes the text"


@pytest.mark.parametrize("source", [
    "[x](JaVaScRiPt:alert(1))", "[x](<java script:alert(1)>)", "[x](jav&#x61;script:alert(1) 'title')",
    "![x](vbscript:x)", "[x]: javascript:alert(1)\n\n[y][x]", "<div>\n`<img src=x onerror=alert(1)>`\n</div>",
    "`code` <img src=x onerror=alert(1)> `more`", "$x$ <script>alert(1)</script> $$y$$",
    "<pre>\n\n<img src=x onerror=alert(1)>\n\n</pre>", "```mermaid\ngraph TD; A-->B\n```",
    "![x](attachment:missing.png)", "<!-- <script>alert(1)</script> -->",
])
def test_safe_markdown_obfuscations(source):
    rendered = rendered_markdown(safe_markdown(source))
    assert active_in(rendered) == []
    assert "mermaid" not in rendered and "onerror" not in rendered


def test_safe_markdown_keeps_ordinary_markdown_as_it_is():
    source = ("# Results\n\nThe loss is *small*: $\\mathcal{L} < 0.1$ and\n\n$$\\sum_i x_i^2 < 1$$\n\n"
              "- a [link](https://example.org) and [another](figures/a.png)\n- `x < y` in code\n\n"
              "```python\nif a < b:\n    print('<b>')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
              "![pixel](attachment:pixel.png) mail [me](mailto:ta@example.org)\n")
    assert safe_markdown(source, {"pixel.png": {"image/png": PNG_PIXEL}}) == source


def test_safe_markdown_keeps_formatting_html():
    rendered = rendered_markdown(safe_markdown("Some <b>bold</b> text <script>alert(1)</script> and *more*"))
    assert "<b>bold</b>" in rendered and "<em>more</em>" in rendered and "script" not in rendered


# --- SanitizeOutputs ---------------------------------------------------------------------------------

def graded_notebook() -> nbformat.NotebookNode:
    """A graded notebook as a student sees it in feedback: outputs, tracebacks, images, nbgrader metadata."""
    grade = {"grade": True, "grade_id": "test_encoder", "locked": True, "points": 2, "schema_version": 3,
             "solution": False, "task": False, "checksum": "09db324dcd0b5918819f4fca15bf39af",
             "score": 0}  # as nbgrader's GetGrades adds it for feedback
    answer = {"grade": False, "grade_id": "encoder", "locked": False, "schema_version": 3, "solution": True}
    cells = [
        new_markdown_cell("# Autoencoder\n\nTrain it: $x \\in \\mathbb{R}^{784}$.", metadata={"tags": ["intro"]}),
        new_code_cell("print('hi')", execution_count=1, metadata={"nbgrader": answer, "deletable": False}, outputs=[
            new_output("stream", name="stdout", text="epoch 1: loss 0.12\n"),
            new_output("stream", name="stderr", text="warning: slow\n"),
            new_output("display_data", data={"image/png": PNG_PIXEL, "text/plain": "<Figure size 640x480>"},
                       metadata={"image/png": {"width": 640, "height": 480}}),
            new_output("execute_result", data={"text/plain": "0.12"}, execution_count=1),
        ]),
        new_code_cell("assert False", execution_count=2, metadata={"nbgrader": grade, "editable": False}, outputs=[
            new_output("error", ename="AssertionError", evalue="shape (1, 3) <b>",
                       traceback=["\x1b[0;31mAssertionError\x1b[0m: shape (1, 3) <b>"]),
        ]),
    ]
    return new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.2", "codemirror_mode": {"name": "ipython"}}})


def test_sanitize_keeps_what_a_student_must_see():
    original = graded_notebook()
    nb, resources = SanitizeOutputs().preprocess(copy.deepcopy(original), {"x": 1})
    assert resources == {"x": 1}
    nbformat.validate(nb)
    for before, after in zip(original.cells, nb.cells):
        assert after.source == before.source
        assert after.metadata == before.metadata
        assert after.id == before.id
        assert after.get("outputs") == before.get("outputs")
    assert nb.metadata.kernelspec == original.metadata.kernelspec
    assert nb.metadata.language_info == {"name": "python", "version": "3.11.2"}


def test_sanitize_makes_the_payload_notebook_inert():
    nb = payload_notebook(CANARY_URL)
    sanitize_notebook(nb)
    nbformat.validate(nb)
    assert set(nb.metadata) == {"kernelspec"}
    for cell in nb.cells:
        assert set(cell.metadata) <= {"nbgrader", "deletable", "editable", "collapsed", "scrolled", "tags"}
        if cell.cell_type == "markdown":
            assert active_in(rendered_markdown(cell.source)) == []
            assert set(cell.get("attachments", {})) <= {"pixel.png"}
        elif cell.cell_type == "raw":
            assert active_in(cell.source) == []
        for output in cell.get("outputs", []):
            assert set(output.get("data", {})) <= {"text/plain", "text/html", "text/markdown", "image/png",
                                                   "image/jpeg"}
            assert active_in(output.get("data", {}).get("text/html", "")) == []
            assert all(isinstance(size, int | float) for sizes in output.get("metadata", {}).values()
                       for size in sizes.values())
    assert "grade_id" not in nb.cells[-2].metadata.nbgrader  # it carried markup into an attribute
    assert nb.cells[-2].metadata.nbgrader["points"] == 1
    removed = [output for cell in nb.cells for output in cell.get("outputs", [])
               if output.get("data", {}).get("text/plain") == REMOVED_OUTPUT]
    assert len(removed) == 3  # javascript, svg and the widget view had no fallback
    once = copy.deepcopy(nb)
    sanitize_notebook(nb)
    assert nb == once, "sanitizing twice changes the notebook"


def deep(depth: int) -> dict:
    """A dict nested `depth` levels deep, built without recursion."""
    value: dict = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def test_sanitize_never_raises_on_weird_input():
    # Plain dicts: nbformat.from_dict itself would recurse into the deep metadata.
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": deep(50_000)}, "cells": [
        "not a cell",
        {"cell_type": "code", "source": 3, "outputs": "none", "execution_count": "<b>1</b>", "metadata": deep(50_000)},
        {"cell_type": "code", "source": ["a", "b"], "execution_count": -1, "outputs": [
            None, {"output_type": "display_data", "data": "x"}, {"output_type": "stream", "name": "<x>", "text": 5},
            {"output_type": "error", "traceback": "x"}, {"output_type": "bogus"},
            {"output_type": "execute_result", "data": {"image/png": "not base64!", "text/html": ["<b>", 1]},
             "metadata": {"image/png": {"width": "1 onerror=x", "height": float("nan")}}}]},
        {"cell_type": "markdown", "source": None, "attachments": {"../x": {"image/png": PNG_PIXEL}, "y.png": "z"}},
        {"cell_type": "heading", "source": "<script>x</script>", "id": "bad id!"},
        {"cell_type": "markdown", "source": "x", "metadata": {"tags": ["a,b", "ok", "ok", 3, "<x>"],
                                                              "scrolled": "yes", "collapsed": True}},
    ]}
    sanitize_notebook(nb)
    nbformat.validate(nb)
    assert nb["metadata"] == {}
    note, code, weird, markdown, heading, tagged = nb["cells"]
    assert note.source == REMOVED_CELL
    assert (code.source, code.outputs, code.execution_count, code.metadata) == ("", [], None, {})
    assert weird.source == "ab" and weird.execution_count is None
    assert [output.output_type for output in weird.outputs] == [
        "display_data", "display_data", "stream", "error", "display_data", "execute_result"]
    assert weird.outputs[2] == {"output_type": "stream", "name": "stdout", "text": ""}
    assert weird.outputs[5].data == {"text/html": ""} and weird.outputs[5].metadata == {}
    assert markdown.source == "" and "attachments" not in markdown
    assert heading.cell_type == "raw" and "script" not in heading.source and heading.id != "bad id!"
    assert tagged.metadata == {"tags": ["ok"], "collapsed": True}


# --- the pages in a browser ------------------------------------------------------------------------------

FEEDBACK_RESOURCES = {"nbgrader": {"notebook": "payloads", "score": 0, "max_score": 1, "late_penalty": 0}}


def feedback_page(nb: nbformat.NotebookNode, config: Config) -> str:
    """The page `nbgrader generate_feedback` writes for `nb` (its exporter and preprocessors, less GetGrades,
    which reads the gradebook: the scores it would add are in the notebook already)."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import GetGrades

    converter = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
    exporter = converter.exporter_class(parent=converter, config=converter.config)  # as GenerateFeedback.start
    for preprocessor in converter.preprocessors:
        if preprocessor is not GetGrades:
            exporter.register_preprocessor(preprocessor)
    page, _ = exporter.from_notebook_node(nb, resources=copy.deepcopy(FEEDBACK_RESOURCES))
    return page


def formgrader_page(nb: nbformat.NotebookNode, config: Config) -> str:
    """The submission page the formgrader serves for `nb` (its exporter, template and resources)."""
    from nbgrader.server_extensions.formgrader import handlers

    config = copy.deepcopy(config)
    config.HTMLExporter.template_name = "formgrade"  # as FormgradeExtension.build_extra_config
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": "autoencoders", "notebook_id": "payloads", "submission_id": "s1", "index": 0,
                 "total": 1, "base_url": "/pages/static", "student": "mallory", "last_name": "", "first_name": "",
                 "notebook_path": "autograded/mallory/autoencoders/payloads.ipynb"}
    page, _ = HTMLExporter(config=config).from_notebook_node(nb, resources=resources)
    return page


def lab_page(nb: nbformat.NotebookNode, config: Config, canary_url: str) -> str:
    """The page nbconvert's default (lab) template makes, its widget renderer pointed at the canary."""
    config = copy.deepcopy(config)
    config.HTMLExporter.widget_renderer_url = f"{canary_url}/widget-renderer"
    page, _ = HTMLExporter(config=config).from_notebook_node(nb)
    return page


def test_feedback_still_shows_the_graded_work():
    page = feedback_page(graded_notebook(), course_config())
    for shown in ("epoch 1: loss 0.12", "warning: slow", "AssertionError", "shape (1, 3) &lt;b&gt;",
                  f"data:image/png;base64,{PNG_PIXEL}", 'width="640"', "Train it:", "test_encoder"):
        assert shown in page, shown


def test_pages_run_no_student_script():
    sanitized = {  # page name: its renderer and the container of the student's content
        "feedback": (lambda nb, url: feedback_page(nb, course_config()), "#notebook-container"),
        "formgrader": (lambda nb, url: formgrader_page(nb, course_config()), "#notebook-container"),
        "lab": (lambda nb, url: lab_page(nb, course_config(), url), "main"),
    }
    with Canary() as canary, chromium() as driver:
        tabs = {}
        for name, (render, root) in sanitized.items():  # all open at once, then given one settling time
            page = render(payload_notebook(f"{canary.url}/{name}"), canary.url)
            tabs[open_tab(driver, canary.serve(name, page))] = root
        time.sleep(SETTLE)
        for tab, root in tabs.items():
            driver.switch_to.window(tab)
            assert_no_script_ran(driver, canary, root, settle=0)

        # The proof that the checks can fail: without the settings, the same notebook runs its payloads.
        page = feedback_page(payload_notebook(f"{canary.url}/unsanitized"), Config())
        open_tab(driver, canary.serve("unsanitized", page))
        deadline = time.monotonic() + 10
        while not MUST_FIRE <= fired(canary, "unsanitized") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert MUST_FIRE <= fired(canary, "unsanitized"), sorted(MUST_FIRE - fired(canary, "unsanitized"))
        assert canary_flag(driver) == 1
        assert active_content(driver, "#notebook-container")


def fired(canary: Canary, page: str) -> set[str]:
    """The names of the payloads of `page` that reached the canary."""
    prefix = f"/{page}/"
    return {hit[len(prefix):] for hit in canary.hits() if hit.startswith(prefix)}

"""Headless Chromium for the browser tests, and a canary that tells whether student script ran in a page.

`chromium()` starts Debian's browser under Selenium. `Canary` is a local HTTP server that serves test pages
and records every other request: each of `PAYLOADS(canary.url)`, if the browser ever runs it, requests
`<canary.url>/<payload name>` and sets `window.aecourseCanary`. `payload_notebook` puts every payload into
every student-controlled place of a notebook; `assert_no_script_ran` checks a page for all of it.
"""
from __future__ import annotations

import base64
import contextlib
import html
import http.server
import threading
import time
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "install them with `apt-get install -y chromium chromium-driver` (Debian) and `pip install selenium`"
# No host but the local servers resolves: pages never wait on a CDN, and nothing leaves the machine.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-dev-shm-usage", "--window-size=1400,1000",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
WAIT = 60  # seconds for a page's data to arrive (the formgrader renders notebooks on the first visit)
SETTLE = 1.5  # seconds a loaded page is given for delayed payloads (a meta refresh after 1 s) to act

# A 1x1 transparent PNG: an ordinary image output that must survive sanitizing.
PNG_PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


# --- the browser ---------------------------------------------------------------------------------

@contextlib.contextmanager
def chromium():
    """A headless Chromium under Selenium (Debian's browser and its matching driver), always quit at the end."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package")
    if missing:
        pytest.fail(f"the browser tests need {', '.join(missing)}: {INSTALL}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never runs (it would try to download a driver).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


# --- the canary ----------------------------------------------------------------------------------

class Canary:
    """An HTTP server on 127.0.0.1 (an ephemeral port, in a thread) that records every request a page makes.

    Pages given to `serve` are at `/pages/<name>`; requests under `/pages/` (the pages, their relative
    resources) and for `/favicon.ico` are not recorded. Every other request is a hit: something in a page
    fetched the canary. Use it as a context manager.
    """

    def __init__(self):
        self.pages: dict[str, str] = {}
        self._hits: list[str] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Canary:
        """Start serving in a daemon thread."""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="canary", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop the server and its thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """The server's address (no trailing slash)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self, name: str, page: str) -> str:
        """Serve the HTML `page` at /pages/<name> and return its address."""
        self.pages[name] = page
        return f"{self.url}/pages/{name}"

    def hits(self) -> list[str]:
        """The paths requested so far, outside /pages/, in order."""
        with self._lock:
            return list(self._hits)

    def _record(self, path: str) -> None:
        """Note one request for a path outside /pages/."""
        with self._lock:
            self._hits.append(path)

    def _handler_class(self):
        """The request handler class bound to this canary."""
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            """Serves the registered pages and records everything else (any method)."""

            def handle_one_request(self):
                """Answer one request, whatever its method."""
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    return
                self.answer()
                self.wfile.flush()

            def answer(self):
                """A page, a 404 for unknown pages and the favicon, a recorded 204 for the rest."""
                path = self.path.split("?", 1)[0]
                if path.startswith("/pages/") and path[len("/pages/"):] in canary.pages:
                    body = canary.pages[path[len("/pages/"):]].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if not (path.startswith("/pages/") or path == "/favicon.ico"):
                    canary._record(self.path)
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                """Quiet: the test reports what matters."""

        return Handler


# --- the payloads ----------------------------------------------------------------------------------

class Payload(NamedTuple):
    """One piece of student content that would be active in a page: its name, its text (HTML, which is markdown
    too, or markdown syntax only when `markdown_only`)."""
    name: str
    text: str
    markdown_only: bool = False


def fire(canary_url: str, name: str) -> str:
    """JavaScript (no spaces, single quotes only) that reports `name` to the canary and sets the flag."""
    return f"fetch('{canary_url}/{name}');top.aecourseCanary=1"


def _data_html(script: str) -> str:
    """A data: URL of an HTML document that runs `script`."""
    document = f"<script>{script}</script>".encode()
    return "data:text/html;base64," + base64.b64encode(document).decode()


def PAYLOADS(canary_url: str) -> list[Payload]:  # noqa: N802 (a table of test data, named as one)
    """Every payload, each reporting to `canary_url/<name>` if it runs (links are only present, never clicked)."""
    def js(name: str) -> str:
        """The reporting script of payload `name`."""
        return fire(canary_url, name)

    def srcdoc(name: str) -> str:
        """A frame document running the script of `name`, escaped for an attribute."""
        return html.escape(f"<script>{js(name)}</script>")

    return [
        Payload("script-tag", f"<script>{js('script-tag')}</script>"),
        Payload("img-onerror", f'<img src="data:," onerror="{js("img-onerror")}">'),
        Payload("svg-onload", f'<svg onload="{js("svg-onload")}"><circle r="1"></circle></svg>'),
        Payload("svg-animate", f'<svg><animate onbegin="{js("svg-animate")}" attributeName="x" dur="1s"/></svg>'),
        Payload("iframe-srcdoc", f'<iframe srcdoc="{srcdoc("iframe-srcdoc")}"></iframe>'),
        Payload("iframe-javascript", f'<iframe src="javascript:{js("iframe-javascript")}"></iframe>'),
        Payload("body-onload", f'<body onload="{js("body-onload")}">body</body>'),
        Payload("details-ontoggle", f'<details open ontoggle="{js("details-ontoggle")}">open</details>'),
        Payload("style-tag", f"<style>@import url('{canary_url}/style-tag');</style>"),
        Payload("style-attribute", f"<div style=\"background-image:url('{canary_url}/style-attribute')\">styled</div>"),
        Payload("link-stylesheet", f'<link rel="stylesheet" href="{canary_url}/link-stylesheet">'),
        Payload("meta-refresh", f'<meta http-equiv="refresh" content="1;url={canary_url}/meta-refresh">'),
        Payload("base-href", f'<base href="{canary_url}/base-href/"><img src="probe.png" alt="probe">'),
        Payload("object-data", f'<object data="{_data_html(js("object-data"))}" type="text/html"></object>'),
        Payload("embed-src", f'<embed src="{_data_html(js("embed-src"))}" type="text/html">'),
        Payload("input-autofocus", f'<input autofocus onfocus="{js("input-autofocus")}">'),
        Payload("form-action", f'<form action="javascript:{js("form-action")}"><button>send</button></form>'),
        Payload("javascript-link", f'<a href="javascript:{js("javascript-link")}">click</a>'),
        Payload("entity-link", f'<a href="jav&#x61;script:{js("entity-link")}">click</a>'),
        Payload("vbscript-link", '<a href="vbscript:msgbox(1)">click</a>'),
        Payload("data-link", f'<a href="{_data_html(js("data-link"))}">click</a>'),
        Payload("markdown-link", f"[click](javascript:{js('markdown-link')})", markdown_only=True),
        Payload("markdown-entity-link", f"[click](jav&#x61;script:{js('markdown-entity-link')})", markdown_only=True),
        Payload("markdown-image", f"![x](javascript:{js('markdown-image')})", markdown_only=True),
        Payload("markdown-autolink", f"<javascript:{js('markdown-autolink')}>", markdown_only=True),
        Payload("markdown-reference", f"[click][evil]\n\n[evil]: javascript:{js('markdown-reference')}",
                markdown_only=True),
        Payload("markdown-data-link", f"[click]({_data_html(js('markdown-data-link'))})", markdown_only=True),
    ]


def _svg(canary_url: str) -> str:
    """An SVG image with a script and an onload handler."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{fire(canary_url, "svg-image")}">'
            f"<script>{fire(canary_url, 'svg-image-script')}</script><circle r=\"1\"/></svg>")


def _output_cells(canary_url: str, payloads: list[Payload]) -> list:
    """Code cells whose outputs carry the payloads in every mimetype and output type."""
    def js(name: str) -> str:
        """The reporting script of payload `name`."""
        return fire(canary_url, name)

    cells = []
    for payload in payloads:
        data = {"text/markdown": payload.text, "text/plain": f"plain fallback of {payload.name}"}
        if not payload.markdown_only:
            data["text/html"] = payload.text
        cells.append(new_code_cell(f"show({payload.name!r})", execution_count=1,
                                   outputs=[new_output("display_data", data=data)]))
    svg = _svg(canary_url)
    rich = [
        new_output("display_data", data={"application/javascript": js("application-javascript")}),
        new_output("display_data", data={"image/svg+xml": svg}),
        new_output("display_data", data={"text/latex": f"$\\href{{javascript:{js('latex')}}}{{x}}$",
                                         "text/plain": "latex fallback"}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json":
                                         {"model_id": "evil", "version_major": 2, "version_minor": 0}}),
        new_output("display_data", data={"text/html": "<b>isolated</b>" + PAYLOADS(canary_url)[0].text},
                   metadata={"text/html": {"isolated": True}}),
        # nbconvert writes an image's width unquoted: a width with spaces adds attributes to the <img>.
        new_output("display_data", data={"image/png": "AAAA"},
                   metadata={"image/png": {"width": f"1 onerror={js('image-width')}"}}),
        new_output("execute_result", data={"text/html": f"<img src=x onerror=\"{js('execute-result')}\">"},
                   execution_count=2),
        new_output("stream", name="stdout", text=f"<script>{js('stream')}</script>\n"),
        new_output("error", ename="Error", evalue=f"<img src=x onerror=\"{js('error')}\">",
                   traceback=[f"<script>{js('traceback')}</script>"]),
    ]
    cells.append(new_code_cell("rich()", execution_count=2, outputs=rich))
    return cells


def payload_notebook(canary_url: str) -> nbformat.NotebookNode:
    """A notebook with every payload in every student-controlled place: markdown, raw cells, outputs of every
    mimetype, attachments, an nbgrader grade id, an execution count, and widget state in its metadata."""
    payloads = PAYLOADS(canary_url)
    cells = [new_markdown_cell("# Payloads\n\nOrdinary text with a [plain link](https://example.org) and <b>bold</b>.")]
    cells += [new_markdown_cell(payload.text) for payload in payloads]
    cells += [new_raw_cell(payload.text, metadata={"raw_mimetype": "text/html", "format": "text/html"})
              for payload in payloads if not payload.markdown_only]
    cells += _output_cells(canary_url, payloads)
    cells.append(new_markdown_cell("![evil](attachment:evil.svg) ![pixel](attachment:pixel.png)", attachments={
        "evil.svg": {"image/svg+xml": base64.b64encode(_svg(canary_url).encode()).decode()},
        "pixel.png": {"image/png": PNG_PIXEL},
    }))
    # nbgrader's templates write a grade id into attributes unescaped (score and comment: as GetGrades adds them).
    grade_id = f"x\"><img src=x onerror=\"{fire(canary_url, 'grade-id')}\"><b id=\"y"
    cells.append(new_code_cell("answer = 1", metadata={"nbgrader": {
        "grade": True, "solution": True, "locked": False, "points": 1, "grade_id": grade_id,
        "schema_version": 3, "score": 0, "comment": "A grader's *comment*."}}))
    cells.append(new_markdown_cell("junk metadata", metadata={"junk": _nested(200), "jupyter": {"x": [1]}}))
    # Built without nbformat's validation: a submitted notebook need not be valid either.
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {
            "version_major": 2, "version_minor": 0,
            "state": {"evil": {"model_name": "HTMLModel", "state": {"value": payloads[0].text}}}}},
        "title": f"<script>{fire(canary_url, 'title')}</script>",
        "junk": _nested(200),
    }})


def _nested(depth: int) -> dict:
    """A dict nested `depth` levels deep (metadata a sanitizer must not walk)."""
    value: dict = {"leaf": "<script>1</script>"}
    for _ in range(depth):
        value = {"nested": value}
    return value


# --- the checks ----------------------------------------------------------------------------------

# The tags and URL-valued attributes that make student content active or let it reach out.
ACTIVE_CONTENT_JS = """
const root = document.querySelector(arguments[0]) || document.body;
const tags = new Set(['SCRIPT', 'IFRAME', 'FRAME', 'OBJECT', 'EMBED', 'BASE', 'META', 'LINK', 'STYLE', 'FORM',
                      'SVG', 'MATH', 'APPLET']);
const urls = new Set(['href', 'src', 'action', 'formaction', 'data', 'poster', 'background', 'ping', 'srcset',
                      'xlink:href', 'codebase', 'cite']);
const found = [];
for (const element of [root, ...root.querySelectorAll('*')]) {
  if (tags.has(element.tagName.toUpperCase())) found.push('<' + element.tagName.toLowerCase() + '>');
  for (const attribute of element.attributes) {
    const name = attribute.name.toLowerCase();
    const value = attribute.value.replace(/[\\u0000-\\u0020]/g, '').toLowerCase();
    const unsafeUrl = /^(javascript|vbscript|data):/.test(value) && !/^data:image\\/(png|jpeg|gif);/.test(value);
    if (name.startsWith('on') || name === 'srcdoc' || (urls.has(name) && unsafeUrl)) {
      found.push(element.tagName.toLowerCase() + '[' + name + '=' + attribute.value.slice(0, 60) + ']');
    }
  }
}
return found;
"""


def active_content(driver, root: str = "body") -> list[str]:
    """The active tags and attributes (scripts, frames, handlers, javascript:/data: URLs) under `root`."""
    return driver.execute_script(ACTIVE_CONTENT_JS, root)


def canary_flag(driver):
    """The page's `window.aecourseCanary` (None when no payload set it)."""
    return driver.execute_script("return window.aecourseCanary === undefined ? null : window.aecourseCanary;")


def open_page(driver, url: str) -> None:
    """Load `url` and wait until the document and its subresources have loaded."""
    driver.get(url)
    deadline = time.monotonic() + WAIT
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not finish loading within {WAIT} s", pytrace=False)
        time.sleep(0.05)


def open_tab(driver, url: str) -> str:
    """Load `url` in a new tab (pages in other tabs keep running) and return the tab's handle."""
    driver.switch_to.new_window("tab")
    open_page(driver, url)
    return driver.current_window_handle


def assert_no_script_ran(driver, canary: Canary, root: str = "body", settle: float = SETTLE) -> None:
    """Fail unless, `settle` seconds on, no payload set the flag or reached the canary and none remains under
    `root` (a CSS selector of the student content's container)."""
    time.sleep(settle)
    flag = canary_flag(driver)
    hits = canary.hits()
    found = active_content(driver, root)
    assert flag is None and not hits and not found, (
        f"student content was active in {driver.current_url}: window.aecourseCanary={flag!r}, "
        f"canary requests {hits}, active content {found}")

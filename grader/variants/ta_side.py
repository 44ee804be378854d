"""The TA-side attack catalogue: submissions that attack the TA's tools, not the grade of their own cells.

Each case is the blank 4_tsne release plus one attack (so any point it scores is a point gained): script the kernel runs at the end of the
notebook (links, special files and bombs left in its folder, forged collections, outputs built to
slip past the limits), edits of the submitted notebook (active content, junk metadata) or files in
the submitted folder itself. `tests/test_ta_side.py` grades them all in one course beside a victim
(the reference) through the commands a TA runs, and checks the invariants on every case at once:
other students' submissions and grades, course files in bytes and modes, commands within their
limits, no secret in any feedback file, no script running in any page, the TA's memory. The
README's table is written from this list.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

NOTEBOOK = "4_tsne"
CANARY = "aecourseCanary"        # a page global any payload sets if it runs
CANARY_PORT = 47614              # a loopback port payloads request if they run
CANARY_URL = f"http://127.0.0.1:{CANARY_PORT}"
SET_CANARY = f"window.{CANARY}=1;fetch('{CANARY_URL}/ran')"
ROOT = "../../.."                # the course directory, seen from a grading folder autograded/<student>/<assignment>
VICTIM = f"{ROOT}/submitted/victim/autoencoders/4_tsne.ipynb"


@dataclass(frozen=True)
class Attack:
    """A blank submission plus one attack on the TA's side."""
    name: str
    kind: str                    # the class of attack (the list)
    trick: str
    stopped_by: str
    code: str = ""               # run in the kernel after the last cell of the notebook
    edit: Callable[[nbformat.NotebookNode], None] | None = None  # applied to the submitted notebook
    files: Callable[[Path], None] | None = None                   # applied to the submitted folder
    student: str = ""            # the student id, when the id itself is the attack
    rejected: bool = False       # refused before anything reads the submission

    @property
    def student_id(self) -> str:
        """The folder name of this case's student."""
        return self.student or f"ta-{self.name}"

    def cell(self) -> str:
        """The attack's code cell, printing a marker first so a test can tell it ran."""
        return f"print('TA-TRICK {self.name}', flush=True)\nimport os, shutil, json\n{self.code.strip()}\n"


def _add_cell(kind: str, source: str, **metadata) -> Callable[[nbformat.NotebookNode], None]:
    """An edit that appends a cell of `kind` to the notebook."""
    def edit(notebook: nbformat.NotebookNode) -> None:
        maker = {"markdown": nbformat.v4.new_markdown_cell, "raw": nbformat.v4.new_raw_cell}[kind]
        notebook.cells.append(maker(source, metadata=metadata))
    return edit


def _widget_metadata(notebook: nbformat.NotebookNode) -> None:
    """Widget state that nbconvert would embed in the page with the widget manager's script."""
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "version_major": 2, "version_minor": 0,
        "state": {"x": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls",
                        "model_module_version": "2.0.0",
                        "state": {"value": f"<img src=x onerror=\"{SET_CANARY}\">"}}}}}


def _nested_metadata(notebook: nbformat.NotebookNode) -> None:
    """Metadata nested 300 levels deep (heavy for every recursive reader after it)."""
    value: dict = {}
    for _ in range(300):
        value = {"x": value}
    notebook.metadata["deep"] = value


def _fifo(folder: Path) -> None:
    """A FIFO among the submitted files."""
    os.mkfifo(folder / "extra.pth")


def _link_to_victim(folder: Path) -> None:
    """A submitted file that is a link to another student's submission."""
    (folder / "copied.ipynb").symlink_to(folder.parent.parent / "victim" / "autoencoders" / "4_tsne.ipynb")


def _sparse(folder: Path) -> None:
    """A 20 GB sparse file among the submitted files."""
    with open(folder / "huge.pth", "wb") as handle:
        handle.truncate(20 * 10**9)


def _hard_link(folder: Path) -> None:
    """A hard link to the course's config among the submitted files."""
    os.link(folder.parent.parent.parent / "nbgrader_config.py", folder / "config.txt")


_DEEP_DOCUMENT = '''
from safetensors.torch import save
import torch
doc = ("[" * 200000 + "]" * 200000).encode()
for name in os.listdir(".aecourse/collected"):
    with open(f".aecourse/collected/{name}", "wb") as handle:
        handle.write(save({"__document__": torch.frombuffer(bytearray(doc), dtype=torch.uint8)}))
'''

_DECLARED_SIZE = '''
import struct
header = json.dumps({"t0": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 16]}}).encode()
for name in os.listdir(".aecourse/collected"):
    with open(f".aecourse/collected/{name}", "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header + bytes(16))
'''

_DEFLATE = '''
import zipfile
for name in os.listdir(".aecourse/collected"):
    with zipfile.ZipFile(f".aecourse/collected/{name}", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data/0", bytes(2**30))   # 1 GB of zeros, about 1 MB compressed
'''

_SELF_REFERENCE = '''
import torch
loop = []
loop.append(loop)
for name in os.listdir(".aecourse/collected"):
    torch.save({"collection_error": loop}, f".aecourse/collected/{name}")
'''

_DISPLAY_UPDATES = '''
from IPython.display import display, update_display
for _ in range(40):
    display({"text/plain": "small"}, raw=True, display_id="shared")
for _ in range(20):
    update_display({"text/plain": "y" * 1_500_000}, raw=True, display_id="shared")
'''

ATTACKS = [
    # --- writes and permissions through links left in the grading folder ----------------------------
    Attack("link_notebook_to_victim", "links", "replaces its notebook by a link to the victim's submitted notebook",
           "the kernel writes only a scratch copy of its folder; nbgrader writes the real folder, which holds no link",
           code=f"os.remove('4_tsne.ipynb')\nos.symlink('{VICTIM}', '4_tsne.ipynb')"),
    Attack("link_notebook_to_gradebook", "links", "replaces its notebook by a link to the course's gradebook",
           "the kernel writes only its scratch folder, deleted after the collections are read",
           code=f"os.remove('4_tsne.ipynb')\nos.symlink('{ROOT}/gradebook.db', '4_tsne.ipynb')"),
    Attack("links_for_chmod", "links", "leaves links to the secret, the config, the sources and the victim for "
           "nbgrader's permission step", "nothing of the scratch folder reaches the folder nbgrader chmods",
           code="\n".join(f"os.symlink('{target}', 'link{i}')" for i, target in enumerate(
               [f"{ROOT}/.aecourse_secret", f"{ROOT}/nbgrader_config.py", f"{ROOT}/source/autoencoders/4_tsne.ipynb",
                VICTIM, f"{ROOT}/submitted/victim"]))),
    Attack("link_to_bubblewrap", "links", "leaves a link to the bubblewrap binary, to be chmod-ed 0444",
           "the scratch folder is deleted; a broken bubblewrap refuses grading instead of turning the sandbox off",
           code="os.symlink(shutil.which('bwrap') or '/usr/bin/bwrap', 'bwrap')"),
    Attack("link_collection_folder", "links", "replaces .aecourse/collected by a link to the course directory",
           "collections are opened component by component with O_NOFOLLOW: a link is rejected",
           code=f"shutil.rmtree('.aecourse/collected')\nos.symlink('{ROOT}', '.aecourse/collected')"),
    Attack("hard_link_secret", "links", "hard-links the course secret into its folder",
           "the course directory is hidden in the sandbox; the scratch folder is deleted anyway",
           code=f"try:\n    os.link('{ROOT}/.aecourse_secret', 'hard.html')\nexcept OSError as error:\n"
                "    print('refused:', type(error).__name__)"),
    # --- exfiltration into feedback --------------------------------------------------------------------
    Attack("html_link_secret", "exfiltration", "links named *.html to the course secret (relative and absolute)",
           "nbgrader copies nothing from the scratch folder; feedback holds only what nbgrader rendered",
           code=f"os.symlink('{ROOT}/.aecourse_secret', 'secret.html')\n"
                f"os.symlink(os.path.abspath('{ROOT}/.aecourse_secret'), 'secret2.html')"),
    Attack("html_link_gradebook", "exfiltration", "a link named gradebook.html to the gradebook",
           "the scratch folder never reaches feedback", code=f"os.symlink('{ROOT}/gradebook.db', 'gradebook.html')"),
    Attack("html_link_victim", "exfiltration", "a link named victim.html to another student's notebook",
           "the scratch folder never reaches feedback", code=f"os.symlink('{VICTIM}', 'victim.html')"),
    Attack("html_folder_link", "exfiltration", "a folder link to the course directory, full of *.html it hopes to copy",
           "the scratch folder never reaches feedback", code=f"os.symlink('{ROOT}', 'course_html')"),
    # --- active content in pages the TA and students open ----------------------------------------------
    Attack("markdown_script", "active content", "a markdown cell with <script>, onerror= and a javascript: link",
           "SanitizeOutputs cleans student markdown with nh3; feedback renders with sanitize_html",
           edit=_add_cell("markdown", f"# Notes\n<script>{SET_CANARY}</script>\n<img src=x onerror=\"{SET_CANARY}\">\n"
                                      f"[click](javascript:{SET_CANARY})")),
    Attack("display_html", "active content", "display(HTML(...)) with script, img onerror and an iframe",
           "every output's HTML is cleaned with nh3 before nbgrader stores the notebook",
           code="from IPython.display import HTML, display\n"
                f"display(HTML('<script>{SET_CANARY}</script><img src=x onerror=\"{SET_CANARY}\">'"
                f"'<iframe srcdoc=\"<script>parent.{SET_CANARY}</script>\"></iframe>'))"),
    Attack("display_javascript", "active content", "display(Javascript(...))",
           "application/javascript outputs are dropped",
           code=f"from IPython.display import Javascript, display\ndisplay(Javascript(\"{SET_CANARY}\"))"),
    Attack("svg_and_markdown_outputs", "active content", "an SVG output with onload, a markdown output with a "
           "javascript: link and a LaTeX output", "only plain text, PNG, JPEG, cleaned HTML and cleaned markdown are kept",
           code="from IPython.display import display\n"
                f"display({{'image/svg+xml': '<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"{SET_CANARY}\"/>',"
                f" 'text/markdown': '[x](javascript:{SET_CANARY})', 'text/latex': '$x$'}}, raw=True)"),
    Attack("raw_html_cell", "active content", "a raw cell declared text/html holding a script",
           "raw cells are cleaned and lose their format, so nbconvert does not paste them into the page",
           edit=_add_cell("raw", f"<script>{SET_CANARY}</script>", format="text/html", raw_mimetype="text/html")),
    Attack("widget_state", "active content", "widget state in the notebook metadata and a widget opened in the kernel",
           "notebook metadata is cut to kernelspec, language_info and nbgrader; widget messages are ignored",
           edit=_widget_metadata,
           code="from ipykernel.comm import Comm\nComm(target_name='jupyter.widget', data={'state': {'value': 'x' * 10**6}})"),
    # --- special files and bombs read by the TA's process ----------------------------------------------
    Attack("fifo_notebook", "special files", "replaces its notebook and a *.html file by FIFOs",
           "nothing is read from the scratch folder but collections, opened with O_NONBLOCK and checked by fstat",
           code="os.remove('4_tsne.ipynb')\nos.mkfifo('4_tsne.ipynb')\nos.mkfifo('feedback.html')\n"
                "first = sorted(os.listdir('.aecourse/collected'))[0]\n"
                "os.remove(f'.aecourse/collected/{first}')\nos.mkfifo(f'.aecourse/collected/{first}')"),
    Attack("device_links", "special files", "links its notebook to /dev/zero and a collection to /dev/urandom",
           "collections must be regular files (no link followed); the notebook never leaves the scratch folder",
           code="os.remove('4_tsne.ipynb')\nos.symlink('/dev/zero', '4_tsne.ipynb')\n"
                "for name in os.listdir('.aecourse/collected'):\n"
                "    os.remove(f'.aecourse/collected/{name}')\n"
                "    os.symlink('/dev/urandom', f'.aecourse/collected/{name}')"),
    Attack("collection_deflate", "bombs", "collections replaced by a DEFLATE zip of 1 GB of zeros",
           "collections are safetensors: nothing is inflated; a zip is rejected as not safetensors", code=_DEFLATE),
    Attack("collection_self_reference", "bombs", "collections replaced by a pickle whose error is a self-referencing list",
           "nothing is unpickled; the bytes are rejected as not safetensors", code=_SELF_REFERENCE),
    Attack("collection_declared_size", "bombs", "a safetensors header declaring a 2**40-element tensor over 16 bytes",
           "safetensors checks declared sizes against the bytes present", code=_DECLARED_SIZE),
    Attack("collection_deep_document", "bombs", "a collection whose JSON document is nested 200,000 levels",
           "the document is read under caps on size (4 MiB) and depth (12)", code=_DEEP_DOCUMENT),
    Attack("display_update_bomb", "bombs", "40 displays sharing one id, then 20 updates of 1.5 MB each",
           "every update counts against the cell's 2 MiB and the notebook's 16 MiB of output", code=_DISPLAY_UPDATES),
    Attack("one_huge_message", "bombs", "one 300 MB display message",
           "messages above 16 MiB are dropped by the socket before the TA's process reads them",
           code="from IPython.display import display\ndisplay({'text/plain': 'z' * 300_000_000}, raw=True)"),
    Attack("inode_bomb", "bombs", "creates empty folders until it is stopped",
           "the disk quota counts files and folders (20,000) as well as bytes",
           code="for i in range(2_000_000):\n    os.mkdir(f'd{i}')"),
    Attack("nested_metadata", "bombs", "notebook metadata nested 300 levels deep", "notebook metadata is cut to "
           "kernelspec, language_info and nbgrader before nbgrader stores it", edit=_nested_metadata),
    # --- the submitted folder itself -------------------------------------------------------------------
    Attack("submitted_fifo", "submitted files", "a FIFO among the submitted files",
           "aecourse autograde checks the submission with lstat before anything reads it: rejected", files=_fifo,
           rejected=True),
    Attack("submitted_link", "submitted files", "a submitted file that links to another student's notebook",
           "links in a submission are rejected before anything reads it", files=_link_to_victim, rejected=True),
    Attack("submitted_sparse", "submitted files", "a 20 GB sparse file among the submitted files",
           "the per-file cap is checked on the size before anything reads or copies it", files=_sparse, rejected=True),
    Attack("submitted_hard_link", "submitted files", "a hard link to the course config among the submitted files",
           "files with more than one link are rejected", files=_hard_link, rejected=True),
    Attack("student_id_shell", "submitted files", "a student folder named with shell and glob characters",
           "student ids are validated before they reach a path or an nbgrader argument", student="x;$(touch pwned)*",
           rejected=True),
]


def attacks() -> list[Attack]:
    """The catalogue."""
    return list(ATTACKS)


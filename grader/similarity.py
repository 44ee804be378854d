"""Academic integrity: how much of each student's solution code is also in another student's, or in the reference.

    from grader.similarity import write_similarity
    found = write_similarity(Path("course"))     # reports/similarity.html and reports/similarity.csv in the course
    found.pairs()                                # student pairs with a notebook at or above the threshold
    found.reference_matches()                    # students with a notebook that matches the reference solution

Per notebook, the solution cells of every submitted notebook (the cells whose grade ids are solution cells of the
course's *source* notebook, whatever the student's metadata says) are joined into one document and compared with
every other student's and with the reference solution (the source's solution code) by copydetect: Python tokens
with identifiers, strings and comments abstracted away, hashed as k-grams of `NOISE_THRESHOLD` tokenised
characters (MOSS's fingerprints; copydetect's default winnowing window of 1 keeps every k-gram, so the scores do
not depend on which k-grams Python's salted `hash()` happens to select). Renamed variables and reordered
functions still match. The starter
code of the release's solution cells (stubs, docstrings, `raise NotImplementedError()`) is copydetect's
boilerplate: its k-grams are removed from every document before comparing, so a blank notebook matches nothing.

copydetect gives two scores a pair: the share of the first document's fingerprinted code that is also in the
second, and the other way round. The score shown is the larger: a student who copied one cell and wrote nothing
else scores high even when the other student's notebook is long.

Submitted files are hostile (grader/submitted.py): a student whose submission would be rejected by autograde
(an invalid id, a link, a special or hard-linked file, over a size limit) or whose notebook is unreadable (a
link, over `MAX_JSON_BYTES`, not JSON, not a notebook) is listed as not compared with the reason; solution code
over `MAX_SOLUTION_CHARS` is not compared either. Nothing a student wrote is executed, and everything the report
shows of it is HTML-escaped.

Each notebook is one task: with a Dask scheduler address, one Dask task per notebook; else a loop here. Python
salts `hash()` per process, so a task fingerprints its boilerplate, reference and students itself.
"""
from __future__ import annotations

import csv
import html
import io
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import copydetect
import numpy as np
from copydetect import CodeFingerprint
from copydetect.utils import find_fingerprint_overlap, get_copied_slices
from pygments import token
from pygments.lexers import PythonLexer

from grader import notebooks, pipeline
from grader.pipeline import ASSIGNMENT
from grader.submitted import (MAX_JSON_BYTES, UnreadableFile, handed_in_notebooks, read_json_file, shown,
                              student_folders, submission_folder, submission_problems)

NOISE_THRESHOLD = 25        # copydetect's k: tokenised characters in a fingerprint (its default)
GUARANTEE_THRESHOLD = 25    # copydetect's default too: a window of 1, every k-gram kept (see the docstring)
DEFAULT_THRESHOLD = 0.5     # calibrated on the test submissions: see the README's "Similarity report"
MAX_SOLUTION_CHARS = 256 * 1024  # a notebook's solution cells together; the reference's are about 15,000
MAX_SHOWN = 200             # matches whose code the page shows side by side (the highest scores)
MAX_PAIRS_LISTED = 500      # student pairs the page lists (the CSV has every pair)
REFERENCE = "(reference)"   # the reference solution in pairs and the CSV (no student id has parentheses)
CELL_HEADER = "# ---- {} ----\n"  # a comment: copydetect's tokeniser drops it, the page shows where a cell starts
VARIABLES = {token.Name, token.Name.Variable, token.Name.Attribute}


# --- reading the course and the submissions --------------------------------------------------------

def course_notebook(root: Path, folder: str, name: str) -> Path:
    """The course's `folder` (source or release) notebook `name`, else this repository's."""
    path = Path(root) / folder / ASSIGNMENT / f"{name}.ipynb"
    return path if path.is_file() else pipeline.REPO / folder / ASSIGNMENT / f"{name}.ipynb"


def notebook_names(root: Path) -> list[str]:
    """The assignment's notebooks: the course's source notebooks, else this repository's."""
    folder = Path(root) / "source" / ASSIGNMENT
    found = sorted(path.stem for path in folder.glob("[0-9]_*.ipynb")) if folder.is_dir() else []
    return found or sorted(path.stem for path in pipeline.SOURCE.glob("[0-9]_*.ipynb"))


def solution_ids(source: dict) -> list[str]:
    """Grade ids of a source notebook's solution cells, in order."""
    return [grade_id for grade_id, cell in notebooks.cells_by_grade_id(source).items()
            if cell.metadata["nbgrader"].get("solution")]


def document(cells: dict[str, str], ids: list[str]) -> str:
    """One notebook's solution cells as one text, each after a comment naming its grade id."""
    text = "".join(CELL_HEADER.format(grade_id) + cells.get(grade_id, "").rstrip("\n") + "\n" for grade_id in ids)
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as the tokeniser sees it, so positions agree


def cell_text(source: object) -> str:
    """A submitted cell's source as text (nbformat stores a string or a list of lines); ValueError otherwise."""
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    raise ValueError("a solution cell's source is not text")


def submitted_cells(data: object, ids: list[str]) -> dict[str, str]:
    """Each solution cell's code (by the source's grade ids) in a submitted notebook's JSON; ValueError if malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("it is not a notebook (no list of cells)")
    wanted, found = set(ids), {}
    for cell in data["cells"]:
        metadata = cell.get("metadata") if isinstance(cell, dict) and cell.get("cell_type") == "code" else None
        nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
        grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
        if isinstance(grade_id, str) and grade_id in wanted:
            # a grade id given twice: both cells count (nbgrader refuses such a notebook, it is still compared)
            found[grade_id] = "\n".join(filter(None, [found.get(grade_id), cell_text(cell.get("source", ""))]))
    return found


def read_solution(path: Path, ids: list[str]) -> str:
    """The solution document of a submitted notebook, read as hostile; ValueError saying why it cannot be compared."""
    try:
        data = read_json_file(path, MAX_JSON_BYTES)
    except UnreadableFile as error:
        raise ValueError(f"{path.name} cannot be read: {error}") from None
    try:
        text = document(submitted_cells(data, ids), ids)
    except ValueError as error:
        raise ValueError(f"{path.name} cannot be read: {error}") from None
    if len(text) > MAX_SOLUTION_CHARS:
        raise ValueError(f"{path.name}: its solution cells hold {len(text):,} characters, more than the "
                         f"{MAX_SOLUTION_CHARS:,} compared (read them yourself)")
    return text


# --- comparing one notebook (a Dask task) ----------------------------------------------------------

@dataclass
class NotebookTask:
    """Everything one notebook's comparison needs, as plain text (it travels to a Dask worker)."""

    notebook: str
    boilerplate: str
    reference: str
    solutions: dict[str, str]   # student: solution document
    threshold: float


@dataclass
class Match:
    """Two solutions of one notebook at or above the threshold: both scores and, once located, the matching code."""

    notebook: str
    first: str
    second: str                       # a student, or REFERENCE
    scores: tuple[float, float]       # share of first's code found in second's, and of second's in first's
    regions: tuple[list, list] = field(default_factory=lambda: ([], []))  # ranges of each document (`locate`)
    shown: bool = False               # whether the page shows its code (`locate`)

    @property
    def score(self) -> float:
        """The score shown: the larger of the two."""
        return max(self.scores)


@dataclass
class NotebookResult:
    """One notebook compared: every pair's score, the matches at or above the threshold and the time it took."""

    notebook: str
    scores: dict[tuple[str, str], float] = field(default_factory=dict)     # (student, student or REFERENCE): score
    matches: dict[tuple[str, str], Match] = field(default_factory=dict)    # the same keys, at or above the threshold
    seconds: float = 0.0


def boilerplate_hashes(text: str) -> np.ndarray:
    """Every k-gram hash of the starter code, as copydetect collects boilerplate (a window of 1)."""
    return np.unique(np.array(list(fingerprint(text, window=1).hashes), dtype=np.int64))


def fingerprint(code: str, boilerplate: np.ndarray | None = None,
                window: int = GUARANTEE_THRESHOLD - NOISE_THRESHOLD + 1) -> CodeFingerprint:
    """copydetect's tokenised, winnowed fingerprint of Python `code`, the boilerplate's k-grams removed."""
    return CodeFingerprint("solution.py", NOISE_THRESHOLD, window, boilerplate, language="python",
                           fp=io.StringIO(code))


@dataclass
class Occurrences:
    """A copydetect fingerprint as arrays: each fingerprint's hash and where it starts, by start."""

    hashes: np.ndarray      # one per fingerprinted k-gram of the tokenised text
    starts: np.ndarray      # where that k-gram starts, increasing
    coverage: float         # tokenised characters the fingerprints cover (copydetect's token_coverage)

    @classmethod
    def of(cls, print_: CodeFingerprint) -> Occurrences:
        """The arrays of one copydetect fingerprint."""
        found = sorted((start, value) for value, starts in print_.hash_idx.items() for start in starts)
        return cls(np.array([value for _, value in found], dtype=np.int64),
                   np.array([start for start, _ in found], dtype=np.int64), float(print_.token_coverage))


def covered(starts: np.ndarray) -> int:
    """Tokenised characters covered by the k-grams starting at the increasing `starts` (copydetect's copied slices)."""
    return NOISE_THRESHOLD + int(np.minimum(np.diff(starts), NOISE_THRESHOLD).sum()) if len(starts) else 0


def share_matrix(documents: list[Occurrences]) -> np.ndarray:
    """`shares[i, j]`: the share of document i's fingerprinted code that is also in document j.

    What copydetect.compare_files gives as the similarities of a pair (the occurrences of shared fingerprints,
    their k-grams joined into slices, the sliced length over the coverage), for all pairs at once: every hash is
    numbered once, and each document's numbers are looked up in a table of the other's.
    """
    vocabulary, numbers = np.unique(np.concatenate([document.hashes for document in documents] or [np.zeros(0)]),
                                    return_inverse=True)
    numbered = np.split(numbers.ravel(), np.cumsum([len(document.hashes) for document in documents])[:-1])
    inside = np.zeros(len(vocabulary), dtype=bool)
    shares = np.zeros((len(documents), len(documents)))
    for j, container in enumerate(numbered):
        inside[container] = True
        for i, document in enumerate(documents):
            if i != j and document.coverage:
                shares[i, j] = covered(document.starts[inside[numbered[i]]]) / document.coverage
        inside[container] = False
    return shares


def compare_notebook(task: NotebookTask) -> NotebookResult:
    """Compare every student's solution of one notebook with every other's and with the reference."""
    started = time.perf_counter()
    boilerplate = boilerplate_hashes(task.boilerplate)
    students = sorted(task.solutions)
    codes = [task.solutions[student] for student in students] + [task.reference]
    shares = share_matrix([Occurrences.of(fingerprint(code, boilerplate)) for code in codes])
    names = students + [REFERENCE]
    result = NotebookResult(task.notebook)
    for i, first in enumerate(students):
        for j in range(i + 1, len(names)):
            scores = (float(shares[i, j]), float(shares[j, i]))
            result.scores[(first, names[j])] = max(scores)
            if max(scores) >= task.threshold:
                result.matches[(first, names[j])] = Match(task.notebook, first, names[j], scores)
    result.seconds = time.perf_counter() - started
    return result


def run_tasks(tasks: list[NotebookTask], scheduler: str | None = None) -> list[NotebookResult]:
    """Each notebook's comparison: one Dask task each on the scheduler at `scheduler`, else one after the other here."""
    if not scheduler:
        return [compare_notebook(task) for task in tasks]
    from distributed import Client

    with Client(scheduler) as client:
        futures = [client.submit(compare_notebook, task, pure=False) for task in tasks]
        return client.gather(futures)


# --- where two solutions match (for the page) ----------------------------------------------------------

def filtered_spans(code: str) -> tuple[str, list[tuple[int, int]]]:
    """copydetect's tokenised text of `code` and, for each of its characters, the range of `code` it stands for.

    The rules of copydetect.utils.filter_code, with exact positions: its own offsets misplace a slice whose end
    falls on a class name (copydetect 0.5 records the name's length there instead of the running offset).
    """
    text: list[str] = []
    spans: list[tuple[int, int]] = []
    for start, kind, value in PythonLexer().get_tokens_unprocessed(code):
        letter = token_letter(kind, value)
        if letter is None:
            text.extend(value)
            spans.extend((start + i, start + i + 1) for i in range(len(value)))
        elif letter:
            text.append(letter)
            spans.append((start, start + len(value)))
    return "".join(text), spans


def token_letter(kind, value: str) -> str | None:
    """The one character copydetect writes for a token, "" for one it drops, None for one it keeps as it is."""
    if kind in VARIABLES:
        return "V"
    if kind in token.Name.Function:
        return "F"
    if kind in token.Name.Class:
        return "O"
    if kind == token.Comment.Preproc or kind == token.Comment.Hashbang:
        return "P"
    if kind in token.Text or kind in token.Comment:
        return ""
    if kind in token.Literal.String:
        return '"' if value in ("'", '"') else "S"
    return None


class Locator:
    """Finds where matched solutions of one notebook share code; fingerprints each document once, in this process."""

    def __init__(self, boilerplate: str):
        self.boilerplate = boilerplate_hashes(boilerplate)
        self.known: dict[str, tuple[CodeFingerprint, list[tuple[int, int]] | None]] = {}

    def document(self, code: str) -> tuple[CodeFingerprint, list[tuple[int, int]] | None]:
        """A document's fingerprint and the raw range of each tokenised character (None if they disagree)."""
        if code not in self.known:
            print_ = fingerprint(code, self.boilerplate)
            filtered, spans = filtered_spans(code)
            self.known[code] = (print_, spans if filtered == print_.filtered_code else None)
        return self.known[code]

    def regions(self, first: str, second: str) -> tuple[list, list]:
        """The ranges of each code that the other shares: copydetect's copied slices, placed in the raw code."""
        (one, one_spans), (other, other_spans) = self.document(first), self.document(second)
        indexes = find_fingerprint_overlap(one.hashes, other.hashes, one.hash_idx, other.hash_idx)
        return tuple(raw_ranges(spans, found, one.k)
                     for spans, found in zip((one_spans, other_spans), indexes))


def raw_ranges(spans: list[tuple[int, int]] | None, indexes: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Ranges of the raw code covered by the k-grams starting at `indexes` of its tokenised text, merged."""
    if spans is None:  # a copydetect whose tokeniser differs from ours: no ranges rather than wrong ones
        return []
    slices = get_copied_slices(indexes, k)
    return merged([(spans[start][0], spans[min(end, len(spans)) - 1][1])
                   for start, end in zip(*slices.astype(int).tolist()) if end > start])


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ranges with the overlapping and touching ones joined."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return joined


def locate(found: Similarity, matches: list[Match]) -> None:
    """Fill in the matching code of `matches` (those the page shows)."""
    locators = {name: Locator(text) for name, text in found.starters.items()}
    for match in matches:
        codes = (found.codes[(match.notebook, match.first)], found.codes[(match.notebook, match.second)])
        match.regions, match.shown = locators[match.notebook].regions(*codes), True


# --- the whole class ---------------------------------------------------------------------------------

@dataclass
class Similarity:
    """The class compared: per notebook the results and the code compared, and who was not compared and why."""

    root: Path
    threshold: float
    notebooks: list[str]
    results: dict[str, NotebookResult] = field(default_factory=dict)
    codes: dict[tuple[str, str], str] = field(default_factory=dict)   # (notebook, student or REFERENCE): document
    starters: dict[str, str] = field(default_factory=dict)            # notebook: the release's starter code
    not_compared: dict[str, list[str]] = field(default_factory=dict)  # student (as shown): reasons
    seconds: float = 0.0
    page: Path | None = None       # where write_similarity wrote the page and the CSV
    table: Path | None = None

    def compared(self, notebook: str) -> list[str]:
        """Students whose solution of `notebook` was compared."""
        return sorted(student for name, student in self.codes if name == notebook and student != REFERENCE)

    def matches(self) -> list[Match]:
        """Every match at or above the threshold, the highest score first."""
        found = [match for result in self.results.values() for match in result.matches.values()]
        return sorted(found, key=lambda match: (-match.score, match.first, match.second, match.notebook))

    def pairs(self) -> list[tuple[str, str]]:
        """Student pairs with a notebook at or above the threshold: by highest score, then by notebooks flagged."""
        flagged: dict[tuple[str, str], list[float]] = {}
        for match in self.matches():
            if match.second != REFERENCE:
                flagged.setdefault((match.first, match.second), []).append(match.score)
        return sorted(flagged, key=lambda pair: (-max(flagged[pair]), -len(flagged[pair]), pair))

    def reference_matches(self) -> list[str]:
        """Students with a notebook at or above the threshold against the reference, by highest score."""
        best: dict[str, float] = {}
        for match in self.matches():
            if match.second == REFERENCE:
                best[match.first] = max(best.get(match.first, 0.0), match.score)
        return sorted(best, key=lambda student: (-best[student], student))

    def score(self, first: str, second: str, notebook: str) -> float | None:
        """The score of a pair on one notebook (None when one of them was not compared on it)."""
        scores = self.results[notebook].scores if notebook in self.results else {}
        return scores.get((first, second), scores.get((second, first)))

    def match(self, first: str, second: str, notebook: str) -> Match | None:
        """The match of a pair on one notebook, when it is at or above the threshold."""
        matches = self.results[notebook].matches if notebook in self.results else {}
        return matches.get((first, second), matches.get((second, first)))


def read_class(root: Path, names: list[str], threshold: float) -> tuple[Similarity, list[NotebookTask]]:
    """Read the course's notebooks and every student's solutions into one task per notebook."""
    found = Similarity(Path(root), threshold, names)
    sources = {name: notebooks.read(course_notebook(root, "source", name)) for name in names}
    ids = {name: solution_ids(source) for name, source in sources.items()}
    tasks = []
    for name in names:
        release = notebooks.cells_by_grade_id(notebooks.read(course_notebook(root, "release", name)))
        starter = document({grade_id: release[grade_id].source for grade_id in ids[name] if grade_id in release},
                           ids[name])
        answers = notebooks.cells_by_grade_id(sources[name])
        reference = document({grade_id: notebooks.solution_code(answers[grade_id].source)
                              for grade_id in ids[name]}, ids[name])
        found.codes[(name, REFERENCE)] = reference
        found.starters[name] = starter
        tasks.append(NotebookTask(name, starter, reference, {}, threshold))
    submitted = Path(root) / "submitted"
    for student in student_folders(submitted) if submitted.is_dir() else []:
        read_student(found, tasks, student, ids)
    for task in tasks:
        task.solutions = {student: found.codes[(task.notebook, student)] for student in found.compared(task.notebook)}
    return found, tasks


def read_student(found: Similarity, tasks: list[NotebookTask], student: str, ids: dict[str, list[str]]) -> None:
    """Add one student's solution documents to `found.codes`, or the reasons they are not compared."""
    problems = submission_problems(found.root, student)
    if problems:
        found.not_compared[shown(student)] = ["submission not read: " + "; ".join(problems)]
        return
    folder = submission_folder(found.root, student)
    handed_in = handed_in_notebooks(folder)
    missing = [f"{task.notebook}.ipynb" for task in tasks if task.notebook not in handed_in]
    if missing:
        found.not_compared[student] = [f"did not hand in {', '.join(missing)}"]
    for name in (task.notebook for task in tasks if task.notebook in handed_in):
        try:
            found.codes[(name, student)] = read_solution(folder / f"{name}.ipynb", ids[name])
        except ValueError as error:
            found.not_compared.setdefault(student, []).append(str(error))


def compare_class(root: Path, names: list[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
                  scheduler: str | None = None) -> Similarity:
    """Compare the class's solutions of each notebook (all notebooks by default); nothing is written."""
    started = time.perf_counter()
    names = list(names or notebook_names(root))
    unknown = sorted(set(names) - set(notebook_names(root)))
    if unknown:
        raise RuntimeError(f"unknown notebooks {unknown}; choose from {notebook_names(root)}")
    if not 0 < threshold <= 1:
        raise RuntimeError(f"the threshold is a share of code between 0 and 1, not {threshold}")
    found, tasks = read_class(root, names, threshold)
    found.results = {result.notebook: result for result in run_tasks(tasks, scheduler)}
    locate(found, found.matches()[:MAX_SHOWN])
    found.seconds = time.perf_counter() - started
    return found


# --- the page and the CSV ------------------------------------------------------------------------------

STYLE = """body { font-family: sans-serif; margin: 2em; max-width: 110em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
td.flagged { background: #fbe3e3; font-weight: bold; }
.muted { color: #777; }
nav a { margin-right: 1em; }
.pair { margin: 1em 0 2em; }
.sides { display: flex; gap: 1em; }
.side { flex: 1 1 0; min-width: 0; }
.side pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #fafafa; border: 1px solid #ddd;
            padding: 0.5em; font-size: 0.85em; max-height: 40em; overflow-y: auto; margin: 0; }
mark { background: #ffd27a; }"""


def esc(value: object) -> str:
    """`value` as text safe in HTML content and attributes."""
    return html.escape(str(value), quote=True)


def highlighted(code: str, ranges: list[tuple[int, int]]) -> str:
    """`code` escaped, each range inside <mark> (escaped piece by piece, so no student text is ever markup)."""
    pieces, position = [], 0
    for start, end in ranges:
        pieces.append(esc(code[position:start]) + "<mark>" + esc(code[start:end]) + "</mark>")
        position = end
    return "".join(pieces) + esc(code[position:])


def percent(score: float | None) -> str:
    """A score as a percentage, or a dash when there is none."""
    return "-" if score is None else f"{100 * score:.0f}%"


def anchor(match: Match) -> str:
    """The id of a match's code on the page (a colon is in no student id nor notebook name)."""
    return f"code:{match.notebook}:{match.first}:{match.second}"


def score_cell(found: Similarity, first: str, second: str, notebook: str) -> str:
    """A table cell: the pair's score on a notebook, flagged and linked to the code when at or above the threshold."""
    match = found.match(first, second, notebook)
    if match is None:
        return f'<td class="num">{percent(found.score(first, second, notebook))}</td>'
    text = f'<a href="#{esc(anchor(match))}">{percent(match.score)}</a>' if match.shown else percent(match.score)
    return f'<td class="num flagged">{text}</td>'


def pairs_section(found: Similarity) -> str:
    """The student pairs with a notebook at or above the threshold, ranked (the first MAX_PAIRS_LISTED)."""
    flagged = found.pairs()
    pairs = flagged[:MAX_PAIRS_LISTED]
    head = "".join(f"<th>{esc(name)}</th>" for name in found.notebooks)
    rows = "".join(f'<tr data-pair="{esc(first)} {esc(second)}"><td class="num">{rank}</td><td>{esc(first)}</td>'
                   f"<td>{esc(second)}</td>"
                   + "".join(score_cell(found, first, second, name) for name in found.notebooks) + "</tr>\n"
                   for rank, (first, second) in enumerate(pairs, 1))
    body = (f'<table id="pairs">\n<thead><tr><th>rank</th><th>student</th><th>student</th>{head}</tr></thead>\n'
            f"<tbody>\n{rows}</tbody>\n</table>\n" if pairs else
            '<p id="pairs">No pair of students reaches the threshold on any notebook.</p>\n')
    return (f'<h2 id="pairs-heading">Pairs of students at or above {percent(found.threshold)}</h2>\n'
            f'<p class="muted">{len(flagged)} pair(s){listed(len(flagged))}, ranked by their highest score, then by '
            "how many notebooks reach the threshold. A score is the larger of copydetect's two shares (the share of "
            "one student's solution code found in the other's); a dash: one of them was not compared on that "
            "notebook. A highlighted score links to the two solutions side by side (the highest "
            f"{MAX_SHOWN} matches).</p>\n" + body)


def listed(count: int) -> str:
    """What the pairs table leaves out, in words."""
    return f" (the first {MAX_PAIRS_LISTED} listed here; every pair is in the CSV)" if count > MAX_PAIRS_LISTED else ""


def notebooks_section(found: Similarity) -> str:
    """Per notebook: students compared, how the scores of student pairs spread, and the matches."""
    rows = []
    for name in found.notebooks:
        result = found.results[name]
        scores = [score for (_, second), score in result.scores.items() if second != REFERENCE]
        spread = [percent(float(np.percentile(scores, q))) if scores else "-" for q in (50, 95, 100)]
        pairs = sum(second != REFERENCE for _, second in result.matches)
        rows.append(f"<tr><td>{esc(name)}</td><td class=\"num\">{len(found.compared(name))}</td>"
                    + "".join(f'<td class="num">{value}</td>' for value in spread)
                    + f'<td class="num">{pairs}</td><td class="num">{len(result.matches) - pairs}</td>'
                    f'<td class="num">{result.seconds:.1f}</td></tr>\n')
    return ('<h2 id="notebooks">Notebooks</h2>\n<p class="muted">How the scores of student pairs spread: a pair far '
            "above the class's usual score is worth reading first.</p>\n<table id=\"notebooks-table\">\n<thead><tr>"
            "<th>notebook</th><th>students compared</th><th>median pair</th><th>95th percentile</th>"
            "<th>highest pair</th><th>pairs at or above</th><th>students matching the reference</th>"
            f"<th>seconds</th></tr></thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n")


def reference_section(found: Similarity) -> str:
    """The students whose solutions match the reference solution at or above the threshold."""
    students = found.reference_matches()
    head = "".join(f"<th>{esc(name)}</th>" for name in found.notebooks)
    rows = "".join(f'<tr data-student="{esc(student)}"><td>{esc(student)}</td>'
                   + "".join(score_cell(found, student, REFERENCE, name) for name in found.notebooks) + "</tr>\n"
                   for student in students)
    body = (f'<table id="reference">\n<thead><tr><th>student</th>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n'
            "</table>\n" if students else
            '<p id="reference">No student\'s solution matches the reference solution at the threshold.</p>\n')
    return ('<h2 id="reference-heading">Solutions that match the reference solution</h2>\n'
            '<p class="muted">The reference solutions are public with the course repository; a high score here '
            "means the student's code is largely the reference's.</p>\n" + body)


def not_compared_section(found: Similarity) -> str:
    """Students, or some of their notebooks, that were not compared, and why."""
    if not found.not_compared:
        return '<h2 id="not-compared">Not compared</h2>\n<p>Every student\'s every notebook was compared.</p>\n'
    rows = "".join(f'<tr data-student="{esc(student)}"><td>{esc(student)}</td><td><ul>'
                   + "".join(f"<li>{esc(reason)}</li>" for reason in reasons) + "</ul></td></tr>\n"
                   for student, reasons in sorted(found.not_compared.items()))
    return ('<h2 id="not-compared">Not compared</h2>\n<p class="muted">Submissions autograde would reject, and '
            "notebooks not handed in or not readable: none of these is compared (look at them yourself).</p>\n"
            f'<table id="not-compared-table">\n<thead><tr><th>student</th><th>why</th></tr></thead>\n<tbody>\n{rows}'
            "</tbody>\n</table>\n")


def label(student: str) -> str:
    """How a side of a pair is named on the page."""
    return "the reference solution" if student == REFERENCE else student


def code_section(found: Similarity) -> str:
    """Each match's two solutions side by side, the matching code highlighted (at most MAX_SHOWN)."""
    matches = found.matches()
    blocks = []
    for match in (match for match in matches if match.shown):
        sides = []
        for student, share, ranges in zip((match.first, match.second), match.scores, match.regions):
            code = found.codes[(match.notebook, student)]
            sides.append(f'<div class="side"><h4>{esc(label(student))}: {percent(share)} of it matches</h4>'
                         f"<pre>{highlighted(code, ranges)}</pre></div>")
        blocks.append(f'<div class="pair" id="{esc(anchor(match))}"><h3>{esc(match.notebook)}: '
                      f"{esc(label(match.first))} and {esc(label(match.second))}, {percent(match.score)}</h3>\n"
                      f'<div class="sides">{"".join(sides)}</div></div>\n')
    more = (f'<p class="muted">{len(matches) - MAX_SHOWN} more match(es) are in the tables above and the CSV, '
            "their code not shown here.</p>\n" if len(matches) > MAX_SHOWN else "")
    return ('<h2 id="code">Matching code</h2>\n<p class="muted">Highlighted: code whose token sequences (names, '
            "strings and comments abstracted) both solutions share, as copydetect counts it. The release's starter "
            "code matches nothing by itself, but a shared sequence that starts in a starter line (a signature, a "
            "docstring) and runs into the student's own code is highlighted whole.</p>\n"
            + "".join(blocks) + more)


NAVIGATION = ('<nav><a href="#notebooks">notebooks</a><a href="#pairs-heading">pairs</a>'
              '<a href="#reference-heading">reference</a><a href="#not-compared">not compared</a>'
              '<a href="#code">matching code</a></nav>\n')


def render(found: Similarity, csv_name: str = "similarity.csv") -> str:
    """The whole page: self-contained, no script, student text escaped; `csv_name`: the CSV beside it."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Similarity report: {ASSIGNMENT}"
    intro = (f"<p>Threshold <strong>{percent(found.threshold)}</strong>: a pair is listed when, on some notebook, "
             "that share of one student's solution code (the solution cells, the release's starter code left out) "
             f"is also in the other's. Compared with copydetect {esc(copydetect.__version__)} (Python tokens, names "
             f"and strings abstracted, fingerprints of {NOISE_THRESHOLD} tokenised characters) in "
             f"{found.seconds:.0f} s; course directory <code>{esc(Path(found.root).resolve())}</code>; generated "
             f"{when}; every pair's score is in <code>{esc(csv_name)}</code> beside this page.</p>\n"
             '<p class="muted">A high score says two solutions share most of their token sequences, renamed '
             "variables and reordered functions included; it does not prove copying. Short cells with one natural "
             "solution match by themselves, and students may have worked together as allowed: read the code before "
             "you act.</p>\n")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n" + intro + NAVIGATION
            + notebooks_section(found) + pairs_section(found) + reference_section(found)
            + not_compared_section(found) + code_section(found) + "</body>\n</html>\n")


def write_csv(found: Similarity, path: Path) -> None:
    """Every pair compared: student_a, student_b (or "(reference)"), notebook, score (the larger share), flagged."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_a", "student_b", "notebook", "score", "flagged"])
        for name in found.notebooks:
            for (first, second), score in found.results[name].scores.items():
                writer.writerow([first, second, name, f"{score:.4f}", int(score >= found.threshold)])


def replace_with(path: Path, write) -> None:
    """Write `path` through a temporary file renamed over it (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    temporary.replace(path)


def write_similarity(root: Path, names: list[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
                     out: Path | None = None, scheduler: str | None = None) -> Similarity:
    """Compare the class and write the page (default reports/similarity.html) and the CSV beside it (.csv)."""
    out = Path(out) if out is not None else Path(root) / "reports" / "similarity.html"
    if out.suffix.lower() == ".csv":
        raise RuntimeError(f"{out} would be overwritten by the CSV written beside the page: name an .html file")
    found = compare_class(root, names, threshold, scheduler)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = out.with_suffix(".csv")
    replace_with(table, lambda path: write_csv(found, path))
    replace_with(out, lambda path: path.write_text(render(found, table.name), encoding="utf-8"))
    found.page, found.table = out, table
    return found

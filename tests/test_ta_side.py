"""The TA-side attack catalogue (grader/variants/ta_side.py) through the commands a TA runs.

One course: a victim (the reference 4_tsne, 12/12) and one student per attack, graded on a two-worker
Dask LocalCluster into the course's SQLite gradebook; then a routine rerun with the `aecourse autograde`
command, `nbgrader generate_feedback`, `aecourse report`, and the feedback pages, the formgrader's
submission view and the class report in headless Chromium with a canary server listening. Every
invariant is checked over every case at once.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from grader import notebooks, parallel, pipeline, submissions
from grader.variants.ta_side import CANARY, CANARY_PORT, NOTEBOOK, attacks

SECRET = "ta-side-secret-4f1d9c0b7e"   # distinctive bytes to look for in every file the TA's tools wrote
PEAK_MEMORY_MIB = 1536                 # the bound on an nbgrader grading process (it imports torch)
COMMAND_LIMIT = 900                    # seconds any one TA command may take here
ATTACKS = attacks()
FULL = 12.0


class CanaryServer:
    """A loopback HTTP server that records every request a payload makes if it runs."""

    def __init__(self, port: int):
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                outer.requests.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def submit_attack(root: Path, attack) -> None:
    """Submit the blank 4_tsne release with the attack's cell, edits and files (whatever it scores, it gained)."""
    notebook, _ = submissions._notebooks(root, NOTEBOOK)
    if attack.code:
        notebook.cells.append(nbformat.v4.new_code_cell(attack.cell()))
    if attack.edit:
        attack.edit(notebook)
    folder = pipeline.submit(root, attack.student_id, {f"{NOTEBOOK}.ipynb": notebook})
    if attack.files:
        attack.files(folder)


def snapshot(paths: list[Path]) -> dict[str, tuple]:
    """Mode, size, mtime and content digest of every file under `paths` (links and special files never read;
    files above 64 MiB, such as the sparse attack's, by size and mtime only)."""
    seen = {}
    for top in paths:
        entries = [top] if top.is_file() else [Path(folder) / name for folder, folders, files in os.walk(top)
                                                 for name in sorted(folders + files)]
        for path in entries:
            info = path.lstat()
            digest = ""
            if stat.S_ISREG(info.st_mode) and info.st_size <= 64 * 2**20:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return seen


def aecourse(*args: str, timeout: float = COMMAND_LIMIT) -> subprocess.CompletedProcess:
    """Run the TA's command line tool as a TA would."""
    return subprocess.run([str(Path(sys.executable).parent / "aecourse"), *args], capture_output=True, text=True,
                          timeout=timeout, env=pipeline.grading_env())


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """The attacked course after grading, a routine rerun, feedback and the report."""
    started = time.time()
    root = pipeline.prepare_course(tmp_path_factory.mktemp("ta-side"))
    (root / ".aecourse_secret").write_text(SECRET)
    pipeline.generate_release(root)
    reference = pipeline.train_reference(NOTEBOOK)
    submissions.submit_reference(root, "victim", NOTEBOOK, reference)
    for attack in ATTACKS:
        submit_attack(root, attack)
    bwrap = shutil.which("bwrap")
    protected = [root / ".aecourse_secret", root / "nbgrader_config.py", root / "source", root / "submitted"]
    before = snapshot(protected)
    bwrap_mode = os.stat(bwrap).st_mode if bwrap else None
    students = ["victim", *(attack.student_id for attack in ATTACKS)]
    run = parallel.grade_class(root, students, workers=2, progress=False)
    rerun = aecourse("autograde", "--course", str(root))
    feedback = pipeline.nbgrader(root, "generate_feedback", pipeline.ASSIGNMENT, "--force", check=False)
    report = aecourse("report", "--course", str(root))
    return {"started": started, "root": root, "run": {r.student: r for r in run.reports}, "rerun": rerun, "feedback": feedback,
            "report": report, "before": before, "protected": protected, "bwrap": (bwrap, bwrap_mode)}


def test_the_victim_keeps_its_submission_and_full_marks(attacked):
    root = attacked["root"]
    assert attacked["run"]["victim"].total() == FULL, attacked["run"]["victim"]
    assert pipeline.read_scores(root, "victim")[NOTEBOOK] == pytest.approx(attacked["run"]["victim"].scores[NOTEBOOK])
    assert attacked["rerun"].returncode == 0, attacked["rerun"].stdout[-3000:] + attacked["rerun"].stderr[-3000:]
    assert "victim" in attacked["rerun"].stdout.split("not regraded")[-1], "the routine rerun regraded the victim"
    assert sum(pipeline.read_scores(root, "victim")[NOTEBOOK].values()) == FULL


def test_course_files_and_other_submissions_are_unchanged(attacked):
    after = snapshot(attacked["protected"])
    changed = sorted(path for path in attacked["before"] if attacked["before"][path] != after.get(path))
    assert changed == [], f"files the TA's tools must never change were changed: {changed[:10]}"
    added = sorted(set(after) - set(attacked["before"]))
    assert added == [], f"files appeared among the course files and submissions: {added[:10]}"
    bwrap, mode = attacked["bwrap"]
    if bwrap:
        assert os.stat(bwrap).st_mode == mode and os.access(bwrap, os.X_OK), "bubblewrap's mode changed"


def test_the_gradebook_is_intact(attacked):
    gradebook = attacked["root"] / "gradebook.db"
    assert gradebook.lstat().st_mode & 0o777 == 0o644 and stat.S_ISREG(gradebook.lstat().st_mode)
    with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as connection:
        assert connection.execute("pragma integrity_check").fetchone() == ("ok",)


def test_nothing_the_kernel_left_reaches_the_tas_folders(attacked):
    root = attacked["root"]
    for top in ("autograded", "feedback"):
        for folder, folders, files in os.walk(root / top):
            for name in folders + files:
                path = Path(folder) / name
                info = path.lstat()
                assert stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode), f"{path} is not a regular file"
                assert info.st_nlink == 1 or stat.S_ISDIR(info.st_mode), f"{path} is hard-linked"
                if stat.S_ISREG(info.st_mode):
                    assert SECRET.encode() not in path.read_bytes(), f"the course secret is in {path}"
    # scratch folders of this run's kernels (a killed earlier run may have left older ones)
    leftovers = [path for path in Path(tempfile.gettempdir()).glob("aecourse-kernel-ta-*")
                 if path.stat().st_mtime >= attacked["started"]]
    assert leftovers == [], f"scratch folders left behind: {leftovers[:5]}"


def test_every_attack_ran_and_cost_at_most_its_own_points(attacked):
    root = attacked["root"]
    for attack in ATTACKS:
        report = attacked["run"][attack.student_id]
        assert report.total() == 0, (attack.name, report.scores)  # a blank notebook earns nothing
        if attack.rejected:
            assert not report.scores and "rejected" in report.error, (attack.name, report.error[-500:])
            continue
        path = root / "autograded" / attack.student_id / pipeline.ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        assert path.is_file() and not path.is_symlink(), f"{attack.name}: no graded notebook"
        if attack.code:
            assert f"TA-TRICK {attack.name}" in path.read_text(), f"{attack.name}: the attack did not run"


def test_grading_processes_stay_under_the_memory_bound(attacked):
    peaks = {student: report.peak_mib for student, report in attacked["run"].items() if report.peak_mib}
    assert len(peaks) >= len([a for a in ATTACKS if not a.rejected]), "peak memory was not reported"
    assert max(peaks.values()) < PEAK_MEMORY_MIB, sorted(peaks.items(), key=lambda item: -item[1])[:3]


def test_feedback_and_report_are_written(attacked):
    assert attacked["feedback"].returncode == 0, attacked["feedback"].stderr[-3000:]
    assert attacked["report"].returncode == 0, attacked["report"].stderr[-3000:]
    assert (attacked["root"] / "feedback" / "victim" / pipeline.ASSIGNMENT / f"{NOTEBOOK}.html").is_file()


def test_no_script_runs_in_feedback_formgrader_or_report(attacked):
    from browser import chromium

    from grader.formgrader import start_formgrader

    root = attacked["root"]
    active = [a.student_id for a in ATTACKS if a.kind == "active content"]
    canary = CanaryServer(CANARY_PORT)
    try:
        with start_formgrader(root) as server, chromium() as driver:
            pages = [server.page(f"/files/feedback/{student}/{pipeline.ASSIGNMENT}/{NOTEBOOK}.html") for student in active]
            pages += [server.page(f"/formgrader/submissions/{submission_id(root, student)}/") for student in active]
            reports = sorted((root / "reports").glob("*.html")) if (root / "reports").is_dir() else []
            pages += [path.as_uri() for path in reports]
            for page in pages:
                driver.get(page)
                driver.implicitly_wait(0)
                ran = driver.execute_script(f"return window.{CANARY} || null")
                assert ran is None, f"a student's script ran on {page}"
            driver.execute_script("return new Promise(r => setTimeout(r, 1500))")
    finally:
        canary.close()
    assert canary.requests == [], f"student scripts reached the canary server: {canary.requests}"
    assert len(pages) >= 2 * len(active) + 1


def submission_id(root: Path, student: str) -> str:
    """The gradebook id of a student's 4_tsne submission (the formgrader's submission page)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        return gradebook.find_submission_notebook(NOTEBOOK, pipeline.ASSIGNMENT, student).id


def test_the_catalogue_covers_every_class_of_attack():
    kinds = {attack.kind for attack in ATTACKS}
    assert kinds == {"links", "exfiltration", "active content", "special files", "bombs", "submitted files"}
    assert len(ATTACKS) >= 25 and len({a.name for a in ATTACKS}) == len(ATTACKS)
    assert all(attack.stopped_by and attack.trick for attack in ATTACKS)

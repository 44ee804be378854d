"""Student-made files read as hostile (grader/submitted.py): ids, submission checks, digests, capped JSON reads,
and a class run that rejects a hostile submission without grading or touching it. No nbgrader runs; seconds."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from grader import parallel, submitted
from grader.pipeline import ASSIGNMENT, GradeReport
from grader.submitted import UnreadableFile

LIMIT = 30  # seconds any check may take; a check that blocks on a FIFO or reads /dev/zero never ends


def finishes(function, *args, seconds: float = LIMIT, **kwargs):
    """`function(*args, **kwargs)` run in a thread that must end within `seconds`; its result, or its exception."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)  # daemon: a blocked one does not hold pytest open
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} still running after {seconds} s: it blocked or read too much"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def make_course(root: Path) -> Path:
    """A course with a source file of the assignment and alice's regular submission."""
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    (root / "source" / ASSIGNMENT / "1_ae.py").write_text("# the course's solution\n")
    alice = submitted.submission_folder(root, "alice")
    alice.mkdir(parents=True)
    (alice / "1_ae.ipynb").write_text('{"cells": []}')
    (alice / "1_ae_ae.pth").write_bytes(b"weights")
    return root


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return make_course(tmp_path / "course")


@pytest.fixture
def bob(course: Path) -> Path:
    """Bob's submission folder, with one regular notebook, to be made hostile by each test."""
    folder = submitted.submission_folder(course, "bob")
    folder.mkdir(parents=True)
    (folder / "2_dae.ipynb").write_text('{"cells": []}')
    return folder


def problems(folder: Path, **limits) -> list[str]:
    """`check_submission` of `folder`, which must finish in time."""
    return finishes(submitted.check_submission, folder, **limits)


def only_problem(folder: Path, **limits) -> str:
    """The one problem `check_submission` finds in `folder`."""
    found = problems(folder, **limits)
    assert len(found) == 1, found
    return found[0]


# --- student ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize("student", ["alice", "bob.smith", "s123_x-y", "a@uni", "_x", "A" * 64])
def test_valid_ids_are_accepted(student):
    assert submitted.validate_student_id(student) == student


@pytest.mark.parametrize("student", ["../x", "a/b", "*", "a b", "$(x)", ".hidden", "-rf", "..", "a..b", "", "A" * 65,
                                     "a?", "[ab]", "a\nb", "a;b", "a|b", "`x`", "a\\b", "é", "a\tb", "@x"])
def test_invalid_ids_are_rejected_with_what_to_do(student):
    with pytest.raises(ValueError, match="not a valid student id") as raised:
        submitted.validate_student_id(student)
    message = str(raised.value)
    assert "letters, digits" in message and "Rename the student's folder" in message
    assert "\n" not in message and "\t" not in message  # an id is shown escaped, never printed raw


# --- checking a submission -----------------------------------------------------------------------

def test_a_regular_submission_has_no_problems(course):
    assert problems(submitted.submission_folder(course, "alice")) == []
    assert submitted.submission_problems(course, "alice") == []


def test_a_link_to_another_students_notebook_is_rejected(course, bob):
    (bob / "1_ae.ipynb").symlink_to(submitted.submission_folder(course, "alice") / "1_ae.ipynb")
    assert only_problem(bob) == "1_ae.ipynb is a symbolic link (links are not followed)"


def test_a_link_to_dev_zero_is_rejected(bob):
    (bob / "checkpoints").mkdir()
    (bob / "checkpoints" / "1_ae_ae.pth").symlink_to("/dev/zero")
    assert only_problem(bob) == "checkpoints/1_ae_ae.pth is a symbolic link (links are not followed)"


def test_a_fifo_in_place_of_a_notebook_is_rejected(bob):
    os.mkfifo(bob / "1_ae.ipynb")
    assert only_problem(bob) == "1_ae.ipynb is a named pipe (FIFO), not a file"


def test_a_hard_link_to_a_course_file_is_rejected(course, bob):
    os.link(course / "source" / ASSIGNMENT / "1_ae.py", bob / "1_ae.py")
    message = only_problem(bob)
    assert message.startswith("1_ae.py is a hard link") and "not a file of its own" in message


def test_a_huge_sparse_file_is_rejected_at_its_full_size(bob):
    with open(bob / "1_ae_ae.pth", "wb") as handle:
        handle.truncate(2 * submitted.GiB)  # takes no disk space, but a copy would write 2 GiB
    found = problems(bob)
    assert found == ["1_ae_ae.pth is 2048.0 MiB, more than the 256 MiB allowed per file",
                     "the files add up to 2,048 MiB, more than the 1,024 MiB allowed per submission"]


def test_too_much_in_all_is_rejected(bob):
    for index in range(3):
        with open(bob / f"part{index}.pth", "wb") as handle:
            handle.truncate(5 * submitted.MiB)
    assert only_problem(bob, max_file_bytes=8 * submitted.MiB, max_total_bytes=12 * submitted.MiB) == \
        "the files add up to 15 MiB, more than the 12 MiB allowed per submission"


def test_twenty_thousand_folders_are_not_all_walked(bob):
    for index in range(20_000):
        (bob / f"d{index}").mkdir()
    started = time.time()
    assert only_problem(bob) == "the submission has more than 10,000 files and folders (not counted further)"
    assert time.time() - started < 10


def test_deep_nesting_is_rejected_naming_the_folder(bob):
    deep = bob.joinpath(*["d"] * 40)
    deep.mkdir(parents=True)
    (deep / "x.ipynb").write_text("{}")
    assert only_problem(bob) == "/".join(["d"] * 17) + " is nested more than 16 folders deep (not examined further)"
    assert problems(bob, max_depth=40) == []


def test_many_problems_are_summarised_keeping_the_totals(bob):
    (bob / "2_dae.ipynb").unlink()  # only links: which 29 of the 30 are counted depends on the listing order
    for index in range(30):
        (bob / f"link{index:02d}").symlink_to("/dev/zero")
    found = problems(bob, max_entries=29)
    assert len(found) == submitted.MAX_PROBLEMS_LISTED + 2
    assert found[0].endswith(" is a symbolic link (links are not followed)")
    assert found[-2:] == ["and 9 more problem(s)",
                          "the submission has more than 29 files and folders (not counted further)"]


def test_a_submission_folder_that_is_a_link_is_rejected(course):
    (course / "submitted" / "mallory").mkdir()
    submitted.submission_folder(course, "mallory").symlink_to(submitted.submission_folder(course, "alice"))
    assert submitted.submission_problems(course, "mallory") == [
        f"submitted/mallory/{ASSIGNMENT} is a symbolic link, not a folder (links are not followed)"]
    (course / "submitted" / "trudy").symlink_to(course / "submitted" / "alice")
    assert submitted.submission_problems(course, "trudy") == [
        "submitted/trudy is a symbolic link, not a folder (links are not followed)"]


def test_odd_names_are_shown_escaped(bob):
    os.mkfifo(bob / "x\x1b[2J\n.ipynb")
    assert only_problem(bob) == "x\\x1b[2J\\n.ipynb is a named pipe (FIFO), not a file"


def test_submission_problems_rejects_an_invalid_id_before_looking(course):
    found = submitted.submission_problems(course, "../../etc")
    assert len(found) == 1 and "not a valid student id" in found[0]


# --- reading files -------------------------------------------------------------------------------

def test_file_digest_reads_regular_files_only(course, bob):
    path = submitted.submission_folder(course, "alice") / "1_ae_ae.pth"
    assert submitted.file_digest(path) == hashlib.sha256(b"weights").digest()
    os.mkfifo(bob / "fifo.pth")
    (bob / "zero.pth").symlink_to("/dev/zero")
    with pytest.raises(UnreadableFile, match="named pipe"):
        finishes(submitted.file_digest, bob / "fifo.pth")
    with pytest.raises(UnreadableFile, match="symbolic link"):
        finishes(submitted.file_digest, bob / "zero.pth")


def test_a_file_swapped_after_its_lstat_is_neither_followed_nor_blocked_on(tmp_path, monkeypatch):
    # lstat said "a regular file", then it became a link or a FIFO: the open itself must refuse it
    target = tmp_path / "target.pth"
    target.write_bytes(b"another student's weights")
    (tmp_path / "link.pth").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.pth")
    monkeypatch.setattr(submitted, "lstat", lambda name, dir_fd=None: os.stat(target))
    with pytest.raises(OSError):  # ELOOP: O_NOFOLLOW
        finishes(submitted.file_digest, tmp_path / "link.pth")
    with pytest.raises(UnreadableFile, match="replaced"):  # O_NONBLOCK opens it at once, fstat says FIFO
        finishes(submitted.file_digest, tmp_path / "fifo.pth")


@pytest.mark.parametrize("content, reason", [
    (b"[" * 100_000, "nested too deeply"),
    (b'{"cells": [\xff]}', "not UTF-8"),
    (b'{"cells": [ not json', "not valid JSON"),
])
def test_read_json_file_refuses_bad_content(tmp_path, content, reason):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    with pytest.raises(UnreadableFile, match=reason):
        finishes(submitted.read_json_file, path)


def test_read_json_file_refuses_what_is_not_a_small_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with open(tmp_path / "huge.json", "wb") as handle:
        handle.truncate(65 * submitted.MiB)
    for name, reason in [("fifo.json", "named pipe"), ("zero.json", "symbolic link"),
                         ("huge.json", "65.0 MiB, more than the 64 MiB read"), ("missing.json", "does not exist")]:
        with pytest.raises(UnreadableFile, match=reason):
            finishes(submitted.read_json_file, tmp_path / name)
    (tmp_path / "ok.json").write_text(json.dumps({"students": {}}))
    assert submitted.read_json_file(tmp_path / "ok.json") == {"students": {}}
    fd = os.open(tmp_path / "ok.json", os.O_RDONLY)
    try:  # a file that grew after its size was looked at is still read no further than the cap
        with pytest.raises(UnreadableFile, match="larger than"):
            submitted.read_capped(fd, 8)
    finally:
        os.close(fd)


# --- the digest ----------------------------------------------------------------------------------

def test_digest_does_not_follow_links_or_open_special_files(course, bob):
    alice_notebook = submitted.submission_folder(course, "alice") / "1_ae.ipynb"
    (bob / "1_ae.ipynb").symlink_to(alice_notebook)
    os.mkfifo(bob / "3_vae.ipynb")
    (bob / "zero.pth").symlink_to("/dev/zero")
    before = finishes(submitted.submission_digest, course, "bob")
    alice_notebook.write_text('{"cells": [1]}')
    assert finishes(submitted.submission_digest, course, "bob") == before  # alice's file was never read
    (bob / "2_dae.ipynb").write_text('{"cells": [2]}')
    assert submitted.submission_digest(course, "bob") != before


def test_digest_covers_the_assignment_and_refuses_invalid_ids(course):
    before = submitted.submission_digest(course, "alice")
    assert parallel.submission_digest is submitted.submission_digest  # still importable from where it was
    (course / "source" / ASSIGNMENT / "1_ae.py").write_text("# changed\n")
    assert submitted.submission_digest(course, "alice") != before
    with pytest.raises(ValueError, match="not a valid student id"):
        submitted.submission_digest(course, "../alice")


def test_largest_submissions_are_graded_first_and_sizes_come_from_lstat_alone(course, bob):
    (bob / "big.pth").write_bytes(b"w" * 4096)
    (bob / "huge.pth").symlink_to(submitted.submission_folder(course, "alice") / "1_ae_ae.pth")
    (bob / "zero.pth").symlink_to("/dev/zero")
    os.mkfifo(bob / "3_vae.ipynb")
    assert finishes(submitted.submission_bytes, course, "bob") == 4096 + len('{"cells": []}')
    carol = submitted.submission_folder(course, "carol")
    carol.parent.mkdir()
    carol.symlink_to(bob)  # a linked student folder is not measured (its grading rejects it)
    assert submitted.submission_bytes(course, "carol") == 0
    assert parallel.longest_first(course, ["alice", "carol", "bob", "../dave"]) == ["bob", "alice", "carol", "../dave"]


# --- a class with a hostile submission -----------------------------------------------------------

def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder` as lstat sees it: kind, size, times, link target; nothing is opened."""
    seen = {}
    for directory, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(directory) / name
            info = os.lstat(path)
            seen[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns,
                                                   info.st_ino, os.readlink(path) if path.is_symlink() else None)
    return seen


@pytest.fixture
def fake_grading(monkeypatch, course):
    """Grading without nbgrader: an in-process Dask cluster whose task marks the student graded in a file."""
    from distributed import Client, LocalCluster

    def grade_student(root: str, student: str, options: dict, wanted, run: str) -> GradeReport:
        (Path(root) / f"graded-{student}").write_text("")
        return GradeReport(student, {"1_ae": {"test": 1.0}}, seconds=0.5)

    @contextlib.contextmanager
    def dask_client(workers=None, scheduler=None):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            yield client

    monkeypatch.setattr(parallel, "grade_student", grade_student)
    monkeypatch.setattr(parallel, "dask_client", dask_client)
    return lambda: sorted(path.name.removeprefix("graded-") for path in course.glob("graded-*"))


def test_grade_class_rejects_without_grading_or_touching(course, bob, fake_grading):
    alice_notebook = submitted.submission_folder(course, "alice") / "1_ae.ipynb"
    os.mkfifo(bob / "1_ae.ipynb")
    (bob / "1_ae_ae.pth").symlink_to(alice_notebook)
    submitted.submission_folder(course, "bad name").mkdir(parents=True)
    before = snapshot(course / "submitted")
    run = finishes(parallel.grade_class, course, ["alice", "bob", "bad name"], workers=1, progress=False)
    assert fake_grading() == ["alice"]
    assert snapshot(course / "submitted") == before
    assert run.rejected == ["bob", "bad name"] and run.skipped == []
    reports = {report.student: report for report in run.reports}
    assert reports["bob"].error == ("submission rejected: 1_ae.ipynb is a named pipe (FIFO), not a file; "
                                    "1_ae_ae.pth is a symbolic link (links are not followed)")  # sorted by name
    assert reports["bob"].scores == {}
    assert reports["bad name"].error.startswith("submission rejected: 'bad name' is not a valid student id")
    assert not reports["alice"].error and [r.student for r in run.errors] == ["bob", "bad name"]
    assert not (course / "gradebook.db").exists()  # a rejected student's scores are looked up only where there are any
    record = parallel.GradingRecord.load(course)
    assert record.students["bob"]["error"].startswith("submission rejected")
    assert record.students["bob"]["digest"] is None  # never up to date: the next run checks bob again
    assert "bad name" not in record.students

    # the student resubmits regular files: the next run grades them
    (bob / "1_ae.ipynb").unlink()
    (bob / "1_ae.ipynb").write_text('{"cells": []}')
    (bob / "1_ae_ae.pth").unlink()
    again = parallel.grade_class(course, ["bob"], workers=1, progress=False)
    assert again.rejected == [] and again.skipped == [] and not again.errors
    assert fake_grading() == ["alice", "bob"]
    assert parallel.GradingRecord.load(course).students["bob"]["digest"] == submitted.submission_digest(course, "bob")


def test_grading_record_is_read_safely(course):
    path = course / parallel.RECORD_FILE
    path.write_text("[" * 100_000)
    assert parallel.GradingRecord.load(course).students == {}
    path.unlink()
    os.mkfifo(path)
    assert finishes(parallel.GradingRecord.load, course).students == {}
    path.unlink()
    path.write_text(json.dumps({"students": {"alice": {"digest": "d", "error": ""}, "bob": ["not", "an", "entry"]}}))
    assert parallel.GradingRecord.load(course).students == {"alice": {"digest": "d", "error": ""}}

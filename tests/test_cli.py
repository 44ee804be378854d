"""Every `aecourse` command, run through `cli.main` against temporary course directories."""
from __future__ import annotations

import os

import nbformat
import pytest

from grader import cli, notebooks, pipeline, submissions
from grader.judge.carry import VERDICT_PREFIX


# First: `build` below would rewrite stale sources, hiding them from `check`.
def test_check_passes_on_the_committed_release(capsys):
    assert cli.main(["check"]) == 0, capsys.readouterr().out


def test_build_writes_up_to_date_sources(capsys):
    assert cli.main(["build"]) == 0
    assert notebooks.stale_sources(pipeline.SOURCE) == []
    assert "built source/autoencoders/1_ae.ipynb" in capsys.readouterr().out


def test_release_into_a_temporary_course(tmp_path, capsys):
    assert cli.main(["release", "--course", str(tmp_path)]) == 0
    made = tmp_path / "release" / pipeline.ASSIGNMENT
    assert (made / "1_ae.ipynb").exists()
    # The committed release, which `check` above finds leak-free.
    assert pipeline.folder_differences(made, pipeline.RELEASE) == []


def test_train_reference_reports_its_folder(capsys):
    assert cli.main(["train-reference", "1_ae"]) == 0
    assert str(pipeline.train_reference("1_ae")) in capsys.readouterr().out


def test_offline_settings_shorten_only_in_offline_mode(monkeypatch):
    source = notebooks.build_notebook(pipeline.SOURCE / "1_ae.py")
    monkeypatch.setenv("AUTOENCODERS_OFFLINE_SPLIT", "1")
    lines = [line for cell in pipeline.offline_settings(source, "1_ae").cells for line in cell.source.splitlines()
             if line.startswith("AE2D_STEPS = ")]
    assert len(lines) == 1 and lines[0].startswith("AE2D_STEPS = 5_000")
    monkeypatch.setenv("AUTOENCODERS_OFFLINE_SPLIT", "")
    assert "AE2D_STEPS = 50_000" in "".join(cell.source for cell in pipeline.offline_settings(source, "1_ae").cells)
    monkeypatch.setenv("AUTOENCODERS_OFFLINE_SPLIT", "1")
    monkeypatch.setitem(pipeline.OFFLINE_SETTINGS, "1_ae", {"NO_SUCH_CONSTANT": "1"})
    with pytest.raises(RuntimeError, match="NO_SUCH_CONSTANT"):
        pipeline.offline_settings(source, "1_ae")


def test_autograde_prints_scores_for_a_course(course, capsys):
    reference = pipeline.train_reference("4_tsne")  # the quickest notebook to grade
    submissions.submit_reference(course, "cli-reference", "4_tsne", reference)
    submissions.submit_blank(course, "cli-blank", "4_tsne")
    assert cli.main(["autograde", "cli-reference", "cli-blank", "--course", str(course), "--workers", "2"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    full = sum(notebooks.points(notebooks.read(pipeline.SOURCE / "4_tsne.ipynb")).values())
    assert rows["student"][4] == "4_tsne"
    assert rows["cli-reference"][4] == f"{full:g}" and rows["cli-reference"][1] == "-"  # only 4_tsne handed in
    assert rows["cli-blank"][4] == "0"
    assert (course / "grades.csv").read_text().count("cli-") == 2


def test_autograde_again_skips_unchanged_submissions(course, capsys):
    submissions.submit_blank(course, "cli-again", "4_tsne")
    assert cli.main(["autograde", "cli-again", "--course", str(course), "--workers", "1"]) == 0
    assert "not regraded" not in capsys.readouterr().out
    assert cli.main(["autograde", "cli-again", "--course", str(course), "--workers", "1"]) == 0
    assert "1 student(s) not regraded" in capsys.readouterr().out
    assert cli.main(["autograde", "cli-again", "--course", str(course), "--force", "--cold"]) == 0
    assert "not regraded" not in capsys.readouterr().out
    assert cli.main(["report", "--course", str(course)]) == 0
    assert (course / "reports" / "class_report.html").exists()


def test_autograde_without_submissions_says_what_to_do(tmp_path, capsys):
    assert cli.main(["autograde", "--course", str(tmp_path)]) == 1
    assert "submitted/<student>/autoencoders/" in capsys.readouterr().err


def test_demo_on_one_notebook(tmp_path, capsys):
    assert cli.main(["demo", "--course", str(tmp_path), "--notebooks", "4_tsne", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "demo finished" in out and "every demo student got the score declared for it" in out and (tmp_path / "feedback" / "reference" / pipeline.ASSIGNMENT / "4_tsne.html").exists()
    # the demo's wrong students are the reference with one cell changed: the similarity report lists them
    page = (tmp_path / "reports" / "similarity.html").read_text()
    assert "wrong-4_tsne-" in page and 'href="similarity.html"' in (tmp_path / "reports" / "class_report.html").read_text()
    passed = [output["text"] for path in (tmp_path / "autograded").glob(f"*/{pipeline.ASSIGNMENT}/4_tsne.ipynb")
              for cell in nbformat.read(path, as_version=4).cells if cell.metadata.get("nbgrader", {}).get("points")
              for output in cell.get("outputs", []) if output.get("text", "").startswith(VERDICT_PREFIX)]
    assert len(passed) > 6  # the reference passes all six cells: each says what was measured or compared, and against what
    assert all(len(text.strip().splitlines()) > 1 and ("allowed)" in text or "needs " in text) for text in passed), passed
    # the t-SNE maps are pictured beside a reference solution's, kept when the demo trained the reference, also for
    # the wrong students, whose helpers fail test_tsne after their maps were drawn
    for student in ("reference", *(name for name in os.listdir(tmp_path / "feedback") if name.startswith("wrong-"))):
        feedback = (tmp_path / "feedback" / student / pipeline.ASSIGNMENT / "4_tsne.html").read_text()
        assert feedback.count("beside a reference solution") == 1 and feedback.count("data:image/png") >= 2, student


def test_unknown_command_is_rejected():
    with pytest.raises(SystemExit):
        cli.main(["grade-everything"])


def test_formgrader_serves_the_course_until_stopped(course):
    import signal
    import subprocess
    import sys
    import urllib.request

    command = [sys.executable, "-c", "import sys; from grader import cli; sys.exit(cli.main(sys.argv[1:]))",
               "formgrader", "--course", str(course)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=pipeline.grading_env())
    try:
        url = next(word for line in server.stdout for word in line.split() if "/formgrader?token=" in word)
        assert b"autoencoders" in urllib.request.urlopen(url.replace("/formgrader?", "/formgrader/api/assignments?"),
                                                         timeout=30).read()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def test_autograde_lists_rejected_submissions_and_what_to_do(tmp_path, monkeypatch, capsys):
    import contextlib

    from distributed import Client, LocalCluster

    from grader import parallel

    @contextlib.contextmanager
    def in_process_dask(workers=None, scheduler=None):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            yield client

    def grade_student(root: str, student: str, options: dict, wanted, run: str) -> pipeline.GradeReport:
        (tmp_path / "graded.txt").open("a").write(f"{student}\n")  # a file: the task may run on a copy of this test
        return pipeline.GradeReport(student, {"1_ae": {"test_encoder": 1.0}})

    def graded() -> list[str]:
        return (tmp_path / "graded.txt").read_text().split() if (tmp_path / "graded.txt").exists() else []

    monkeypatch.setattr(parallel, "dask_client", in_process_dask)  # no nbgrader: the rejection is what is tested
    monkeypatch.setattr(parallel, "grade_student", grade_student)
    monkeypatch.setattr(parallel, "export_csv", lambda root, path, db_url=None: path)
    alice = tmp_path / "submitted" / "alice" / pipeline.ASSIGNMENT
    alice.mkdir(parents=True)
    (alice / "1_ae.ipynb").write_text("{}")
    (tmp_path / "submitted" / "eve" / pipeline.ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "submitted" / "eve" / pipeline.ASSIGNMENT / "1_ae.ipynb").symlink_to(alice / "1_ae.ipynb")
    (tmp_path / "submitted" / "bad name" / pipeline.ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "submitted" / "notes.txt").write_text("not a student")
    assert cli.main(["autograde", "--course", str(tmp_path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert graded() == ["alice"]
    assert "2 student(s) not graded, their submission rejected:" in out and "autograde errors" not in out
    assert "  eve: submission rejected: 1_ae.ipynb is a symbolic link (links are not followed)\n" in out
    assert "  bad name: submission rejected: 'bad name' is not a valid student id" in out
    assert "Ask each of those students to resubmit regular files only" in out and "rename a folder" in out
    assert not any(line.startswith("bad name ") for line in out.splitlines())  # not in the score table
    assert "notes.txt" not in out and "1 student(s) graded" in out

    assert cli.main(["autograde", "alice", "../alice", "--course", str(tmp_path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "  ../alice: submission rejected: '../alice' is not a valid student id" in out
    assert set(graded()) == {"alice"}

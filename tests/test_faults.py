"""Grading faults are errors, never scores (grader/faults.py): each is triggered for real, leaves the student
without a score, is listed, makes `aecourse autograde` exit non-zero, and the next run grades the student again.
Everything that decides a grade travels with the task (grader/settings.py) and a change of it regrades."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from grader import cli, parallel, pipeline, settings, submissions
from grader.collect.common import FAULT_KEY, Inputs, split, store
from grader.collect.record import encode
from grader.faults import GradingFault
from grader.judge.carry import carry_out
from grader.judge.common import judge_collection
from grader.preprocessors import grader_missing

from cluster import DaskProcesses

NOTEBOOK = "4_tsne"
FULL = 12.0
INPUTS = Inputs(7)


def passes(data, inputs):
    """A judge that checks one value."""
    assert data["value"] == 1, "value should be 1"


def test_a_judge_that_raises_is_a_grading_fault_and_a_failed_check_is_not():
    def buggy(data, inputs):
        return data["value"] / 0

    with pytest.raises(GradingFault, match="buggy raised ZeroDivisionError"):
        judge_collection(buggy, encode({"value": 1}), INPUTS)
    assert judge_collection(passes, encode({"value": 1}), INPUTS).passed
    failed = judge_collection(passes, encode({"value": 2}), INPUTS)
    assert not failed.passed and failed.message.startswith("value should be 1")
    missing = judge_collection(passes, encode({"other": 1}), INPUTS)  # a collection without its key: the student's
    assert not missing.passed and "lack 'value'" in missing.message
    with pytest.raises(GradingFault, match="in the grading kernel: no data"):
        judge_collection(passes, encode({FAULT_KEY: "no data"}), INPUTS)


def test_a_kernel_without_the_course_data_collects_a_fault(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOENCODERS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("AECOURSE_GRADING_SEED", "7")

    def collector(inputs, model):
        return {"images": split("test")[0][:2]}

    store("test_x", collector, torch.nn.Identity())
    carried = carry_out(tmp_path, "test_x")
    assert isinstance(carried, bytes)
    with pytest.raises(GradingFault, match="MNIST files could not be read"):
        judge_collection(passes, carried, INPUTS)


def test_only_a_failed_import_of_the_grader_itself_reads_as_grader_missing():
    def cell(evalue):
        return {"cell_type": "code", "outputs": [{"output_type": "error", "ename": "ModuleNotFoundError",
                                                  "evalue": evalue}]}
    assert grader_missing(cell("No module named 'grader'"))
    assert grader_missing(cell("No module named 'grader.collect.tsne'"))
    assert not grader_missing(cell("No module named 'grader.judge'"))  # a student reaching for the judges
    assert not grader_missing(cell("No module named 'sklearn'"))


@pytest.fixture(scope="module")
def faulty_course(tmp_path_factory) -> Path:
    """A course whose students all hand in the reference 4_tsne (12/12 when grading works)."""
    root = pipeline.prepare_course(tmp_path_factory.mktemp("faults"))
    (root / ".aecourse_secret").write_text("fault-test-secret")
    pipeline.generate_release(root)
    reference = pipeline.train_reference(NOTEBOOK)
    for student in ("judged", "unimportable", "far"):
        submissions.submit_reference(root, student, NOTEBOOK, reference)
    return root


def test_a_kernel_that_cannot_import_the_grader_is_a_fault_not_a_score(faulty_course):
    # A stale `python3` kernelspec on the TA's machine, pointing at a Python environment that has ipykernel and
    # torch but not the course package (here: this environment's site-packages without their .pth files, where
    # the editable install of the course lives). Only the kernel is affected; nbgrader's process is not.
    import site

    specs = Path(tempfile.mkdtemp(prefix="aecourse-kernelspec-"))
    try:
        spec = specs / "kernels" / "python3"
        spec.mkdir(parents=True)
        start = (f"import sys; sys.path += {site.getsitepackages()!r}; "
                 "from ipykernel import kernelapp; kernelapp.launch_new_instance()")
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-S", "-c", start, "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python"}))
        report = pipeline.autograde(faulty_course, "unimportable", environment={"JUPYTER_PATH": str(specs)})
    finally:
        shutil.rmtree(specs)
    assert "could not import the grader" in report.fault, report.error[-2000:]
    assert report.scores == {} and pipeline.read_scores(faulty_course, "unimportable") == {}


def test_a_failing_judge_process_is_listed_retried_and_never_scored(faulty_course, capsys):
    # 300 MB of address space: the judge's child process cannot even import torch and dies.
    starved = {"judged": {"options": ("--JudgeCollected.judge_memory_limit=300000000",)}}
    run = parallel.grade_class(faulty_course, ["judged"], workers=1, settings=starved, progress=False)
    [report] = run.faults
    assert "judge's process failed" in report.fault and report.scores == {}
    assert pipeline.read_scores(faulty_course, "judged") == {}
    dry = parallel.grade_class(faulty_course, ["judged"], dry_run=True)
    assert "failed on the grading side" in dry.reasons["judged"]
    again = parallel.grade_class(faulty_course, ["judged"], workers=1, progress=False)  # unchanged, yet regraded
    assert not again.faults and again.reports[0].total() == FULL
    assert parallel.grade_class(faulty_course, ["judged"], dry_run=True).reasons == {}
    # What decides a grade is in the record: another data setting or a changed course configuration regrades.
    data = Path(tempfile.mkdtemp(prefix="aecourse-data-"))
    try:
        shutil.copytree(pipeline.grading_env()["AUTOENCODERS_DATA_DIR"], data, dirs_exist_ok=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AUTOENCODERS_DATA_DIR", str(data))
            reason = parallel.grade_class(faulty_course, ["judged"], dry_run=True).reasons["judged"]
        assert reason == "graded under other settings: $AUTOENCODERS_DATA_DIR"
    finally:
        shutil.rmtree(data)
    config = faulty_course / "nbgrader_config.py"
    config.write_text(config.read_text() + "\nc.Execute.timeout = 301\n")
    reason = parallel.grade_class(faulty_course, ["judged"], dry_run=True).reasons["judged"]
    assert reason == "graded under other settings: the grader or the course's sources"
    assert cli.main(["autograde", "judged", "--course", str(faulty_course), "--dry-run"]) == 0
    assert "judged: graded under other settings" in capsys.readouterr().out


def test_a_worker_without_the_data_grades_nobody_and_the_command_fails(faulty_course, tmp_path):
    """A real `dask scheduler` and a `dask worker` that cannot see the data folder (a tmpfs over it)."""
    if not shutil.which("bwrap"):
        pytest.fail("bubblewrap is needed to hide the data folder from a worker (apt-get install bubblewrap)")
    data = Path(pipeline.grading_env()["AUTOENCODERS_DATA_DIR"]).resolve()
    env = pipeline.grading_env()
    with DaskProcesses(env) as cluster:
        cluster.add_worker(wrapper=("bwrap", "--dev-bind", "/", "/", "--tmpfs", str(data), "--"))
        command = [str(Path(sys.executable).parent / "aecourse"), "autograde", "far", "--course", str(faulty_course),
                   "--scheduler", cluster.address]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "GRADING FAULTS: 1 student(s)" in result.stdout and f"no MNIST files in {data}" in result.stdout, result.stdout
    assert "(grading fault: not graded)" in result.stdout
    assert pipeline.read_scores(faulty_course, "far") == {}
    assert parallel.grade_class(faulty_course, ["far"], workers=1, progress=False).reports[0].total() == FULL


def test_a_task_lost_with_its_worker_twice_is_a_fault_and_a_finished_one_is_not_graded_again(faulty_course):
    # The policy lives in the task, so it holds under any scheduler's allowed-failures: the run's folder says where
    # the student's task started before (two workers, both lost) and what finished. No nbgrader process starts here.
    wanted = settings.current(faulty_course)
    url = parallel.gradebook_url(faulty_course)
    state = parallel.RunState.new(faulty_course)
    state.start("judged", "tcp://10.0.0.1:4000")
    state.start("judged", "tcp://10.0.0.2:4000")
    report = parallel.grade_student(str(faulty_course), "judged", {"db_url": url}, wanted, str(state.folder))
    assert "started 2 times and lost its worker each time (tcp://10.0.0.1:4000, tcp://10.0.0.2:4000)" in report.fault
    assert report.scores == {} and pipeline.read_scores(faulty_course, "judged") == {}
    assert state.lost_workers("judged") == ["tcp://10.0.0.1:4000", "tcp://10.0.0.2:4000"]

    finished = pipeline.GradeReport("far", {NOTEBOOK: {"test_kl": 1.0}}, seconds=3.0)
    state.start("far", "tcp://10.0.0.1:4000")
    state.finish(finished)
    assert parallel.grade_student(str(faulty_course), "far", {"db_url": url}, wanted, str(state.folder)) == finished
    assert state.attempts("far") == ["tcp://10.0.0.1:4000"] and state.lost_workers("far") == []

    state.stop()  # the command returned: a task that starts now grades nobody
    late = parallel.grade_student(str(faulty_course), "unimportable", {"db_url": url}, wanted, str(state.folder))
    assert late.interrupted and state.attempts("unimportable") == []


def test_a_task_that_raises_is_a_fault_at_once(faulty_course, monkeypatch, tmp_path):
    # Not a lost worker: the task is not started again and again (once by the scheduler's retries, then a fault).
    import contextlib

    from distributed import Client, LocalCluster

    calls = tmp_path / "calls"  # a file: the task runs on a copy of this function

    def raising(root, student, options, wanted, run):
        with calls.open("a") as out:
            out.write(student + "\n")
        raise RuntimeError("the task broke")

    @contextlib.contextmanager
    def in_process(workers=None, scheduler=None):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client

    monkeypatch.setattr(parallel, "grade_student", raising)
    monkeypatch.setattr(parallel, "dask_client", in_process)
    import threading

    runs = []
    thread = threading.Thread(target=lambda: runs.append(
        parallel.grade_class(faulty_course, ["unimportable"], force=True, progress=False)), daemon=True)
    thread.start()
    thread.join(60)
    assert runs, "grade_class did not return within 60 s: the failing task was started again and again"
    run = runs[0]
    assert run.faults and "the grading task failed: RuntimeError: the task broke" in run.faults[0].fault
    assert calls.read_text().split() == ["unimportable", "unimportable"]  # the task and the scheduler's one retry

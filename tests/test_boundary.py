"""The trust boundary's parts on their own: the scratch folder, the one reader out of it, the collection format,
the bounded judge, and the course config that wires them into nbgrader (grader/scratch.py, grader/collect/record.py,
grader/judge/isolated.py, nbgrader_config.py). Each check is shown to reject what it must and accept what it must."""
from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from grader import pipeline
from grader.collect.record import MAX_DEPTH, MAX_STRING, RecordError, decode, encode
from grader.judge import isolated
from grader.judge.isolated import GradingFault, JudgeLimits, JudgeProcess, judge_isolated
from test_submitted import finishes
from grader.scratch import UnsafeFile, copy_regular_tree, make_scratch, read_regular_file, remove_scratch, usage


# --- the reader out of the scratch folder ----------------------------------------------------------

def test_reader_reads_a_regular_file_beneath_the_folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.bin").write_bytes(b"12345")
    assert read_regular_file(tmp_path, "a/b/c.bin", 5) == b"12345"


@pytest.mark.parametrize("make", ["link_file", "link_folder", "fifo", "device", "missing", "too_big", "dotdot"])
def test_reader_rejects_links_special_files_and_oversize(tmp_path, make):
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "c.bin").write_bytes(b"secret")
    folder = tmp_path / "scratch"
    (folder / "a" / "b").mkdir(parents=True)
    target = folder / "a" / "b" / "c.bin"
    if make == "link_file":
        target.symlink_to(outside / "b" / "c.bin")
    elif make == "link_folder":
        (folder / "a" / "b").rmdir()
        (folder / "a" / "b").symlink_to(outside / "b")
    elif make == "fifo":
        os.mkfifo(target)
    elif make == "device":
        target.symlink_to("/dev/zero")
    elif make == "too_big":
        target.write_bytes(b"x" * 11)
    relative = "../outside/b/c.bin" if make == "dotdot" else "a/b/c.bin"
    with pytest.raises(UnsafeFile) as raised:
        finishes(read_regular_file, folder, relative, 10)
    if make == "missing":
        assert raised.value.errno == errno.ENOENT
    if make == "too_big":
        assert raised.value.errno == errno.EFBIG


def test_scratch_copies_regular_files_only_and_is_removed_whatever_its_modes(tmp_path):
    grading = tmp_path / "grading"
    (grading / "aelib").mkdir(parents=True)
    (grading / "4_tsne.ipynb").write_text("{}")
    (grading / "aelib" / "data.py").write_text("x = 1")
    (grading / "link.html").symlink_to("/etc/hostname")
    os.mkfifo(grading / "pipe.ipynb")
    scratch = finishes(make_scratch, grading)
    try:
        copied = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
        assert copied == ["4_tsne.ipynb", "aelib", "aelib/data.py"]
        (scratch / "locked").mkdir()
        (scratch / "locked" / "f").write_text("x")
        (scratch / "locked").chmod(0)
    finally:
        remove_scratch(scratch)
    assert not scratch.exists()


def test_usage_counts_folders_and_stops_at_the_cap(tmp_path):
    for index in range(50):
        (tmp_path / f"d{index}").mkdir()
    (tmp_path / "f").write_bytes(b"x" * 1000)
    size, entries = usage(tmp_path, 1000)
    assert entries == 51 and size >= 1000
    assert usage(tmp_path, 10)[1] == 11  # counted up to the cap plus one, then stopped


def test_copy_skips_what_is_not_a_regular_file(tmp_path):
    source, target = tmp_path / "s", tmp_path / "t"
    source.mkdir()
    (source / "dev").symlink_to("/dev/zero")
    copy_regular_tree(source, target)
    assert list(target.iterdir()) == []


# --- the collection format -------------------------------------------------------------------------

def test_collections_round_trip_plain_values_and_tensors():
    data = {"cases": [{"value": torch.tensor(1.5), "grad": torch.ones(4, 3)[:, 0]}], "layers": [(128, 784)],
            "calls": [3, 3], "message": "ok", "none": None, "flag": True, 7: "int key", "nan": float("nan")}
    back = decode(encode(data))
    assert back["layers"] == [(128, 784)] and isinstance(back["layers"][0], tuple)
    assert torch.equal(back["cases"][0]["grad"], torch.ones(4)) and back[7] == "int key"
    assert back["nan"] != back["nan"] and back["message"] == "ok" and back["none"] is None


def _document(text: str) -> bytes:
    """A safetensors file whose JSON document is `text`."""
    return save({"__document__": torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8)})


@pytest.mark.parametrize("raw", [
    b"", b"not safetensors", encode({"a": 1})[:-3],
    _document("[" * 100_000),                                               # deep beyond the JSON parser
    _document("null".join(['{"list": ['] * (MAX_DEPTH + 2)) + "null" + "]}" * (MAX_DEPTH + 2)),  # deep, valid
    _document(json.dumps("x" * (MAX_STRING + 1))),                          # a long string
    _document(json.dumps({"tensor": "t9"})),                                # a tensor that is not there
    _document(json.dumps({"eval": "x"})),                                   # an unknown kind
    save({"t0": torch.zeros(2)}),                                           # no document
    struct.pack("<Q", 80) + json.dumps({"t0": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 16]}}
                                       ).encode().ljust(80) + bytes(16),    # declared size beyond the bytes
], ids=["empty", "garbage", "truncated", "json-depth", "depth-cap", "long-string", "missing-tensor", "unknown-kind",
        "no-document", "declared-size"])
def test_collections_break_no_cap(raw):
    with pytest.raises(RecordError):
        decode(raw)


# --- the bounded judge -----------------------------------------------------------------------------

@pytest.fixture(params=[False, True], ids=["fresh", "forked"])
def judge_child(request, monkeypatch):
    """Judge children started as a fresh Python, then forked from this process (as in a warm grading process)."""
    monkeypatch.setattr(isolated, "FORK", request.param)
    monkeypatch.setattr(isolated, "_CHILD", None)
    yield request.param
    if isolated._CHILD is not None:
        isolated._CHILD.kill()


def test_the_judge_child_gives_the_same_verdicts_as_judging_in_process(judge_child):
    carried = {"test_sparsity_penalty": b"garbage", "test_reconstruction": encode({"reconstructions": "Tensor"})}
    verdicts = judge_isolated("1_ae", carried, seed=1)
    assert isinstance(isolated._CHILD.process, isolated.ForkedChild if judge_child else subprocess.Popen)
    assert set(verdicts) == set(carried) and not any(v.passed for v in verdicts.values())
    assert "not a safetensors collection" in verdicts["test_sparsity_penalty"].message


def test_a_judge_past_its_wall_clock_fails_the_cells_with_the_limit_named():
    verdicts = judge_isolated("4_tsne", {"test_kl": b"x", "test_tsne": b"y"}, seed=1,
                              limits=JudgeLimits(wall_seconds=0.2))
    assert all("wall-clock limit" in v.message and not v.passed for v in verdicts.values()), verdicts


def test_a_judge_that_cannot_start_is_a_grading_fault_not_a_score(judge_child):
    # too little to import torch; a forked child already maps more, and must not judge as if out of memory
    child = JudgeProcess(JudgeLimits(memory_bytes=100 * 2**20))
    try:
        with pytest.raises(GradingFault):
            child.judge("1_ae", {"test_sparsity_penalty": b"x"}, 1, 120)
    finally:
        child.kill()


# --- the course config -----------------------------------------------------------------------------

def course_config(env: dict[str, str]) -> dict:
    """The settings nbgrader_config.py gives the autograde and HTML exporters, loaded as nbgrader loads it."""
    code = ("import json, sys\nfrom traitlets.config.loader import PyFileConfigLoader\n"
            "c = PyFileConfigLoader('nbgrader_config.py', path=sys.argv[1]).load_config()\n"
            "print(json.dumps({'steps': [s.__name__ for s in c.Autograde.autograde_preprocessors],"
            " 'html': list(c.HTMLExporter.preprocessors), 'sanitize': c.HTMLExporter.sanitize_html,"
            " 'sandboxed': c.SandboxedExecute.sandboxed, 'reason': c.RefuseToGrade.reason}))")
    result = subprocess.run([sys.executable, "-c", code, str(pipeline.REPO)], capture_output=True, text=True,
                            env=env, timeout=120, cwd=pipeline.REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_course_config_judges_sanitizes_and_renders_sanitized():
    settings = course_config(dict(os.environ, AECOURSE_SANDBOX="off"))
    steps = settings["steps"]
    assert steps[0] == "HandOutInputs" and "SandboxedExecute" in steps and "Execute" not in steps
    assert steps.index("JudgeCollected") < steps.index("SanitizeOutputs") < steps.index("SaveAutoGrades")
    assert settings["html"] == ["grader.sanitize.SanitizeOutputs"] and settings["sanitize"] is True
    assert settings["sandboxed"] is False and settings["reason"] == ""


def test_a_course_that_graded_sandboxed_refuses_to_grade_without_bubblewrap(tmp_path):
    """A real trigger: PATH without bwrap, in a course whose marker says it graded in the sandbox."""
    marker = pipeline.REPO / ".aecourse" / "sandboxed"
    existed = marker.exists()
    marker.parent.mkdir(exist_ok=True)
    marker.write_text("test")
    try:
        env = dict(os.environ, AECOURSE_SANDBOX="auto", PATH=str(Path(sys.executable).parent))
        settings = course_config(env)
        assert settings["steps"] == ["RefuseToGrade"] and "bwrap is not installed" in settings["reason"]
        assert course_config(dict(env, AECOURSE_SANDBOX="off"))["steps"][0] == "HandOutInputs"
    finally:
        if not existed:
            marker.unlink()

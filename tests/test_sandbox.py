"""The bubblewrap command that confines autograde kernels."""
from __future__ import annotations

from pathlib import Path

import pytest

from grader import sandbox


def test_course_and_home_are_hidden_and_only_the_grading_folder_is_writable(tmp_path):
    cwd = tmp_path / "course" / "autograded" / "alice" / "autoencoders"
    root = sandbox.course_root_of(cwd)
    assert root == tmp_path / "course"
    args = sandbox.bwrap_prefix(cwd, tmp_path / "runtime", root)
    tmpfs = {args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"}
    writable = {args[i + 1] for i, a in enumerate(args) if a == "--bind"}
    assert {str(root.resolve()), str(Path.home().resolve())} <= tmpfs
    assert writable == {str(cwd.resolve()), str((tmp_path / "runtime").resolve())}
    assert "--unshare-net" in args and args[args.index("--chdir") + 1] == str(cwd.resolve())
    assert args[:3] == ["bwrap", "--ro-bind", "/"] and args[-1] == "--"


def test_a_folder_outside_autograded_has_no_course_root(tmp_path):
    assert sandbox.course_root_of(tmp_path / "somewhere") is None


@pytest.mark.parametrize("value, expected", [("off", False), ("OFF", False)])
def test_sandbox_can_be_switched_off(monkeypatch, value, expected):
    monkeypatch.setenv(sandbox.SANDBOX_ENV, value)
    assert sandbox.sandbox_enabled() is expected


def test_required_sandbox_without_bwrap_is_an_error(monkeypatch):
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "on")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install bubblewrap"):
        sandbox.sandbox_enabled()


def test_unknown_mode_is_an_error(monkeypatch):
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "maybe")
    with pytest.raises(ValueError, match="on, off or auto"):
        sandbox.sandbox_mode()

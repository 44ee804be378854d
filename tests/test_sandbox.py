"""The bubblewrap command that confines autograde kernels."""
from __future__ import annotations

import shutil
import sys
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


VISIBLE_PROBE = r"""
import json, os, sys
roots = sys.argv[1:]
seen = []
for root in roots:
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if os.path.join(folder, f) not in (sys.prefix, sys.base_prefix)]  # public
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
                seen.append(path)
            except OSError:
                pass
modules = {}
for name in ("grader.collect.common", "grader.collect.ae", "grader.judge", "grader.reference", "grader.checks",
             "grader.variants", "grader.preprocessors", "grader.pipeline"):
    try:
        __import__(name)
        modules[name] = True
    except Exception:
        modules[name] = False
print(json.dumps({"files": seen, "modules": modules}))
"""


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_sandboxed_kernel_can_read_only_collection_code(tmp_path):
    """List what a sandboxed process can read of the grader, the repository, the course and home: nothing secret."""
    import json
    import subprocess

    course = tmp_path / "course"
    cwd = course / "autograded" / "alice" / "autoencoders"
    cwd.mkdir(parents=True)
    (course / "gradebook.db").write_text("secret")
    (course / ".aecourse_secret").write_text("secret")
    (course / "submitted" / "bob" / "autoencoders").mkdir(parents=True)
    (course / "submitted" / "bob" / "autoencoders" / "1_ae.ipynb").write_text("{}")
    shutil.copytree(sandbox.GRADER_DIR.parent / "source" / "autoencoders" / "aelib", cwd / "aelib")
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    repo = sandbox.GRADER_DIR.parent
    roots = [str(repo), str(course), str(Path.home())]
    command = sandbox.bwrap_prefix(cwd, runtime, course) + [sys.executable, "-c", VISIBLE_PROBE, *roots]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    grader_files = {Path(p).relative_to(repo) for p in seen["files"]
                    if Path(p).is_relative_to(sandbox.GRADER_DIR) and "__pycache__" not in p}
    expected = {Path("grader/__init__.py")} | {p.relative_to(repo) for p in (sandbox.GRADER_DIR / "collect").glob("*.py")}
    assert grader_files == expected, f"the kernel can read grader files beyond collection: {grader_files - expected}"
    outside = [p for p in seen["files"] if not Path(p).is_relative_to(sandbox.GRADER_DIR)
               and not Path(p).is_relative_to(cwd)]
    assert outside == [], f"the kernel can read files of the repository, the course or home: {outside[:10]}"
    assert seen["modules"] == {"grader.collect.common": True, "grader.collect.ae": True, "grader.judge": False,
                               "grader.reference": False, "grader.checks": False, "grader.variants": False,
                               "grader.preprocessors": False, "grader.pipeline": False}, seen["modules"]
    for path in expected:
        text = (repo / path).read_text()
        for secret in ("Figure(", "threshold=", ".threshold", "reference_"):
            assert secret not in text, f"{path} mentions {secret!r}: collection code must hold no judging material"


def test_collection_code_imports_nothing_that_judges():
    import ast

    for path in (sandbox.GRADER_DIR / "collect").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        grader_imports = {name for name in imported if name.startswith("grader")}
        assert all(name.startswith("grader.collect") for name in grader_imports), (path.name, grader_imports)

"""Run each autograde kernel inside a bubblewrap sandbox.

Student code runs with the grader's rights unless its kernel is confined. Inside the sandbox the
whole file system is read-only, the network is gone, and the course directory (gradebook with the
hidden tests, source notebooks, other students) and the home folder are hidden; only the student's
own grading folder is writable. Kernels talk to nbgrader over IPC sockets in Jupyter's runtime folder.

Selected with the environment variable AECOURSE_SANDBOX: `auto` (default: sandbox when `bwrap` is
installed), `on` (refuse to grade without it) or `off`.
"""
from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from nbgrader.preprocessors import Execute

SANDBOX_ENV = "AECOURSE_SANDBOX"
GRADER_DIR = Path(__file__).resolve().parent


def sandbox_mode() -> str:
    """`on`, `off` or `auto`, from AECOURSE_SANDBOX."""
    mode = os.environ.get(SANDBOX_ENV, "auto").strip().lower() or "auto"
    if mode not in {"on", "off", "auto"}:
        raise ValueError(f"{SANDBOX_ENV} must be on, off or auto, not {mode!r}")
    return mode


def sandbox_enabled() -> bool:
    """Whether autograde kernels run in bubblewrap (raises when it is required but missing)."""
    mode = sandbox_mode()
    if mode == "off":
        return False
    available = shutil.which("bwrap") is not None
    if mode == "on" and not available:
        raise RuntimeError(f"{SANDBOX_ENV}=on but bwrap is not installed: apt-get install bubblewrap")
    return available


def bwrap_prefix(cwd: Path, runtime_dir: Path, course_root: Path | None) -> list[str]:
    """The bwrap command line that confines a kernel to its grading folder `cwd`."""
    hidden = [Path.home(), Path("/tmp")] + ([course_root] if course_root else [])
    if (GRADER_DIR.parent / "source").is_dir():  # an editable install: the repository holds the solutions
        hidden.append(GRADER_DIR.parent)
    visible_ro = {Path(sys.prefix), Path(sys.base_prefix), GRADER_DIR}
    data_dir = os.environ.get("AUTOENCODERS_DATA_DIR")
    if data_dir:
        visible_ro.add(Path(data_dir).resolve())
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-net", "--die-with-parent", "--new-session"]
    for path in hidden:
        args += ["--tmpfs", str(path.resolve())]
    for path in sorted(visible_ro):
        if any(path.resolve().is_relative_to(h.resolve()) for h in hidden) and path.exists():
            args += ["--ro-bind", str(path.resolve()), str(path.resolve())]
    for device in sorted(Path("/dev").glob("nvidia*")):  # a GPU stays usable for the short training checks
        args += ["--dev-bind", str(device), str(device)]
    for path in (runtime_dir, cwd):
        args += ["--bind", str(path.resolve()), str(path.resolve())]
    args += ["--chdir", str(cwd.resolve()), "--setenv", "HOME", "/tmp",
             "--setenv", "MPLCONFIGDIR", "/tmp", "--setenv", "IPYTHONDIR", "/tmp/ipython", "--"]
    return args


def course_root_of(cwd: Path) -> Path | None:
    """The course directory above an autograde folder `<root>/autograded/<student>/<assignment>`."""
    parts = cwd.resolve().parts
    if len(parts) >= 4 and parts[-3] == "autograded":
        return Path(*parts[:-3])
    return None


def autograde_preprocessors() -> list[type]:
    """nbgrader's autograde preprocessors with Execute replaced by SandboxedExecute."""
    from nbgrader.converters import Autograde

    return [SandboxedExecute if step is Execute else step
            for step in Autograde.class_traits()["autograde_preprocessors"].default()]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside bubblewrap, talking over IPC sockets."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)

    async def _async_pre_start_kernel(self, **kw):
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True)
        name = f"kernel-sandbox-{uuid.uuid4()}"
        # Absolute paths, both in the one folder shared with the sandbox: the kernel runs elsewhere.
        self.connection_file = str(runtime / f"{name}.json")
        self.ip = str(runtime / f"{name}-ipc")
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        cwd = Path(kw.get("cwd") or os.getcwd())
        return bwrap_prefix(cwd, runtime, course_root_of(cwd)) + kernel_cmd, kw


class SandboxedExecute(Execute):
    """nbgrader's Execute preprocessor with every kernel in the sandbox."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)

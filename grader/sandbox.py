"""Run each autograde kernel inside a bubblewrap sandbox, with resource limits.

Student code runs with the grader's rights unless its kernel is confined. Inside the sandbox the
whole file system is read-only, the network, other processes and every capability are gone, and the
course directory (gradebook, source notebooks, other students, the grading secret), the home folder,
/tmp and the grader are hidden: of the grader only `grader/collect` (collection code) is visible.
Only the student's own grading folder and a small private /tmp are writable. Kernels talk to
nbgrader over IPC sockets in a runtime folder of their own.

Limits, per kernel: memory (address space, and a cgroup where the machine has one, which also counts
/tmp), processes (a cgroup; RLIMIT_NPROC when not root), file size, CPU time, open files; per cell:
output size; per submission: a wall-clock limit over all its notebooks and a disk quota on its
grading folder. A breach ends that kernel or cell, the affected cells fail with a message naming
the limit, and grading goes on.

Selected with the environment variable AECOURSE_SANDBOX: `auto` (default: sandbox when `bwrap` is
installed), `on` (refuse to grade without it) or `off`.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import zmq
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from grader.scratch import remove_scratch, usage

SANDBOX_ENV = "AECOURSE_SANDBOX"
GRADER_DIR = Path(__file__).resolve().parent
VISIBLE_GRADER = ("__init__.py", "collect")  # all of the grader a kernel may read
CGROUP_ROOT = Path("/sys/fs/cgroup")
SANDBOXED_MARKER = "sandboxed"
KERNEL_TIME_LOG = "kernel time of this notebook:"  # logged per notebook: kernel start, imports and cells
GiB, MiB = 2**30, 2**20


def sandbox_mode() -> str:
    """`on`, `off` or `auto`, from AECOURSE_SANDBOX."""
    mode = os.environ.get(SANDBOX_ENV, "auto").strip().lower() or "auto"
    if mode not in {"on", "off", "auto"}:
        raise ValueError(f"{SANDBOX_ENV} must be on, off or auto, not {mode!r}")
    return mode


def bwrap_problem() -> str:
    """Why bubblewrap cannot confine a kernel here, in words (empty when it can)."""
    found = shutil.which("bwrap")
    if found is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    if not (os.path.isfile(found) and os.access(found, os.X_OK)):
        return f"{found} is not an executable file"
    try:
        probe = subprocess.run([found, "--ro-bind", "/", "/", "--unshare-net", "--cap-drop", "ALL", "true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{found} does not run ({type(error).__name__}: {error})"
    if probe.returncode != 0:
        return f"{found} cannot create a sandbox here: {probe.stderr.strip()[-300:]}"
    return ""


def sandbox_state(course_root: Path | None = None) -> tuple[bool, str]:
    """Whether kernels run in bubblewrap, and why grading must be refused (empty when it may go on).

    `auto` sandboxes when bubblewrap works; once a course has graded sandboxed (a marker in its
    `.aecourse` folder) a broken or missing bubblewrap refuses grading instead of turning the sandbox off.
    """
    mode = sandbox_mode()
    if mode == "off":
        return False, ""
    problem = bwrap_problem()
    marker = Path(course_root) / ".aecourse" / SANDBOXED_MARKER if course_root else None
    if not problem:
        if marker is not None and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("This course grades its kernels in bubblewrap (AECOURSE_SANDBOX=off turns it off).\n")
        return True, ""
    if mode == "on":
        return False, f"{SANDBOX_ENV}=on but {problem}"
    if marker is not None and marker.exists():
        return False, (f"this course has graded in the sandbox before, but {problem}: fix bubblewrap, or set "
                       f"{SANDBOX_ENV}=off to grade unconfined on purpose")
    print(f"WARNING: grading kernels are NOT sandboxed: {problem}", file=sys.stderr)
    return False, ""


def sandbox_enabled(course_root: Path | None = None) -> bool:
    """Whether autograde kernels run in bubblewrap (raises when grading must be refused)."""
    enabled, refusal = sandbox_state(course_root)
    if refusal:
        raise RuntimeError(refusal)
    return enabled


def bwrap_prefix(cwd: Path, runtime_dir: Path, course_root: Path | None, tmp_bytes: int = 256 * MiB,
                 threads: int = 1, scratch: Path | None = None) -> list[str]:
    """The bwrap command line that confines a kernel to its grading folder `cwd`, backed by `scratch` when given.

    With a scratch folder the kernel sees it at the path `cwd` and writes only there: the real grading
    folder, where nbgrader writes the graded notebook, is hidden with the rest of the course.
    """
    hidden = [Path.home(), Path("/tmp"), GRADER_DIR] + ([course_root] if course_root else [])
    if (GRADER_DIR.parent / "source").is_dir():  # an editable install: the repository holds the solutions
        hidden.append(GRADER_DIR.parent)
    visible_ro = {Path(sys.prefix), Path(sys.base_prefix), *(GRADER_DIR / name for name in VISIBLE_GRADER)}
    data_dir = os.environ.get("AUTOENCODERS_DATA_DIR")
    if data_dir:
        visible_ro.add(Path(data_dir).resolve())
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session"]
    for path in sorted({p.resolve() for p in hidden}, key=lambda p: len(p.parts)):
        args += (["--size", str(tmp_bytes)] if path == Path("/tmp") else []) + ["--tmpfs", str(path)]
    for path in sorted(visible_ro):
        if any(path.resolve().is_relative_to(h.resolve()) for h in hidden) and path.exists():
            args += ["--ro-bind", str(path.resolve()), str(path.resolve())]
    for device in sorted(Path("/dev").glob("nvidia*")):  # a GPU stays usable for the short training checks
        args += ["--dev-bind", str(device), str(device)]
    args += ["--bind", str(runtime_dir.resolve()), str(runtime_dir.resolve())]
    args += ["--bind", str((scratch or cwd).resolve()), str(cwd.resolve())]
    args += ["--chdir", str(cwd.resolve()), "--setenv", "HOME", "/tmp",
             "--setenv", "MPLCONFIGDIR", "/tmp", "--setenv", "IPYTHONDIR", "/tmp/ipython",
             "--setenv", "OMP_NUM_THREADS", str(threads), "--setenv", "MKL_NUM_THREADS", str(threads),
             # the kernel is not its launcher's child inside the pid namespace: no parent polling
             "--unsetenv", "JPY_PARENT_PID", "--"]
    return args


def course_root_of(cwd: Path) -> Path | None:
    """The course directory above an autograde folder `<root>/autograded/<student>/<assignment>`."""
    parts = cwd.resolve().parts
    if len(parts) >= 4 and parts[-3] == "autograded":
        return Path(*parts[:-3])
    return None


# --- resource limits -----------------------------------------------------------------------------

class Cgroup:
    """A memory and a pids cgroup (v1 controllers, or one v2 group) for one kernel, where the machine allows it."""

    def __init__(self, name: str, memory_bytes: int, max_processes: int):
        self.folders: dict[str, Path] = {}
        v2 = CGROUP_ROOT / "cgroup.controllers"
        candidates = ({"unified": CGROUP_ROOT / "aecourse" / name} if v2.exists()
                      else {c: CGROUP_ROOT / c / "aecourse" / name for c in ("memory", "pids")})
        settings = {"memory": {"memory.limit_in_bytes": memory_bytes, "memory.memsw.limit_in_bytes": memory_bytes},
                    "pids": {"pids.max": max_processes},
                    "unified": {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": max_processes}}
        for controller, folder in candidates.items():
            try:
                if controller == "unified":
                    (CGROUP_ROOT / "aecourse").mkdir(exist_ok=True)
                    (CGROUP_ROOT / "aecourse" / "cgroup.subtree_control").write_text("+memory +pids")
                folder.mkdir(parents=True, exist_ok=True)
                for key, value in settings[controller].items():
                    if (folder / key).exists():
                        try:
                            (folder / key).write_text(str(value))
                        except OSError:
                            pass  # e.g. no swap accounting
                self.folders[controller] = folder
            except OSError:
                continue

    def join_command(self) -> list[str]:
        """A command prefix that moves itself into the cgroups, then runs the rest."""
        if not self.folders:
            return []
        files = " ".join(f"'{folder / 'cgroup.procs'}'" for folder in self.folders.values())
        return ["sh", "-c", f'for f in {files}; do echo $$ > "$f" || exit 97; done; exec "$@"', "aecourse-cgroup"]

    def memory_exceeded(self) -> bool:
        """Whether the kernel hit its memory limit."""
        for folder in self.folders.values():
            for name, marker in (("memory.oom_control", "oom_kill "), ("memory.events", "oom_kill ")):
                try:
                    for line in (folder / name).read_text().splitlines():
                        if line.startswith(marker) and int(line.split()[1]) > 0:
                            return True
                except (OSError, ValueError):
                    continue
            try:
                if int((folder / "memory.failcnt").read_text()) > 0:
                    return True
            except (OSError, ValueError):
                pass
        return False

    def remove(self) -> None:
        """Kill whatever is left in the cgroups and delete them."""
        for folder in self.folders.values():
            try:
                for pid in (folder / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
            except OSError:
                pass
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def rlimit_command(memory_bytes: int, max_processes: int, file_bytes: int, cpu_seconds: int) -> list[str]:
    """A `prlimit` prefix setting the kernel's rlimits (processes only when not root: root ignores them)."""
    args = ["prlimit", f"--as={memory_bytes}", f"--fsize={file_bytes}", f"--cpu={cpu_seconds}", "--core=0",
            "--nofile=1024"]
    if os.geteuid() != 0:
        args.append(f"--nproc={max_processes + len(os.listdir('/proc'))}")
    return args + ["--"]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside bubblewrap, with limits, talking over IPC sockets."""

    memory_limit = Integer(4 * GiB, help="Bytes of memory a grading kernel may use.").tag(config=True)
    max_processes = Integer(128, help="Processes and threads a grading kernel may run at once.").tag(config=True)
    file_size_limit = Integer(256 * MiB, help="Largest file a grading kernel may write, in bytes.").tag(config=True)
    cpu_time_limit = Integer(900, help="CPU seconds a grading kernel may use in all, per thread.").tag(config=True)
    tmp_size = Integer(256 * MiB, help="Size of the kernel's private /tmp, in bytes.").tag(config=True)
    threads = Integer(0, help="Torch/OpenMP threads per grading kernel; 0: one per core (one student at a time). "
                              "`aecourse autograde` sets cores // students graded at once.").tag(config=True)
    max_message_bytes = Integer(16 * MiB, help="Largest message the grader accepts from a kernel; a larger one "
                                               "is dropped before it is read into memory.").tag(config=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        self.cgroup: Cgroup | None = None
        self.private_runtime: Path | None = None
        self.scratch: Path | None = None  # the folder bound over the grading folder (grader/scratch.py)
        # Every socket of this manager and its clients drops oversized messages instead of reading them.
        self.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)

    def client(self, **kwargs):
        """A client on this manager's context, so that its sockets drop oversized messages too."""
        kwargs.setdefault("context", self.context)
        return super().client(**kwargs)

    async def _async_pre_start_kernel(self, **kw):
        name = f"aecourse-{uuid.uuid4()}"
        # A runtime folder of its own: the kernel cannot reach other kernels' sockets.
        self.private_runtime = Path(jupyter_runtime_dir()) / name
        self.private_runtime.mkdir(parents=True, mode=0o700)
        self.connection_file = str(self.private_runtime / "kernel.json")
        self.ip = str(self.private_runtime / "ipc")
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        cwd = Path(kw.get("cwd") or os.getcwd())
        self.cgroup = Cgroup(name, self.memory_limit, self.max_processes)
        threads = self.threads or os.cpu_count() or 1
        prefix = (self.cgroup.join_command()
                  + rlimit_command(self.memory_limit, self.max_processes, self.file_size_limit,
                                   self.cpu_time_limit * threads)
                  + bwrap_prefix(cwd, self.private_runtime, course_root_of(cwd), self.tmp_size, threads, self.scratch))
        return prefix + kernel_cmd, kw

    def breach(self) -> str:
        """Which limit ended the kernel, in words (empty when none is known)."""
        code = getattr(getattr(self.provisioner, "process", None), "returncode", None)
        if self.cgroup and self.cgroup.memory_exceeded():
            return f"the memory limit ({self.memory_limit / GiB:g} GiB)"
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return f"the CPU time limit ({self.cpu_time_limit} s)"
        if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return f"the file size limit ({self.file_size_limit / MiB:g} MiB)"
        if code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            return "exit status -9 (killed)"
        return "" if code is None else f"exit status {code}"

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self.cgroup:
            self.cgroup.remove()
        if self.private_runtime:
            shutil.rmtree(self.private_runtime, ignore_errors=True)


_SUBMISSION_STARTED: dict[str, float] = {}
OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error", "update_display_data"}


class SandboxedExecute(Execute):
    """nbgrader's Execute with the kernel in its scratch folder (sandboxed when asked), a per-submission deadline
    and capped outputs, files and folders."""

    sandboxed = Bool(True, help="Run the kernel in bubblewrap (grader/sandbox.py); off: only its scratch "
                                "folder and the limits of this class remain.").tag(config=True)
    submission_timeout = Integer(600, help="Wall-clock seconds for all notebooks of one submission.").tag(config=True)
    disk_limit = Integer(1 * GiB, help="Bytes a kernel's scratch folder may grow to.").tag(config=True)
    entry_limit = Integer(20_000, help="Files and folders a kernel's scratch folder may hold.").tag(config=True)
    output_limit = Integer(2 * MiB, help="Bytes of output kept per cell; the rest is dropped.").tag(config=True)
    notebook_output_limit = Integer(16 * MiB, help="Bytes of output kept per notebook; the rest is dropped."
                                    ).tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_manager_class = SandboxedKernelManager if self.sandboxed else AsyncKernelManager
        # Widgets keep state and outputs of their own, outside every output limit: none is kept.
        self.store_widget_state = False
        self.stopped = ""
        self.folder: Path | None = None
        self.deadline = 0.0
        self._output_bytes: dict[int, int] = {}
        self._notebook_bytes = 0
        self.timed_out = 0

    def preprocess(self, nb, resources=None, km=None):
        self.stopped = ""
        self._output_bytes, self._notebook_bytes = {}, 0
        grading = resources["metadata"]["path"]
        self.folder = Path(resources["aecourse_scratch"])
        student = resources.get("nbgrader", {}).get("student", "")
        started = _SUBMISSION_STARTED.setdefault(student, time.time())
        self.deadline = started + self.submission_timeout
        if not self.sandboxed:  # unconfined, the kernel runs in the scratch folder's own path
            resources["metadata"]["path"] = str(self.folder)
        began = time.monotonic()
        try:
            return super().preprocess(nb, resources, km)
        except BaseException:
            remove_scratch(self.folder)
            raise
        finally:
            resources["metadata"]["path"] = grading
            self.log.info("aecourse: %s %.2f s", KERNEL_TIME_LOG, time.monotonic() - began)

    def create_kernel_manager(self):
        """nbclient's kernel manager, told which scratch folder to bind over the grading folder."""
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            km.scratch = self.folder
        return km

    def deadline_message(self) -> str:
        """What the feedback says when the submission's wall-clock limit is reached."""
        return f"the wall-clock limit of this submission ({self.submission_timeout} s for all its notebooks) was reached"

    def _get_timeout(self, cell) -> int:
        """The cell timeout, cut short by the submission's deadline."""
        timeout = super()._get_timeout(cell)
        left = max(1, int(self.deadline - time.time()))
        return left if timeout is None or timeout < 0 else min(timeout, left)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if not self.stopped and time.time() >= self.deadline:
            self.stopped = self.deadline_message()
        if self.stopped:
            cell.outputs = [not_run(f"Not run: {self.stopped}.")]
            return cell
        watchdog = asyncio.ensure_future(self._watch_disk())
        self.timed_out = 0
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            if self.timed_out:
                await self._stop_after_timeout(cell)
            return cell
        except CellTimeoutError:  # the kernel ignored the interrupt and never went idle
            await self._stop_after_timeout(cell)
            return cell
        except DeadKernelError:
            self.stopped = self.stopped or self._death_reason()
            cell.outputs.append(not_run(f"The kernel stopped while running this cell: {self.stopped}."))
            return cell
        finally:
            watchdog.cancel()
            if not self.stopped and time.time() >= self.deadline:
                self.stopped = self.deadline_message()

    execute_cell = run_sync(async_execute_cell)

    async def _stop_after_timeout(self, cell) -> None:
        """Stop a kernel that ran past its time: it may ignore interrupts, and waiting again on every cell costs more."""
        over = time.time() >= self.deadline - 1
        self.stopped = (self.deadline_message() if over else f"a cell ran longer than the per-cell limit of {self.timed_out or self.timeout} s")
        cell.outputs.append(not_run(f"Stopped: {self.stopped}."))
        await self.km.shutdown_kernel(now=True)

    async def _async_handle_timeout(self, timeout, cell=None):
        self.timed_out = timeout
        return await super()._async_handle_timeout(timeout, cell)  # nbclient binds its own coroutine here: rebind to ours

    def _death_reason(self) -> str:
        """Why the kernel died, as precisely as the kernel manager can tell."""
        breach = self.km.breach() if isinstance(self.km, SandboxedKernelManager) else ""
        if breach.startswith("exit status"):
            return f"the kernel exited ({breach})"
        return f"it hit {breach}" if breach else "the kernel exited"

    async def _watch_disk(self) -> None:
        """Kill the kernel when its scratch folder outgrows the disk quota, in bytes or in files and folders."""
        while self.folder is not None:
            await asyncio.sleep(0.5)
            size, entries = usage(self.folder, self.entry_limit)
            if size > self.disk_limit or entries > self.entry_limit:
                self.stopped = (f"it hit the disk limit ({self.disk_limit / 1e6:.0f} MB and {self.entry_limit:,} "
                                "files and folders for the grading folder)")
                self.log.warning("disk limit reached in %s: killing the kernel", self.folder)
                await self.km.shutdown_kernel(now=True)
                return

    def process_message(self, msg, cell, cell_index):
        """nbclient's handling of a kernel message, with widget messages ignored and every output counted."""
        kind = msg.get("msg_type", "")
        if kind.startswith("comm"):
            return None
        if kind in OUTPUT_MESSAGES and not self._within_limits(msg, cell, cell_index):
            return None
        return super().process_message(msg, cell, cell_index)

    def _within_limits(self, msg, cell, cell_index) -> bool:
        """Count one output message (new or an update of an earlier display) against the cell's and notebook's limits."""
        content = msg.get("content", {})
        display_id = (content.get("transient") or {}).get("display_id") if isinstance(content, dict) else None
        # an update rewrites every earlier output that shares its display id: it costs its size that many times
        copies = sum(map(len, self._display_id_map.get(display_id, {}).values())) if display_id else 0
        size = len(str(content)) * (copies + (msg.get("msg_type") != "update_display_data"))
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        self._notebook_bytes += size
        if used + size <= self.output_limit and self._notebook_bytes <= self.notebook_output_limit:
            return True
        if used <= self.output_limit:
            limit = (f"{self.output_limit / MiB:g} MiB for this cell" if used + size > self.output_limit
                     else f"{self.notebook_output_limit / MiB:g} MiB for the notebook")
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout",
                                             text=f"\n... output beyond {limit} dropped ...\n"))
            self._output_bytes[cell_index] = self.output_limit + 1
        return False


def not_run(message: str) -> NotebookNode:
    """An error output saying why a cell did not (fully) run."""
    return NotebookNode(output_type="error", ename="GradingLimit", evalue=message, traceback=[message])

"""Real Dask processes for the tests, as a TA starts them: a `dask scheduler` and `dask worker`s.

Each process runs in a session of its own, so a test can kill a whole worker (its nanny and its worker
process) as a lost machine would be lost.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DASK = str(Path(sys.executable).parent / "dask")


class DaskProcesses:
    """A `dask scheduler` on loopback; `add_worker` starts workers for it; all are stopped on exit."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.folder = Path(tempfile.mkdtemp(prefix="aecourse-dask-"))
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def start(self, command: list[str]) -> subprocess.Popen:
        """Start one process of the cluster in a session of its own."""
        process = subprocess.Popen(command, env=self.env, cwd=self.folder, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def __enter__(self) -> "DaskProcesses":
        address_file = self.folder / "scheduler.json"
        self.start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(address_file)])
        for _ in range(600):
            if address_file.exists() and address_file.stat().st_size:
                self.address = json.loads(address_file.read_text())["address"]
                return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the dask scheduler did not start within a minute")

    def add_worker(self, wrapper: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start a one-thread `dask worker` (run by `wrapper`, e.g. a bwrap command line, when given)."""
        return self.start([*wrapper, DASK, "worker", self.address, "--nthreads", "1", "--no-dashboard"])

    def wait_for_workers(self, count: int) -> None:
        """Wait until `count` workers are connected to the scheduler."""
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(count, timeout=120)

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """Kill a process of the cluster and everything in its session, as a lost machine is lost."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def grading_processes(root: Path) -> list[str]:
    """Command lines of the processes still grading in the course `root` (nbgrader, bwrap, kernels)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["pid"] != os.getpid() and (str(root) in command
                                                   or (process.info["cwd"] or "").startswith(str(root))):
            found.append(command)
    return found


def wait_until_no_grading(root: Path, seconds: float = 20) -> list[str]:
    """The grading processes of `root` left after waiting up to `seconds` for them to end."""
    deadline = time.time() + seconds
    while (left := grading_processes(root)) and time.time() < deadline:
        time.sleep(0.2)
    return left

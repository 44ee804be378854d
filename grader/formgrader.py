"""nbgrader's formgrader on a course directory: a local Jupyter Server with the formgrader extension, for a TA."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from grader import pipeline

HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # seconds for the server to answer with the formgrader loaded
STOP_TIMEOUT = 15.0   # seconds for the server to shut down on SIGTERM before it is killed
# The TA's extension of nbgrader 0.9 (a module with `_load_jupyter_server_extension`). The others nbgrader
# installs (assignment_list, course_list, validate_assignment) serve students and are left as configured.
EXTENSION = "nbgrader.server_extensions.formgrader"


@dataclass
class Formgrader:
    """A running formgrader server: its process, address and token. Stop it with `stop()` or a `with` block."""
    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
    _log: object = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        """The server's address, without a path or token."""
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The formgrader's start page with the token, to open in a browser."""
        return self.page("/formgrader")

    def page(self, path: str) -> str:
        """The address of `path` on this server (e.g. "/formgrader/manage_assignments") with the token."""
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{separator}token={self.token}"

    def api(self, path: str, timeout: float = 10.0):
        """GET `path` (e.g. "/formgrader/api/assignments") with the token, returning the decoded JSON."""
        request = urllib.request.Request(f"{self.base_url}/{path.lstrip('/')}",
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode())

    def log_tail(self, characters: int = 4000) -> str:
        """The end of the server's log (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Shut the server down (SIGTERM to its process group, SIGKILL if it lingers) and remove its log."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        # Kernels or terminals the server started share its process group: none may outlive it.
        _signal_group(self.process, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Formgrader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send `signum` to the process group the server leads (it was started in its own session)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_command(root: Path, port: int, token: str, db_url: str | None = None) -> list[str]:
    """The Jupyter Server command line that serves the formgrader of the course `root`."""
    command = [
        sys.executable, "-m", "jupyter_server",
        "--no-browser",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the port asked for or a failure, never another one silently
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.jpserver_extensions={EXTENSION}=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root, which Jupyter Server refuses by default
    if db_url:
        command.append(f"--CourseDirectory.db_url={db_url}")
    return command


def start_formgrader(root: Path, port: int = 0, db_url: str | None = None,
                     timeout: float = START_TIMEOUT) -> Formgrader:
    """Start the formgrader of the course directory `root` on loopback and wait until it answers.

    `port` 0 picks a free port; `db_url` (e.g. a PostgreSQL URL) replaces the course's SQLite gradebook.
    The server runs in `root` (whose nbgrader_config.py sets CourseDirectory.root) with a fresh token.
    Raises RuntimeError, with the end of the server's log, if it exits or does not answer within `timeout`.
    """
    root = Path(root).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise FileNotFoundError(f"{root} is not a course directory: it has no nbgrader_config.py")
    port = port or free_port()
    token = secrets.token_hex(24)
    handle, log_name = tempfile.mkstemp(prefix="formgrader-", suffix=".log")
    log = os.fdopen(handle, "w")
    try:
        process = subprocess.Popen(server_command(root, port, token, db_url), cwd=root, env=pipeline.grading_env(),
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    except BaseException:
        log.close()
        os.unlink(log_name)
        raise
    server = Formgrader(root, port, token, process, Path(log_name), log)
    try:
        _wait_until_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: Formgrader, timeout: float) -> None:
    """Poll the formgrader's status API until it answers, the process exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if not server.running():
            raise RuntimeError(f"the formgrader server exited with status {server.process.returncode} while "
                               f"starting:\n{server.log_tail()}")
        try:
            if server.api("/formgrader/api/status", timeout=5).get("status"):
                return
            last_error = "status API answered without status"
        except urllib.error.HTTPError as error:  # 404: server up, formgrader extension not loaded (yet)
            last_error = f"HTTP {error.code} from /formgrader/api/status"
        except (OSError, ValueError) as error:
            last_error = str(error)
        time.sleep(0.25)
    raise RuntimeError(f"the formgrader did not answer on {server.base_url} within {timeout:g} s "
                       f"({last_error}); server log:\n{server.log_tail()}")


def serve(root: Path, port: int = 0, db_url: str | None = None) -> int:
    """Run the formgrader of the course `root` until Ctrl-C (or SIGTERM), printing the address to open.

    Returns 0 when stopped by Ctrl-C, nonzero when the server could not start or exited by itself.
    """
    try:
        server = start_formgrader(root, port, db_url)
    except (RuntimeError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # start_formgrader has stopped the half-started server
        return 130
    previous = None
    try:
        try:  # SIGTERM (a closed session, `kill`) stops the server too, like Ctrl-C
            previous = signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # not the main thread: Ctrl-C only
            pass
        print(f"formgrader of {server.root} at\n    {server.url}\n(Ctrl-C to stop)", flush=True)
        status = server.process.wait()
        print(f"the formgrader server exited with status {status}:\n{server.log_tail()}", file=sys.stderr)
        return status or 1
    except KeyboardInterrupt:
        print("stopping the formgrader", flush=True)
        return 0
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt

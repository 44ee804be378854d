"""A warm grading process: nbgrader, the grader and torch imported once, one forked child per student.

Starting `nbgrader autograde` afresh for every student costs seconds of imports (nbgrader and its
server extensions, the grader, torch for the judges) before any grading. A `WarmGrader` starts
`python -m grader.warm` once (per thread of a Dask worker) and asks it, over a Unix socket, to fork
a child per student that runs nbgrader's own command line, exactly as the fresh process would:

- the child starts a session of its own, dies with the warm process (which dies with the thread
  that started it: `setpriv --pdeathsig`), and gets the request's working folder, environment,
  argument list and file descriptors (stdout, stderr, the student's lock), all sent over the socket;
- the warm process never grades, runs a kernel or touches a gradebook itself: nothing of one student
  can reach the next one, whose child is forked from the same untouched state;
- it reports each child's pid at once and its exit status when it ends, so the caller waits, kills
  (`pipeline.kill_tree`) and reads exit codes as it would for a `subprocess.Popen`.
"""
from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

PRELOAD = ("grader.nbgrader_cli", "nbgrader.apps.autogradeapp", "nbgrader.apps.generatefeedbackapp", "nbgrader.api",
           "grader.preprocessors", "grader.feedback", "grader.sandbox", "nbclient", "jupyter_client", "ipykernel",
           "sklearn.manifold")  # the last for a judge (grader/judge/tsne.py), which imports it when it runs
PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 1 << 20


class WarmGraderDied(RuntimeError):
    """The warm grading process ended while a child of it was grading (a grading fault, not the student's)."""


def preload() -> None:
    """Import everything nbgrader's autograde imports, the judges (torch) included, before any fork."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    from grader.checks import MODULES
    from grader.judge import judges_of

    for notebook in MODULES:
        judges_of(notebook)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def send(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    """One JSON message (with file descriptors) on the socket."""
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """The next message and the file descriptors sent with it; (None, []) when the other end is gone."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, max_fds)
    return (json.loads(data) if data else None), fds


# --- the warm process ----------------------------------------------------------------------------

def serve(sock: socket.socket) -> None:
    """Fork a child per request and report its pid, then its exit status; return when the caller is gone."""
    parent = os.getpid()
    while True:
        request, fds = receive(sock, max_fds=3)
        if request is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request, fds, sock, parent)
        for fd in fds:
            os.close(fd)
        send(sock, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def run_child(request: dict, fds: list[int], sock: socket.socket, parent: int) -> None:
    """In the forked child: become the requested nbgrader process, run it, and exit with its status."""
    code = 1
    try:
        os.setsid()
        die_with_parent()
        if os.getppid() != parent:  # the warm process died before the line above
            os._exit(1)
        sock.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stdout, stderr, *kept = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        for fd in (devnull, stdout, stderr):
            os.close(fd)
        os.set_inheritable(1, True)
        os.set_inheritable(2, True)
        for fd in kept:
            os.set_inheritable(fd, True)  # the student's lock, held for this process's lifetime
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        reseed()
        from grader.judge import isolated

        isolated.FORK = True
        sys.argv = ["nbgrader", *request["args"]]
        code = run_nbgrader()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def run_nbgrader() -> int:
    """nbgrader's command line on `sys.argv`; its exit status, after the exit handlers a fresh process runs."""
    from grader.nbgrader_cli import main

    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if not isinstance(exit.code, int) and exit.code is not None:
            print(exit.code, file=sys.stderr)
    atexit._run_exitfuncs()
    return code


def reseed() -> None:
    """Give the child its own random state (a fork copies the warm process's)."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def main() -> None:
    """`python -m grader.warm FD`: import everything, then serve fork requests on the socket FD."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller stops children itself (a Ctrl-C reaches the group)
    sock = socket.socket(fileno=int(sys.argv[1]))
    preload()
    send(sock, {"ready": os.getpid()})
    serve(sock)


# --- the caller's side ---------------------------------------------------------------------------

class WarmChild:
    """A child of the warm process, waited on like a `subprocess.Popen`."""

    def __init__(self, grader: "WarmGrader", pid: int):
        self.grader = grader
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status; subprocess.TimeoutExpired when it is still running after `timeout` seconds."""
        if self.returncode is None:
            self.returncode = self.grader.exit_code(self.pid, timeout)
        return self.returncode


class WarmGrader:
    """The caller's handle on one warm process; one child at a time."""

    def __init__(self, wrap: Callable[[list[str]], list[str]] = list, env: dict[str, str] | None = None):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one message per read
        self.sock = ours
        self.process = subprocess.Popen(wrap([sys.executable, "-m", "grader.warm", str(theirs.fileno())]),
                                        pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
        theirs.close()
        ready, _ = receive(self.sock)
        if not ready or "ready" not in ready:
            self.close()
            raise WarmGraderDied(f"the warm grading process did not start (exit status {self.process.wait()})")

    def alive(self) -> bool:
        """Whether the warm process can take a request."""
        return self.process.poll() is None

    def start(self, args: list[str], cwd: Path, env: dict[str, str], stdout: int, stderr: int,
              pass_fds: tuple[int, ...] = ()) -> WarmChild:
        """Fork a child running `nbgrader ARGS` in `cwd` with `env`, its output to the descriptors given."""
        try:
            send(self.sock, {"args": list(args), "cwd": str(cwd), "env": dict(env)}, [stdout, stderr, *pass_fds])
            reply, _ = receive(self.sock)
        except OSError as error:
            raise WarmGraderDied(f"the warm grading process is gone ({error})") from None
        if not reply or "pid" not in reply:
            raise WarmGraderDied("the warm grading process ended before it started the grading")
        return WarmChild(self, reply["pid"])

    def exit_code(self, pid: int, timeout: float | None) -> int:
        """The exit status of child `pid`, waiting at most `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            reply, _ = receive(self.sock)
        except (socket.timeout, TimeoutError):
            raise subprocess.TimeoutExpired(f"nbgrader (pid {pid})", timeout) from None
        finally:
            self.sock.settimeout(None)
        if not reply or reply.get("exited") != pid:
            self.close()
            raise WarmGraderDied(f"the warm grading process ended while nbgrader (pid {pid}) was grading")
        return int(reply["code"])

    def close(self) -> None:
        """End the warm process."""
        self.sock.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


_LOCAL = threading.local()


def code_state() -> tuple:
    """What the grader's code on disk is now (each file's path, size and modification time)."""
    folder = Path(__file__).resolve().parent
    return tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(folder.rglob("*.py")))


def warm_grader(wrap: Callable[[list[str]], list[str]] = list, env: dict[str, str] | None = None) -> WarmGrader:
    """This thread's warm process, started (with `env`) when there is none, it died, or the grader's code changed
    since it imported it (a long-lived cluster worker whose package was updated must not grade with the old)."""
    grader, state = getattr(_LOCAL, "grader", None), code_state()
    if grader is None or not grader.alive() or getattr(_LOCAL, "state", None) != state:
        if grader is not None:
            grader.close()
        grader = _LOCAL.grader = WarmGrader(wrap, env)
        _LOCAL.state = state
    return grader


if __name__ == "__main__":
    main()

"""Judging in a bounded child process: a parser or judge that runs away costs its cells, never the batch.

`JudgeCollected` hands the raw collections of one notebook (bytes carried out of the kernel's scratch
folder) to a child process (`python -m grader.judge.isolated`), which decodes and judges them cell by
cell under a memory limit (address space) and a CPU-time limit per notebook, and reports each verdict
as it is decided; the parent enforces a wall-clock limit. When the child dies or runs out of time, the
cell it was judging fails with a message naming the limit, and a fresh child judges the cells after it.
One child serves every notebook an nbgrader process grades; it is started before the kernel runs
(`prestart`), so its imports overlap the kernel's work instead of adding to it.
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

from grader.faults import GradingFault
from grader.judge.carry import Verdict

MARK, DONE = "AECOURSE-VERDICT ", "AECOURSE-DONE"
GiB = 2**30


@dataclass(frozen=True)
class JudgeLimits:
    """Limits of the child process that judges one notebook."""
    memory_bytes: int = 4 * GiB
    cpu_seconds: int = 300
    wall_seconds: int = 600


class ForkedChild:
    """A judge child forked from this process (which has imported torch and the judges), held like a Popen."""

    def __init__(self, limits: JudgeLimits):
        requests, self_in = os.pipe()
        self_out, verdicts = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.setsid()
                from grader.warm import die_with_parent

                die_with_parent()
                os.dup2(requests, 0)
                os.dup2(verdicts, 1)
                for fd in (requests, verdicts, self_in, self_out):
                    os.close(fd)
                if address_space() >= limits.memory_bytes:  # as a fresh child that could not import: a fault
                    print(f"the judge's memory limit ({limits.memory_bytes} bytes) is below what its process "
                          f"already maps ({address_space()} bytes)", file=sys.stderr)
                    os._exit(1)
                resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                sys.stdin = open(0, "r", closefd=False)
                serve(limits.cpu_seconds)
                code = 0
            except BaseException:  # as a fresh child's uncaught exception: exit status 1
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(requests)
        os.close(verdicts)
        self.stdin = os.fdopen(self_in, "wb")
        self.stdout = os.fdopen(self_out, "rb", buffering=0)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        """Its exit status, once it ended."""
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


def address_space() -> int:
    """Bytes of address space this process maps (what RLIMIT_AS limits)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


FORK = False  # set by grader/warm.py in the processes it forks: torch and the judges are already imported


class JudgeProcess:
    """A child process that judges requests one at a time under the limits it was started with."""

    def __init__(self, limits: JudgeLimits):
        self.limits = limits
        self.faults: dict[str, str] = {}  # grade_id: the grading fault that kept it from a verdict
        if FORK:  # the imports are done: a fork starts at once instead of importing torch again
            self.process = ForkedChild(limits)
            return
        command = ["prlimit", f"--as={limits.memory_bytes}", "--core=0", "--", sys.executable, "-m",
                   "grader.judge.isolated", str(limits.cpu_seconds)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        start_new_session=True)

    def alive(self) -> bool:
        """Whether the child can take another request."""
        return self.process.poll() is None

    def judge(self, notebook: str, carried: dict[str, bytes | str], seed: int,
              seconds: float) -> tuple[dict[str, Verdict], str]:
        """Verdicts the child gave for `carried`, and which limit stopped it (empty when it finished); the cells
        it could not judge through the grading side's fault are in `self.faults`."""
        request = pickle.dumps({"notebook": notebook, "carried": carried, "seed": seed})
        try:
            self.process.stdin.write(struct.pack("<Q", len(request)) + request)
            self.process.stdin.flush()
        except OSError:
            return {}, self.stop_reason()
        verdicts, deadline, buffer = {}, time.monotonic() + seconds, b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                self.kill()
                return verdicts, f"the judge's wall-clock limit ({self.limits.wall_seconds} s for the notebook)"
            chunk = os.read(self.process.stdout.fileno(), 2**16)
            if not chunk:
                return verdicts, self.stop_reason()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in map(bytes.decode, lines):
                if line == DONE:
                    return verdicts, ""
                if line.startswith(MARK):
                    entry = json.loads(line[len(MARK):])
                    if entry.get("fault"):
                        self.faults[entry["grade_id"]] = str(entry["fault"])
                    else:
                        verdicts[entry["grade_id"]] = Verdict(bool(entry["passed"]), str(entry["message"]),
                                                              tuple(entry["figures"]), tuple(entry["pictures"]))

    def stop_reason(self) -> str:
        """The limit that ended the child, in words; GradingFault when it ended for another reason."""
        code = self.process.wait()
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return f"the judge's CPU time limit ({self.limits.cpu_seconds} s)"
        if code == MEMORY_EXIT:
            return f"the judge's memory limit ({self.limits.memory_bytes / GiB:g} GiB)"
        raise GradingFault(f"the judge's process failed (exit status {code}): its error is in the log above")

    def kill(self) -> None:
        """End the child and everything it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


MEMORY_EXIT = 86
_CHILD: JudgeProcess | None = None


def prestart(limits: JudgeLimits = JudgeLimits()) -> None:
    """Start this process's judge child now (it imports torch and the judges while the kernel runs)."""
    global _CHILD
    if _CHILD is None or not _CHILD.alive() or _CHILD.limits != limits:
        if _CHILD is not None:
            _CHILD.kill()
        _CHILD = JudgeProcess(limits)


def judge_isolated(notebook: str, carried: dict[str, bytes | str], seed: int,
                   limits: JudgeLimits = JudgeLimits()) -> dict[str, Verdict]:
    """Verdicts for the cells of `notebook` from their carried-out collections, judged in bounded child processes;
    GradingFault naming every cell the grading side failed to judge."""
    deadline = time.monotonic() + limits.wall_seconds
    verdicts: dict[str, Verdict] = {}
    faults: dict[str, str] = {}
    pending = list(carried)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            message = f"the judge's wall-clock limit ({limits.wall_seconds} s for the notebook)"
            verdicts.update({g: limit_verdict(message) for g in pending})
            break
        prestart(limits)
        _CHILD.faults = {}
        decided, breach = _CHILD.judge(notebook, {g: carried[g] for g in pending}, seed, left)
        verdicts.update(decided)
        faults.update(_CHILD.faults)
        pending = [g for g in pending if g not in verdicts and g not in faults]
        if pending:  # the child stopped while judging the first pending cell
            verdicts[pending.pop(0)] = limit_verdict(breach)
    if faults:
        raise GradingFault("; ".join(f"{grade_id}: {cause}" for grade_id, cause in faults.items()))
    return verdicts


def limit_verdict(limit: str) -> Verdict:
    """The failed verdict of a cell whose judging hit a limit."""
    return Verdict(False, f"Judging the results collected for this cell hit {limit}: they earn no points. "
                          "Results that large or that slow to check come from code that does not do what the task asks.")


def serve(cpu_seconds: int) -> None:
    """The child: judge each request on stdin cell by cell, one marked JSON line on stdout per verdict."""
    import torch

    from grader.collect.common import Inputs
    from grader.judge import judges_of
    from grader.judge.common import judge_collection

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a judge prints goes to stderr, never into the verdict stream
    torch.set_num_threads(1)
    stdin = sys.stdin.buffer
    while len(header := stdin.read(8)) == 8:
        request = pickle.loads(stdin.read(struct.unpack("<Q", header)[0]))  # from our parent, never a student
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime) + cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))  # this notebook's
        judges, inputs = judges_of(request["notebook"]), Inputs(int(request["seed"]))
        for grade_id, carried in request["carried"].items():
            try:
                if grade_id not in judges:
                    raise GradingFault(f"the grader has no judge for cell {grade_id!r} of {request['notebook']}")
                verdict = judge_collection(judges[grade_id], carried, inputs)
            except GradingFault as fault:
                out.write(MARK + json.dumps({"grade_id": grade_id, "fault": str(fault)}) + "\n")
                out.flush()
                continue
            if verdict.message.startswith(OUT_OF_MEMORY):
                os._exit(MEMORY_EXIT)  # a fresh child judges the next cells with all its memory
            out.write(MARK + json.dumps({"grade_id": grade_id, "passed": verdict.passed, "message": verdict.message,
                                         "figures": verdict.figures, "pictures": verdict.pictures}) + "\n")
            out.flush()
        out.write(DONE + "\n")
        out.flush()


OUT_OF_MEMORY = "Judging this cell ran out of memory"

if __name__ == "__main__":
    serve(int(sys.argv[1]))

"""Grading faults: failures of the grading side, which are reported and retried, never scored.

A student's code raising, a missing or malformed collection and a limit hit are the student's and
cost points. Data or grader missing in the kernel or the judge, a judge that raises on its own, a
judge process that dies, bubblewrap missing where a course requires it, a worker lost or a grading
process killed by the machinery are the grading side's: the student gets no score for that run
(`pipeline.autograde` removes the submission from the gradebook), the fault is listed with its cause
at the end of `aecourse autograde`, the command exits non-zero and the next run grades the student again.

nbgrader's process reports the faults it finds by appending lines to the file named in
`FAULT_FILE_ENV`, which `pipeline.autograde` creates in the TA's temporary folder for each student:
a channel the kernel cannot write (its stderr, which nbgrader's process shares, could forge a line).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FAULT_FILE_ENV = "AECOURSE_FAULT_FILE"
MAX_FAULT_FILE = 2**20


class GradingFault(RuntimeError):
    """The grading side failed (not the submission): no score may be recorded for this run."""


def report_fault(cause: str) -> None:
    """Note a grading fault for the `pipeline.autograde` that started this nbgrader process (if one did)."""
    path = os.environ.get(FAULT_FILE_ENV)
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps(str(cause)[:2000]) + "\n")


def read_faults(path: Path) -> list[str]:
    """The causes reported in a fault file, oldest first (none when it is missing)."""
    try:
        with open(path, "rb") as handle:
            lines = handle.read(MAX_FAULT_FILE).decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [str(json.loads(line)) for line in lines if line.strip()]

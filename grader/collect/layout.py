"""Where a kernel finds its inputs and leaves its collections, relative to its grading folder.

Shared by the kernel (grader/collect/) and the TA's process (grader/judge/carry.py, which carries the
collections out); torch-free, so nbgrader's own process can import it cheaply.
"""
from __future__ import annotations

GRADING_DIR = ".aecourse"              # in the kernel's working folder (the student's grading folder)
INPUTS_FILE = "inputs.json"            # written by the TA's process before the kernel starts
COLLECTED_DIR = "collected"            # one <grade_id>.safetensors per grade cell, read back by the TA's process
SUFFIX = ".safetensors"                # the format of grader/collect/record.py


def collected_relative(grade_id: str) -> str:
    """Where the collection of grade cell `grade_id` is stored, relative to the grading folder."""
    return f"{GRADING_DIR}/{COLLECTED_DIR}/{grade_id}{SUFFIX}"

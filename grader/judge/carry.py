"""What crosses back from a kernel's scratch folder, and what the judges give back.

The TA's nbgrader process carries out only the collections (grader/collect/layout.py), through the
hardened reader of grader/scratch.py; the judges turn them into `Verdict`s in a child process
(grader/judge/isolated.py). No torch here: nbgrader's own process imports this for every student,
and torch's import would cost each of them about 1.5 s.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from grader.collect.layout import collected_relative
from grader.scratch import UnsafeFile, read_regular_file

MAX_COLLECTED_BYTES = 128 * 2**20
# How every verdict's text starts in a graded notebook: grader/preprocessors.py writes it, grader/report.py finds it.
VERDICT_PREFIX = "Graded by the course's grader:"

NO_RESULTS = ("No results were collected for this cell: its hidden tests did not run to the end (an error in an "
              "earlier line of the cell, a kernel that stopped, or a resource limit). Run the whole notebook from "
              "the top (Kernel > Restart & Run All) and fix the first error you see.")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one grade cell, decided in the TA's process: the figures measured (grader/judge/results.py,
    as plain dicts) and PNG pictures of the student's results (base64) come with it."""
    passed: bool
    message: str
    figures: tuple[dict, ...] = ()
    pictures: tuple[str, ...] = ()


def carry_out(folder: Path, grade_id: str, max_bytes: int = MAX_COLLECTED_BYTES) -> bytes | str:
    """The raw bytes a kernel collected for `grade_id` in `folder`, or why they were not read (a message)."""
    try:
        return read_regular_file(Path(folder), collected_relative(grade_id), max_bytes)
    except UnsafeFile as error:
        if error.errno == errno.ENOENT:
            return NO_RESULTS
        if error.errno == errno.EFBIG:
            return (f"The results collected for this cell are more than the {max_bytes / 2**20:.0f} MiB allowed: "
                    "they were not read.")
        return ("The results collected for this cell are not a regular file inside the grading folder (a link or "
                "a special file): they were rejected.")
    except OSError:
        return NO_RESULTS

"""Judging: decides every graded cell in the TA's process, from what the sandboxed kernel collected.

Each notebook's module (`ae.py`, `dae.py`, ...) defines `judge_*` functions, which raise AssertionError
with a message a student can act on (figures through `results.measure`), each declared as the judge of
one graded cell with `grader.checks.check`.
`grader.preprocessors.JudgeCollected` runs them during `nbgrader autograde`; the test suite runs the
same functions on the reference and on the variants.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from grader.checks import checks_of
from grader.faults import GradingFault
from grader.judge.carry import Verdict

if TYPE_CHECKING:  # judging imports torch; grader.judge.isolated's parent side (nbgrader's process) must not
    from grader.collect.common import Inputs

def judges_of(notebook: str) -> dict[str, Callable]:
    """The judges of a notebook's graded cells, by grade_id (empty for an unknown notebook)."""
    return {grade_id: declared.judge for grade_id, declared in checks_of(notebook).items()}


def judge_notebook(notebook: str, grade_ids: list[str], folder: Path, inputs: Inputs) -> dict[str, Verdict]:
    """Verdicts for the graded cells `grade_ids` of `notebook`, from the collections in `folder`."""
    from grader.judge.common import judge_cell

    judges = judges_of(notebook)
    verdicts = {}
    for grade_id in grade_ids:
        if grade_id not in judges:
            raise GradingFault(f"the grader has no judge for cell {grade_id!r} of {notebook}")
        verdicts[grade_id] = judge_cell(judges[grade_id], grade_id, folder, inputs)
    return verdicts

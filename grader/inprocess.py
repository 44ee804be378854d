"""Hidden checks run in this process, without nbgrader or a sandbox: for trusted code only.

The test suite (reference and variants) and the validity analysis (mutants of the reference) call
the hidden tests' collection code here and judge what it stored with the same `grader.judge`
functions `JudgeCollected` runs during `nbgrader autograde`. Student submissions never run here.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat

from grader import notebooks
from grader.collect.common import Inputs
from grader.judge import judge_notebook
from grader.judge.common import Verdict
from grader.preprocessors import hand_out


class Notebook:
    """A source notebook's hidden tests, with its set-up cells run once for many namespaces."""

    def __init__(self, name: str, source: nbformat.NotebookNode):
        self.name = name
        self.source = source
        self.hidden = notebooks.hidden_tests(source)
        self._setup: dict | None = None

    def namespace(self, replacements: dict[str, str] | None = None) -> dict:
        """The notebook's definitions with solution cells replaced by `replacements` (set-up run once)."""
        if self._setup is None:
            self._setup = notebooks.setup_namespace(self.source)
        return notebooks.definitions(self.source, replacements, setup=self._setup)

    def check(self, namespace: dict, folder: Path, inputs: Inputs, grade_ids: list[str] | None = None,
              stop_at_first_failure: bool = False) -> dict[str, Verdict]:
        """Collect the hidden tests `grade_ids` (default: all) in `namespace` from `folder`, and judge each."""
        hand_out(folder, inputs)
        verdicts = {}
        for grade_id in grade_ids if grade_ids is not None else list(self.hidden):
            try:
                exec(compile(self.hidden[grade_id], grade_id, "exec"), dict(namespace))
            except Exception:  # a cell that raises collects nothing, and its judge says so
                pass
            verdicts[grade_id] = judge_notebook(self.name, [grade_id], folder, inputs)[grade_id]
            if stop_at_first_failure and not verdicts[grade_id].passed:
                break
        return verdicts


def put_checkpoints(name: str, source: Path, folder: Path, link: bool = False) -> Path:
    """`folder` holding the checkpoints of notebook `name` found in `source`, as a submission folder holds them.

    `link` hard-links instead of copying: only for callers that never write to them (tampering would
    change the source too).
    """
    for checkpoint in Path(source).glob(f"{name}_*.pth"):
        try:
            if not link:
                raise OSError
            os.link(checkpoint, folder / checkpoint.name)
        except OSError:
            shutil.copy(checkpoint, folder / checkpoint.name)
    return folder


def failures(verdicts: dict[str, Verdict]) -> dict[str, str]:
    """The failing cells of `verdicts`, with their messages."""
    return {grade_id: verdict.message for grade_id, verdict in verdicts.items() if not verdict.passed}

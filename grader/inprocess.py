"""Hidden checks run in this process, without nbgrader or a sandbox: for trusted code only.

The test suite (reference and variants) and the validity analysis (mutants of the reference) call
the hidden tests' collection code here and judge what it stored with the same `grader.judge`
functions `JudgeCollected` runs during `nbgrader autograde`. Student submissions never run here.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import os
import shutil
import sys
import tempfile
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
        self.solutions = {cell.metadata["nbgrader"]["grade_id"]: notebooks.solution_code(cell.source)
                          for cell in source.cells
                          if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}
        self._setup: dict | None = None

    def namespace(self, replacements: dict[str, str] | None = None) -> dict:
        """The notebook's definitions with solution cells replaced by `replacements` (set-up run once)."""
        if self._setup is None:
            self._setup = notebooks.setup_namespace(self.source)
        return notebooks.definitions(self.source, replacements, setup=self._setup)

    def affected(self, replacements: dict[str, str]) -> list[str]:
        """Grade ids whose hidden tests can reach a solution cell that `replacements` changes (all, when unsure)."""
        # A hidden test reaches a cell when it names something the cell defines, directly or through the code
        # of other solution cells (a class that builds another). A replacement with top-level side effects, or
        # one that does not parse, could change anything.
        versions = [*self.solutions.items(), *replacements.items()]
        defined: dict[str, set[str]] = {}
        used: dict[str, set[str]] = {}
        for cell, code in versions:
            try:
                tree = ast.parse(code)
            except SyntaxError:
                return list(self.hidden)
            if cell in replacements and not all(map(_only_defines, tree.body)):
                return list(self.hidden)
            for name in _top_level_names(tree):
                defined.setdefault(name, set()).add(cell)
            used.setdefault(cell, set()).update(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))
        affected = []
        for grade_id, code in self.hidden.items():
            names = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
            cells: set[str] = set()
            while names:
                for cell in defined.get(names.pop(), set()) - cells:
                    cells.add(cell)
                    names |= used[cell]
            if cells & set(replacements):
                affected.append(grade_id)
        return affected

    def check(self, namespace: dict, folder: Path, inputs: Inputs, grade_ids: list[str] | None = None,
              stop_at_first_failure: bool = False) -> dict[str, Verdict]:
        """Collect the hidden tests `grade_ids` (default: all) in `namespace` from `folder`, and judge each."""
        hand_out(folder, inputs.seed)
        verdicts = {}
        for grade_id in grade_ids if grade_ids is not None else list(self.hidden):
            self.collect(namespace, grade_id)
            verdicts[grade_id] = judge_notebook(self.name, [grade_id], folder, inputs)[grade_id]
            if stop_at_first_failure and not verdicts[grade_id].passed:
                break
        return verdicts

    def collect(self, namespace: dict, grade_id: str) -> None:
        """Run the hidden test of `grade_id` in `namespace` (from the grading folder it was handed out in)."""
        try:
            exec(compile(self.hidden[grade_id], grade_id, "exec"), dict(namespace))
        except Exception:  # a cell that raises collects nothing, and its judge says so
            pass


def keep_reference_collections(name: str, checkpoints: Path) -> Path:
    """Collect the pictured checks of notebook `name` on the reference in `checkpoints`, kept for the judges.

    Runs the reference solution's code in this process: call it in a process of its own
    (`python -m grader.inprocess NAME CHECKPOINTS`), as `grader.pipeline.keep_reference` does.
    """
    from grader.checks import checks_of
    from grader.collect.layout import collected_relative
    from grader.judge import beside

    notebook = checked(name)
    pictured = [grade_id for grade_id, declared in checks_of(name).items() if declared.pictured]
    kept = beside.kept_folder(name)
    kept.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=kept.parent) as work:
        folder = put_checkpoints(name, checkpoints, Path(work) / "folder", link=True)
        staged = Path(work) / "kept"
        staged.mkdir()
        with contextlib.chdir(folder):
            namespace = notebook.namespace()
            hand_out(folder, beside.REFERENCE_SEED)
            for grade_id in pictured:
                notebook.collect(namespace, grade_id)
                os.replace(folder / collected_relative(grade_id), staged / Path(collected_relative(grade_id)).name)
        (staged / beside.DIGEST_FILE).write_text(beside.collections_digest(name))
        shutil.rmtree(kept, ignore_errors=True)
        os.replace(staged, kept)
    return kept


def _only_defines(node: ast.stmt) -> bool:
    """Whether a top-level statement only defines names (no call or assignment that could change other code)."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        calls = any(isinstance(part, ast.Call) for part in ast.walk(node))
        return not calls and all(isinstance(target, ast.Name) for target in targets)
    return False


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a cell binds at top level."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(leaf.id for target in targets for leaf in ast.walk(target) if isinstance(leaf, ast.Name))
    return names


@functools.cache
def checked(name: str) -> Notebook:
    """The hidden tests of source notebook `name`, set up once per process."""
    from grader import pipeline

    return Notebook(name, notebooks.build_notebook(pipeline.SOURCE / f"{name}.py"))


def variant_folder(variant, reference: Path, folder: Path) -> Path:
    """`folder` holding a variant's checkpoints: the reference's, tampered as the variant says.

    A checkpoint that ran code while loading leaves `submissions.PAYLOAD_MARKER` in `folder`'s parent.
    """
    from grader import submissions

    folder.mkdir(parents=True, exist_ok=True)
    put_checkpoints(variant.notebook, reference, folder)
    for filename, how in variant.files.items():
        submissions.tamper(folder / filename, how, reference, folder.parent / submissions.PAYLOAD_MARKER)
    return folder


def reachable(variant) -> list[str]:
    """The hidden tests a variant can change: all for one with tampered files, else those reaching its cells."""
    notebook = checked(variant.notebook)
    return list(notebook.hidden) if variant.files else notebook.affected(variant.cells)


def variant_failures(variant, folder: Path, inputs: Inputs, grade_ids: list[str]) -> dict[str, str]:
    """The hidden tests `grade_ids` a variant fails under `inputs`, run from `folder` (the current directory)."""
    notebook = checked(variant.notebook)
    return failures(notebook.check(notebook.namespace(variant.cells), folder, inputs, grade_ids))


def put_checkpoints(name: str, source: Path, folder: Path, link: bool = False) -> Path:
    """`folder` holding the checkpoints of notebook `name` found in `source`, as a submission folder holds them.

    `link` hard-links instead of copying: only for callers that never write to them (tampering would
    change the source too).
    """
    folder.mkdir(parents=True, exist_ok=True)
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


if __name__ == "__main__":  # python -m grader.inprocess NAME CHECKPOINTS: keep the reference's pictured collections
    print(keep_reference_collections(sys.argv[1], Path(sys.argv[2])))

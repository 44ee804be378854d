"""Known-wrong and alternative-correct submissions, one module per notebook, used by tests and the demo.

A variant is the reference submission with some solution cells rewritten and some submitted
files tampered with. `fails` names the grade cells it must lose; an empty set means it is a
correct solution written differently, which must get full marks.

A cell that is the reference's code with a local change is built by `from_reference`, which edits the
reference solution of that cell by replacements that must each match exactly once: when the reference
changes under a variant, importing the variant fails and says where, instead of the variant silently
testing a stale copy. Cells written in their own way (other architectures, other formulas) are written
out in full.
"""
from __future__ import annotations

import ast
import functools
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from grader import notebooks
# Each notebook's variants live in grader/variants/<module>.py, its collectors and judges in grader/collect/ and grader/judge/.
from grader.checks import MODULES
TAMPERINGS = ("missing", "garbage", "pickle_payload", "wrong_architecture", "huge", "truncated", "nan_weights")
# Besides these, "from:<file>" submits the reference's <file> in its place (a model trained the wrong way).
SOURCE = Path(__file__).resolve().parents[2] / "source" / "autoencoders"  # pipeline.SOURCE (pipeline imports this)


@dataclass(frozen=True)
class Variant:
    """One submission that differs from the reference in known ways."""
    name: str
    notebook: str
    description: str
    cells: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    fails: frozenset[str] = frozenset()
    retrain: bool = False

    def __post_init__(self):
        unknown = {how for how in self.files.values() if how not in TAMPERINGS and not how.startswith("from:")}
        if unknown:
            raise ValueError(f"{self.name}: unknown file tampering {sorted(unknown)}; use {TAMPERINGS} or from:<file>")

    @property
    def correct(self) -> bool:
        """Whether this variant must get full marks."""
        return not self.fails


def variants_of(notebook: str) -> ModuleType:
    """The variants module of a notebook (it defines VARIANTS and DEMO)."""
    return importlib.import_module(f"grader.variants.{MODULES[notebook]}")


def notebooks_under_test() -> list[str]:
    """Notebooks the test suite covers: all, or those in AECOURSE_TEST_NOTEBOOKS plus 1_ae (a developer's shortcut)."""
    wanted = os.environ.get("AECOURSE_TEST_NOTEBOOKS", "").replace(",", " ").split()
    unknown = set(wanted) - set(MODULES)
    if unknown:
        raise ValueError(f"AECOURSE_TEST_NOTEBOOKS names unknown notebooks {sorted(unknown)}; choose from {sorted(MODULES)}")
    # 1_ae stays in: the pipeline's hostile-submission tests use it.
    return sorted(set(wanted) | {"1_ae"}) if wanted else sorted(MODULES)


class ReplacementError(ValueError):
    """A variant's replacement does not fit the reference cell it edits."""


def without_docstrings(code: str) -> str:
    """Code with the docstrings of its functions and classes removed (with the blank line after each)."""
    lines = code.splitlines(keepends=True)
    dropped: set[int] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and len(node.body) > 1:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                dropped.update(range(first.lineno - 1, first.end_lineno))
                if first.end_lineno < len(lines) and not lines[first.end_lineno].strip():
                    dropped.add(first.end_lineno)
    return "".join(line for number, line in enumerate(lines) if number not in dropped)


@functools.cache
def reference_cells(notebook: str) -> dict[str, str]:
    """The reference solution code of each solution cell of a notebook without docstrings, by grade id.

    Docstrings are left out so that replacements match code, never the prose that describes it. Each cell
    has the form of the cells written out in the variant modules (a blank first line, one final newline).
    """
    cells = notebooks.cells_by_grade_id(notebooks.build_notebook(SOURCE / f"{notebook}.py"))
    return {grade_id: "\n" + without_docstrings(notebooks.solution_code(cell.source)).strip("\n") + "\n"
            for grade_id, cell in cells.items() if cell.metadata["nbgrader"].get("solution")}


def _reference_cell(notebook: str, grade_id: str) -> str:
    """One cell of `reference_cells`, or a ReplacementError naming the cells there are."""
    cells = reference_cells(notebook)
    if grade_id not in cells:
        raise ReplacementError(f"{notebook} has no solution cell {grade_id!r}; its solution cells are {sorted(cells)}")
    return cells[grade_id]


def from_reference(notebook: str, grade_id: str, *replacements: tuple[str, str]) -> str:
    """The reference solution of cell `grade_id` with each `(old, new)` applied in turn, each `old` found once."""
    if not replacements:
        raise ReplacementError(f"{notebook} {grade_id}: no replacement given, so the variant would be the reference")
    code = _reference_cell(notebook, grade_id)
    for old, new in replacements:
        if old == new:
            raise ReplacementError(f"{notebook} {grade_id}: replacing {old!r} by itself changes nothing")
        count = code.count(old)
        if count != 1:
            raise ReplacementError(f"{notebook} {grade_id}: {old!r} occurs {count} times in the reference solution "
                                   "(docstrings left out) instead of exactly once; make it match the one place the "
                                   "variant changes (the reference may have changed under it)")
        code = code.replace(old, new)
    return code


def reference_definition(notebook: str, grade_id: str, name: str) -> str:
    """The reference code of the top-level class or function `name` of cell `grade_id`, in the form of a cell."""
    code = _reference_cell(notebook, grade_id)
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return "\n" + "".join(code.splitlines(keepends=True)[node.lineno - 1:node.end_lineno])
    raise ReplacementError(f"{notebook} {grade_id}: the reference solution defines no {name!r}")

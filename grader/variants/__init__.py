"""Known-wrong and alternative-correct submissions, one module per notebook, used by tests and the demo.

A variant is the reference submission with some solution cells rewritten and some submitted
files tampered with. `fails` names the grade cells it must lose; an empty set means it is a
correct solution written differently, which must get full marks.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from types import ModuleType

# Each notebook's variants live in grader/variants/<module>.py, its collectors and judges in grader/collect/ and grader/judge/.
from grader.checks import MODULES
TAMPERINGS = ("missing", "garbage", "pickle_payload", "wrong_architecture", "huge", "truncated", "nan_weights")
# Besides these, "from:<file>" submits the reference's <file> in its place (a model trained the wrong way).


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

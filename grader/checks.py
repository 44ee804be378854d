"""The registry of graded checks: each graded cell declared once, on its judge.

    @check("test_reconstruction", collect.collect_trained_codes, figures=("ae10_mse",))
    def judge_reconstruction(out, inputs): ...

names the cell's grade id, the collector its hidden test hands the student's objects to (in the kernel),
the judge (in the TA's process) and the reference figures (grader/reference.py) it measures. Everything
else derives from it: the judges nbgrader's judging step runs, the store calls the notebook sources must
make, the figures each check must report, the checks that train (the seed analysis skips them when asked
to be quick), the tests over all checks and the feedback's description of each cell. `store_calls` is the
one parser of the hidden tests' `store(grade_id, collector, *objects)` convention.

This module imports neither torch nor the judges until a notebook's checks are asked for: nbgrader's
own process imports it.
"""
from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from typing import Callable

# Each notebook's module name under grader.collect, grader.judge and grader.variants.
MODULES = {"1_ae": "ae", "2_dae": "dae", "3_vae": "vae", "4_tsne": "tsne", "5_conv_aae": "conv_aae"}
NOTEBOOK_OF_MODULE = {module: notebook for notebook, module in MODULES.items()}


@dataclass(frozen=True)
class Check:
    """One graded cell: what its hidden test collects and how the TA's process judges it."""
    notebook: str
    grade_id: str
    collector: Callable
    judge: Callable
    figures: tuple[str, ...] = ()  # keys of the notebook's table in grader/reference.py
    trains: bool = False           # whether judging or collecting trains a model or runs t-SNE (seconds)
    pictured: bool = False         # whether its feedback pictures the student's result beside a reference solution's

    @property
    def task(self) -> str:
        """What the check verifies, in one line (the judge's docstring)."""
        return task_of(self.judge)

    @property
    def collector_path(self) -> str:
        """The dotted name a hidden test calls the collector by."""
        return f"{self.collector.__module__}.{self.collector.__name__}"


_REGISTRY: dict[str, dict[str, Check]] = {}


def task_of(judge: Callable) -> str:
    """The first line of a judge's docstring ("" without one): what its check verifies."""
    lines = (getattr(judge, "__doc__", None) or "").strip().splitlines()
    return " ".join(lines[0].split()) if lines else ""


def check(grade_id: str, collector: Callable, figures: tuple[str, ...] = (), trains: bool = False,
          pictured: bool = False):
    """Register the decorated function as the judge of `grade_id` in its module's notebook."""
    def register(judge: Callable) -> Callable:
        notebook = NOTEBOOK_OF_MODULE[judge.__module__.rsplit(".", 1)[-1]]
        checks = _REGISTRY.setdefault(notebook, {})
        if grade_id in checks and checks[grade_id].judge.__qualname__ != judge.__qualname__:
            raise ValueError(f"{notebook} declares {grade_id} twice")
        checks[grade_id] = Check(notebook, grade_id, collector, judge, tuple(figures), trains, pictured)
        return judge
    return register


def checks_of(notebook: str) -> dict[str, Check]:
    """The checks of a notebook's graded cells, by grade id, in declaration order (empty for an unknown notebook)."""
    if notebook not in MODULES:
        return {}
    importlib.import_module(f"grader.judge.{MODULES[notebook]}")
    return dict(_REGISTRY.get(notebook, {}))


def declaration(judge: Callable) -> Check | None:
    """The check `judge` is declared the judge of (None for a function registered nowhere)."""
    for checks in _REGISTRY.values():
        for declared in checks.values():
            if declared.judge is judge:
                return declared
    return None


@dataclass(frozen=True)
class StoreCall:
    """One `store(grade_id, collector, *objects)` call of a hidden test."""
    grade_id: str
    collector: str          # as written, e.g. "grader.collect.ae.collect_sample_train"
    objects: tuple[str, ...]  # the student's objects handed over, as written


def store_calls(code: str) -> list[StoreCall]:
    """The store calls in a hidden test's code."""
    calls = []
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "store" and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            calls.append(StoreCall(node.args[0].value, ast.unparse(node.args[1]),
                                   tuple(ast.unparse(argument) for argument in node.args[2:])))
    return calls

"""Mutation analysis: how many small mistakes in each graded function its hidden checks catch.

For every solution cell whose functions or classes a hidden check calls (a *target*), every mutant
of `grader.validity.mutants` runs in a child process forked from one that ran the notebook's set-up
once: the mutant's cell replaces the reference's, the target's hidden checks collect and are judged
(cheapest check first, stopping at the first failing one) over the reference checkpoints and a fixed
grading seed. A mutant is *killed* when a judge fails it, *crashed* when its process died or ran out
of time (a student would lose those points too), and *survived* otherwise. Survivors must be listed
as equivalent, with the reason, in `equivalent.toml` beside this file.
"""
from __future__ import annotations

import ast
import contextlib
import difflib
import multiprocessing
import os
import shutil
import tempfile
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

import torch

from grader import notebooks, pipeline
from grader.checks import store_calls
from grader.collect.common import Inputs
from grader.inprocess import Notebook, put_checkpoints
from grader.validity.mutants import Mutant, mutants_of_cell

EQUIVALENT_FILE = Path(__file__).with_name("equivalent.toml")
INPUTS = Inputs(20261122)
MIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Target:
    """A graded solution cell and the grade cells whose hidden tests call what it defines."""
    notebook: str
    cell: str
    checks: tuple[str, ...]


@dataclass
class Outcome:
    """What happened to one mutant."""
    mutant: Mutant
    status: str                     # killed, crashed, survived, equivalent
    check: str = ""                 # the grade cell that killed it
    message: str = ""
    seconds: float = 0.0


@dataclass
class CellReport:
    """Mutants of one target and what became of them."""
    target: Target
    reference: str = ""             # the solution cell's source
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """How many mutants ended with `status`."""
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def score(self) -> float:
        """Killed (or crashed) mutants over the non-equivalent ones; 1 when there are none."""
        relevant = len(self.outcomes) - self.count("equivalent")
        return (self.count("killed") + self.count("crashed")) / relevant if relevant else 1.0


def defined_names(code: str) -> set[str]:
    """Names of the functions and classes a cell defines at top level."""
    return {node.name for node in ast.parse(code).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def targets_of(name: str, source) -> list[Target]:
    """The graded solution cells of a notebook: those defining something a hidden test hands to its collector."""
    handed: dict[str, set[str]] = {}
    for grade_id, code in notebooks.hidden_tests(source).items():
        for call in store_calls(code):
            handed[call.grade_id] = set(call.objects)
    targets = []
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {}) if cell.cell_type == "code" else {}
        if not meta.get("solution"):
            continue
        names = defined_names(notebooks.solution_code(cell.source))
        checks = tuple(grade_id for grade_id, used in handed.items() if used & names)
        if checks:
            targets.append(Target(name, meta["grade_id"], checks))
    return targets


def load_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, dict]:
    """The mutants recorded as equivalent to the reference, by key, each with its reason."""
    if not path.exists():
        return {}
    entries = tomllib.loads(path.read_text()).get("mutant", [])
    for entry in entries:
        if not entry.get("reason", "").strip():
            raise ValueError(f"{path.name}: mutant {entry.get('key')} has no reason")
    return {entry["key"]: entry for entry in entries}


def diff(reference: str, mutant: Mutant) -> str:
    """The changed lines between the (unparsed) reference cell `reference` and the mutant."""
    before = ast.unparse(ast.parse(reference)).splitlines()
    lines = difflib.unified_diff(before, mutant.code.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++", "@@")))


# --- running mutants ------------------------------------------------------------------------------

class NotebookRun:
    """One notebook's set-up, reference checkpoints and check costs, shared by its mutants' processes."""

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.source = notebooks.build_notebook(pipeline.SOURCE / f"{name}.py")
        self.notebook = Notebook(name, self.source)
        self.checkpoints = pipeline.train_reference(name)
        self.workdir = workdir
        self.cells = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in self.source.cells
                      if cell.metadata.get("nbgrader", {}).get("solution")}
        self.costs: dict[str, float] = {}

    def folder(self, label: str) -> Path:
        """A fresh submission folder holding the reference checkpoints."""
        folder = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.workdir))
        return put_checkpoints(self.name, self.checkpoints, folder, link=True)  # hidden tests only read them

    def run_reference(self) -> dict[str, str]:
        """Check the unmutated reference here (warming every cache the forked mutants share); return failures."""
        folder = self.folder("reference")
        namespace = self.notebook.namespace()
        failures = {}
        for grade_id in self.notebook.hidden:
            started = time.perf_counter()
            with contextlib.chdir(folder):
                verdict = self.notebook.check(namespace, folder, INPUTS, [grade_id])[grade_id]
            self.costs[grade_id] = time.perf_counter() - started
            if not verdict.passed:
                failures[grade_id] = verdict.message
        shutil.rmtree(folder, ignore_errors=True)
        return failures

    def ordered(self, target: Target) -> list[str]:
        """A target's checks, cheapest first."""
        return sorted(target.checks, key=lambda grade_id: self.costs.get(grade_id, 0.0))

    def timeout(self, target: Target) -> float:
        """Seconds a mutant of `target` may take: several times what all its checks took on the reference."""
        return max(MIN_TIMEOUT, 5 * sum(self.costs.get(grade_id, 0.0) for grade_id in target.checks))

    def run_mutant(self, mutant: Mutant, target: Target) -> tuple[str, str, str]:
        """In a child process: (status, check, message) of one mutant."""
        folder = self.folder(mutant.key)
        try:
            with contextlib.chdir(folder):
                namespace = self.notebook.namespace({mutant.cell: mutant.code})
        except BaseException as error:  # the cell itself raises: every check of it fails
            return "killed", target.checks[0], f"the cell raises {type(error).__name__}: {error}"
        for grade_id in self.ordered(target):
            with contextlib.chdir(folder):
                verdict = self.notebook.check(namespace, folder, INPUTS, [grade_id])[grade_id]
            if not verdict.passed:
                return "killed", grade_id, verdict.message
        return "survived", "", ""


def _child(run: NotebookRun, mutant: Mutant, target: Target, connection) -> None:
    """Body of a mutant's process: report its outcome through `connection`."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the hidden tests' prints and warnings, a thousand times over
    os.dup2(devnull, 2)
    try:
        result = run.run_mutant(mutant, target)
    except BaseException:
        result = ("crashed", "", traceback.format_exc(limit=3)[-500:])
    connection.send(result)
    connection.close()
    os._exit(0)  # skip atexit handlers inherited from the parent


def run_mutants(run: NotebookRun, jobs: list[tuple[Mutant, Target]], processes: int,
                progress: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Run each (mutant, target) in its own forked process, `processes` at a time, with a timeout each."""
    context = multiprocessing.get_context("fork")
    pending, running, outcomes = list(jobs), {}, []
    while pending or running:
        while pending and len(running) < processes:
            mutant, target = pending.pop(0)
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(run, mutant, target, sender), daemon=True)
            process.start()
            sender.close()
            running[process.sentinel] = (process, receiver, mutant, target, time.monotonic())
        ready = wait(list(running), timeout=1.0)
        now = time.monotonic()
        for sentinel in list(running):
            process, receiver, mutant, target, started = running[sentinel]
            timed_out = now - started > run.timeout(target)
            if sentinel not in ready and not timed_out:
                continue
            if timed_out and sentinel not in ready:
                process.kill()
            process.join()
            del running[sentinel]
            if receiver.poll():
                status, check, message = receiver.recv()
            elif timed_out:
                status, check, message = "crashed", "", f"ran past its {run.timeout(target):.0f} s limit"
            else:
                status, check, message = "crashed", "", f"its process died (exit code {process.exitcode})"
            receiver.close()
            outcome = Outcome(mutant, status, check, message.splitlines()[0][:200] if message else "", now - started)
            outcomes.append(outcome)
            progress(outcome)
    return outcomes


def analyse(names: list[str], processes: int | None = None, limit: int | None = None,
            equivalent: dict[str, dict] | None = None, workdir: Path | None = None,
            progress: Callable[[Outcome], None] = lambda outcome: None) -> list[CellReport]:
    """Mutation analysis of every graded solution cell of the notebooks `names`; one report per cell."""
    processes = processes or os.cpu_count() or 1
    equivalent = load_equivalent() if equivalent is None else equivalent
    torch.set_num_threads(1)  # before any torch work, so forked children start single-threaded
    reports = []
    with tempfile.TemporaryDirectory(prefix="aecourse-validity-", dir=workdir) as scratch:
        for name in names:
            run = NotebookRun(name, Path(scratch))
            broken = run.run_reference()
            if broken:
                raise RuntimeError(f"the reference of {name} fails its own checks: {broken}")
            targets = targets_of(name, run.source)
            jobs, cell_reports = [], {}
            for target in targets:
                report = cell_reports[target.cell] = CellReport(target, notebooks.solution_code(run.cells[target.cell]))
                mutants = mutants_of_cell(name, target.cell, run.cells[target.cell])[:limit]
                for mutant in mutants:
                    if mutant.key in equivalent:
                        report.outcomes.append(Outcome(mutant, "equivalent", message=equivalent[mutant.key]["reason"]))
                    else:
                        jobs.append((mutant, target))
            for outcome in run_mutants(run, jobs, processes, progress):
                report = cell_reports[outcome.mutant.cell]
                report.outcomes.append(outcome)
                report.seconds += outcome.seconds
            reports.extend(cell_reports.values())
    return reports


# --- reporting ------------------------------------------------------------------------------------

def survivors(reports: list[CellReport]) -> list[Outcome]:
    """Mutants no check killed and no entry of the equivalent file explains."""
    return [outcome for report in reports for outcome in report.outcomes if outcome.status == "survived"]


def stale_entries(reports: list[CellReport], equivalent: dict[str, dict]) -> list[str]:
    """Keys of the equivalent file that name no mutant of the analysed cells."""
    analysed = {(report.target.notebook, report.target.cell) for report in reports}
    present = {outcome.mutant.key for report in reports for outcome in report.outcomes}
    return [key for key, entry in equivalent.items()
            if (entry.get("notebook"), entry.get("cell")) in analysed and key not in present]


def table(reports: list[CellReport]) -> str:
    """The per-cell table (Markdown): mutants, killed, crashed, equivalent, survived, score, time."""
    rows = ["| notebook | graded cell | checked by | mutants | killed | crashed | equivalent | survived | score | time |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for report in reports:
        target = report.target
        rows.append(f"| {target.notebook} | {target.cell} | {', '.join(target.checks)} | {len(report.outcomes)} | "
                    f"{report.count('killed')} | {report.count('crashed')} | {report.count('equivalent')} | "
                    f"{report.count('survived')} | {report.score:.0%} | {report.seconds:.0f} s |")
    total = [outcome for report in reports for outcome in report.outcomes]
    relevant = [outcome for outcome in total if outcome.status != "equivalent"]
    caught = sum(outcome.status in ("killed", "crashed") for outcome in relevant)
    rows.append(f"| **all** | | | {len(total)} | {sum(o.status == 'killed' for o in total)} | "
                f"{sum(o.status == 'crashed' for o in total)} | {len(total) - len(relevant)} | "
                f"{len(relevant) - caught} | {caught / max(len(relevant), 1):.0%} | |")
    return "\n".join(rows)


def describe_survivor(outcome: Outcome, reference_cell: str) -> str:
    """A survivor for the equivalent file: its key, where it is, and its diff."""
    mutant = outcome.mutant
    return (f"[[mutant]]\nkey = \"{mutant.key}\"\nnotebook = \"{mutant.notebook}\"\ncell = \"{mutant.cell}\"\n"
            f"change = {mutant.change!r}\nreason = \"\"\n# diff:\n"
            + "\n".join(f"#   {line}" for line in diff(reference_cell, mutant).splitlines()))

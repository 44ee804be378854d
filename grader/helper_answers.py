"""Release check: no student helper in `aelib/` computes what the solution of a graded function computes.

Each graded function's hidden test is collected once from the reference solution, recording every call
the collector makes (arguments, torch random state, output). Every public function of the released
helpers is then replayed on the same calls; one that accepts some of them and returns the solution's
outputs on all it accepts is a graded answer shipped to students.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from grader import notebooks
from grader.collect.common import Inputs, quiet, single_thread

UNFINISHED = "the helper check did not finish"
SEED = 20261123  # any seed: the check compares a helper with the solution on the same inputs


@dataclass
class Recorder:
    """Wraps a function and records each call: arguments, the torch random state before it, and the output."""
    function: Callable
    calls: list[tuple[tuple, dict, torch.Tensor, Any]] = field(default_factory=list)

    def __call__(self, *args, **kwargs):
        state = torch.random.get_rng_state()
        saved = snapshot((args, kwargs))
        output = self.function(*args, **kwargs)
        self.calls.append((*saved, state, snapshot(output)))
        return output


def snapshot(value: Any) -> Any:
    """A copy of a value whose tensors are detached clones (keeping requires_grad), so later calls cannot change it."""
    if isinstance(value, torch.Tensor):
        copied = value.detach().clone()
        return copied.requires_grad_() if value.requires_grad and copied.is_floating_point() else copied
    if isinstance(value, (tuple, list)):
        return type(value)(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def graded_functions(notebook) -> dict[str, tuple[str, str]]:
    """Graded functions of a source notebook: name -> (grade_id, dotted collector), from its hidden tests."""
    found = {}
    for grade_id, code in notebooks.hidden_tests(notebook).items():
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("store") and len(node.args) == 3:
                name = node.args[2]
                if isinstance(name, ast.Name) and name.id[:1].islower():
                    found[name.id] = (grade_id, ast.unparse(node.args[1]))
    return found


def resolve(dotted: str) -> Callable:
    """The object a dotted name such as grader.collect.dae.collect_add_noise names."""
    module, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def recorded_calls(function: Callable, collector: Callable) -> list:
    """The calls the collector makes of `function`, recorded on the check's inputs."""
    recorder = Recorder(function)
    with quiet(), single_thread():
        collector(Inputs(SEED), recorder)
    return recorder.calls


def same(a: Any, b: Any) -> bool:
    """Whether two outputs are equal: tensors within float tolerance, containers element by element."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype.is_floating_point == b.dtype.is_floating_point and \
            torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-7, equal_nan=True)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-7 + 1e-5 * abs(b)
    return False


def replays_solution(helper: Callable, calls: list) -> bool:
    """Whether `helper` accepts some of the recorded calls and returns the solution's output on each it accepts."""
    accepted = 0
    for args, kwargs, state, expected in calls:
        torch.random.set_rng_state(state)
        try:
            with quiet(), single_thread():
                output = helper(*snapshot(args), **snapshot(kwargs))
        except Exception:
            continue
        if not same(output, expected):
            return False
        accepted += 1
    return accepted > 0


def helper_modules(helpers_dir: Path) -> list[ModuleType]:
    """The released helper modules, loaded from their files under names of their own."""
    modules = []
    for path in sorted(helpers_dir.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"released_{helpers_dir.name}.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def public_functions(module: ModuleType) -> dict[str, Callable]:
    """The public functions a helper module defines itself."""
    return {name: obj for name, obj in inspect.getmembers(module, inspect.isfunction)
            if not name.startswith("_") and obj.__module__ == module.__name__}


CACHE = Path(__file__).resolve().parent.parent / ".cache" / "helper-answers"


def inputs_digest(helpers_dir: Path, source_dir: Path) -> str:
    """A digest of everything the check's outcome depends on: helpers, sources, the grader's code, torch."""
    digest = hashlib.sha256(torch.__version__.encode())
    grader = Path(__file__).resolve().parent
    for path in [*sorted(helpers_dir.glob("*.py")), *sorted(source_dir.glob("[0-9]_*.py")), *sorted(grader.rglob("*.py"))]:
        digest.update(f"\0{path.name}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def answers_in_helpers(helpers_dir: Path, source_dir: Path) -> list[str]:
    """One line per released helper function that computes a graded function's solution on its check's inputs
    (kept in `.cache/` by a digest of all it depends on: the replay takes half a minute)."""
    cached = CACHE / f"{inputs_digest(helpers_dir, source_dir)}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    lines = find_answers(helpers_dir, source_dir)
    if not any(line.startswith(UNFINISHED) for line in lines):
        CACHE.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(lines))
        temporary.replace(cached)
    return lines


def find_answers(helpers_dir: Path, source_dir: Path) -> list[str]:
    """`answers_in_helpers`, computed."""
    state = torch.random.get_rng_state()
    with muted():
        graded = {source_path.stem: solution_calls(source_path, source_path.read_text())
                  for source_path in sorted(source_dir.glob("[0-9]_*.py"))}
    torch.random.set_rng_state(state)
    return in_child(replay_all, helpers_dir, graded)


def replay_all(helpers_dir: Path, graded: dict[str, dict[str, tuple[str, list]]]) -> list[str]:
    """Replay every released helper on every graded function's recorded calls; one line per match."""
    helpers = {f"{path_name(m)}.{name}": f for m in helper_modules(helpers_dir) for name, f in public_functions(m).items()}
    return [f"{helpers_dir.name}/{helper}: computes the solution of {name} ({notebook}, {grade_id}); "
            "remove it from the student helpers"
            for notebook, functions in graded.items() for name, (grade_id, calls) in functions.items()
            for helper, function in helpers.items() if replays_solution(function, calls)]


def in_child(function: Callable, *args) -> list[str]:
    """function(*args) in a forked child, muted, in a scratch folder: a helper called with odd arguments (an
    int where a path goes is a file descriptor to `open`) can harm only the child. Returns its list of lines."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                torch.set_num_threads(1)
                os.chdir(scratch)
                with muted():
                    lines = function(*args)
                result.write_text(json.dumps(lines))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status != 0 or not result.exists():
            return [f"{UNFINISHED} (exit status {status}): run `aecourse check` to see why"]
        return json.loads(result.read_text())


@functools.lru_cache(maxsize=None)
def solution_calls(source_path: Path, text: str) -> dict[str, tuple[str, list]]:
    """Each graded function of a source notebook: its grade cell and the calls its collector makes of the solution."""
    notebook = notebooks.build_notebook(source_path)
    graded = graded_functions(notebook)
    if not graded:
        return {}
    namespace = notebooks.definitions(notebook)
    return {name: (grade_id, recorded_calls(namespace[name], resolve(collector)))
            for name, (grade_id, collector) in graded.items()}


@contextlib.contextmanager
def muted():
    """Silence what set-up cells, collectors and helpers print (progress bars, data summaries)."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def path_name(module: ModuleType) -> str:
    """A released module's file name without its suffix (data for aelib/data.py)."""
    return module.__name__.rpartition(".")[2]

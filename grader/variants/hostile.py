"""The hostile-submission catalogue: wrong submissions with a trick meant to gain points, each graded by nbgrader.

Every case is a base submission with a known mistake (`BASES`) plus one trick. A trick may gain
nothing: the case must score no more than its base. `stopped_by` says what stops it; the README's
grading-safety table is written from this list. Kernel-side tricks print `TRICK <name>` first, so a
test can tell that the trick really ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import nbformat

PAYLOAD_FLAG = "/tmp/aecourse-collected-payload-ran"  # created if a forged collection ever ran code in the TA's process
PROBE_PORT = 47613                                    # a loopback port the network case tries to reach
LEAK = "LEAKED:"                                      # printed by a probe that got something it must not

BASES = {
    # 1_ae with rho_hat averaged per example instead of over the batch: loses test_sparsity_penalty.
    "1_ae": {"sparsity_penalty": '''
def sparsity_penalty(activations, rho=0.01):
    rho_hat = activations.mean(dim=1)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
'''},
    # 3_vae with the KL term missing its mean part (passes the visible tests): loses test_loss_kl.
    "3_vae": {"loss_kl": '''
def loss_kl(z_mean, z_logvar):
    return (0.5 * (torch.exp(z_logvar) - 1 - z_logvar).sum(dim=1)).mean()
'''},
}
FIRST_CELL = {"1_ae": "sample_train", "3_vae": "encoder"}


@dataclass(frozen=True)
class Hostile:
    """A base submission plus one trick."""
    name: str
    trick: str
    stopped_by: str
    code: str = ""                       # prepended to the notebook's first solution cell
    notebook: str = "1_ae"
    cells: dict[str, str] = field(default_factory=dict)   # further solution cells replaced
    edit: Callable[[nbformat.NotebookNode], None] | None = None
    files: dict[str, str] = field(default_factory=dict)   # checkpoint tamperings
    options: tuple[str, ...] = ()        # nbgrader options (smaller limits keep the test quick)
    timeout: float | None = None         # the submission's wall-clock limit, when the case needs a short one

    @property
    def runs_code(self) -> bool:
        """Whether the trick runs in the kernel (and so prints its marker)."""
        return bool(self.code or self.cells)

    def solution_cells(self, first_cell_source: str) -> dict[str, str]:
        """The solution cells of this submission: the base's mistake, the trick, the case's own cells."""
        cells = dict(BASES[self.notebook])
        if self.code:
            cells[FIRST_CELL[self.notebook]] = (f"print('TRICK {self.name}', flush=True)\n" + self.code + "\n"
                                                + first_cell_source)
        cells.update(self.cells)
        return cells


def _hook(body: str) -> str:
    """Code that runs `body` after every cell (so after each hidden test stored its collection)."""
    return ("import pathlib, torch\n"
            "def _after_each_cell(result=None):\n"
            "    collected = pathlib.Path.cwd() / '.aecourse' / 'collected'\n"
            "    if collected.is_dir():\n"
            + "".join(f"        {line}\n" for line in body.strip().splitlines())
            + "get_ipython().events.register('post_run_cell', _after_each_cell)\n")


def _edit_test_cell(transform: Callable[[nbformat.NotebookNode], None]) -> Callable:
    """A notebook edit applied to the test_sparsity_penalty grade cell."""
    def edit(notebook: nbformat.NotebookNode) -> None:
        for cell in notebook.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_sparsity_penalty":
                transform(cell)
    return edit


def _delete_test_cell(notebook: nbformat.NotebookNode) -> None:
    notebook.cells = [c for c in notebook.cells
                      if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "test_sparsity_penalty"]


def _change_kernelspec(notebook: nbformat.NotebookNode) -> None:
    notebook.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}


def _print_forged_cell(cell: nbformat.NotebookNode) -> None:
    cell.source = "print('Visible tests passed.')\n"


def _raise_points(cell: nbformat.NotebookNode) -> None:
    cell.metadata["nbgrader"].update(points=100, locked=False, grade=True)
    cell.source = "pass\n"


def _forge_inputs_code() -> str:
    """Forge inputs.json to the public seed 0 and answer the sparsity check from values precomputed for it."""
    from grader.collect import ae as collect
    from grader.collect.common import Inputs
    from grader.judge.ae import sparsity_closed_form

    answers = {round(float(a.sum()), 3): float(sparsity_closed_form(a, 0.01 if rho is None else rho))
               for a, rho in collect.sparsity_activations(Inputs(0))}
    return ("import json, pathlib\n"
            "pathlib.Path('.aecourse/inputs.json').write_text(json.dumps({'seed': 0}))\n"
            f"_PRECOMPUTED = {answers!r}\n"
            "def sparsity_penalty(activations, rho=0.01):\n"
            "    answer = _PRECOMPUTED.get(round(float(activations.sum()), 3), 0.0)\n"
            "    return torch.tensor(answer, dtype=activations.dtype) + 0 * activations.sum()\n")


CATALOGUE = [
    # --- replacing or wrapping the grader -----------------------------------------------------
    Hostile("replace_collectors", "replaces every collect_* function of grader.collect.* with one returning {}",
            "judges run in the TA's process on what was collected; an empty collection fails", code='''
import importlib, pkgutil, grader.collect
for _info in pkgutil.iter_modules(grader.collect.__path__):
    _module = importlib.import_module("grader.collect." + _info.name)
    for _attr in list(vars(_module)):
        if _attr.startswith("collect_"):
            setattr(_module, _attr, lambda inputs, *args, **kwargs: {})
'''),
    Hostile("replace_store", "replaces grader.collect.common.store with a function that prints success",
            "nothing collected: the TA's judge fails the cell", code='''
import grader.collect.common
grader.collect.common.store = lambda *args, **kwargs: print("Hidden tests passed.")
'''),
    Hostile("wrap_store_forge_values", "wraps store to overwrite the collected sparsity values with zeros",
            "the judge recomputes the closed form on the secret activations: zeros do not match", code='''
import grader.collect.common, torch
_real_store = grader.collect.common.store
def _forging_store(grade_id, collector, *objects):
    if grade_id == "test_sparsity_penalty":
        collector = lambda inputs, *a: {"cases": [{"value": torch.tensor(0.0), "grad": torch.ones(64, 32)}] * 3}
    return _real_store(grade_id, collector, *objects)
grader.collect.common.store = _forging_store
'''),
    Hostile("patch_collection_helpers", "patches grader.collect.common.call and as_plain to return forged tensors",
            "forged values are judged in the TA's process against its own closed form", code='''
import grader.collect.common, torch
grader.collect.common.call = lambda function, *a, **k: torch.tensor(0.0, requires_grad=True)
grader.collect.common.as_plain = lambda value: torch.zeros(()) if isinstance(value, torch.Tensor) else "tuple"
'''),
    Hostile("fake_grader_modules", "puts fake grader.collect modules in sys.modules whose store prints success",
            "nothing collected: the TA's judge fails the cell", code='''
import sys, types
_fake = types.ModuleType("grader.collect.common")
_fake.store = lambda *args, **kwargs: print("Hidden tests passed.")
sys.modules["grader.collect.common"] = _fake
import grader.collect
grader.collect.common = _fake
'''),
    Hostile("import_grader_judges", "sparsity_penalty imports the grader's closed form (grader.judge, grader.checks)",
            "the sandbox shows only grader/collect: the import fails", cells={"sparsity_penalty": f'''
def sparsity_penalty(activations, rho=0.01):
    for module in ("grader.judge.ae", "grader.checks.ae"):
        try:
            closed_form = __import__(module, fromlist=["sparsity_closed_form"]).sparsity_closed_form
            print("{LEAK}", module)
            return closed_form(activations, rho)
        except Exception:
            pass
    rho_hat = activations.mean(dim=1)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
print('TRICK import_grader_judges', flush=True)
'''}),
    Hostile("read_thresholds", "reads grader/reference.py (thresholds, reference figures) and the judges' source",
            "hidden by the sandbox (a tmpfs over the grader, only grader/collect bound back)", code=f'''
import pathlib, grader
_base = pathlib.Path(grader.__file__).parent
for _name in ("reference.py", "judge/ae.py", "checks/ae.py", "preprocessors.py", "variants/ae.py"):
    try:
        print("{LEAK}", _name, (_base / _name).read_text()[:80])
    except OSError:
        pass
'''),
    # --- patching what judging or collection uses ----------------------------------------------
    Hostile("patch_torch", "patches torch.allclose, torch.equal, torch.isfinite and Tensor.__lt__ in the kernel",
            "judging runs in the TA's process, whose torch the kernel cannot touch", code='''
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isfinite = lambda x: torch.ones_like(x, dtype=torch.bool)
torch.Tensor.__lt__ = lambda self, other: True
'''),
    Hostile("patch_numpy", "patches numpy.allclose, numpy.isclose and numpy.mean in the kernel",
            "judging runs in the TA's process", code='''
import numpy
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.mean = lambda *a, **k: 0.0
'''),
    Hostile("patch_builtins", "replaces builtins.AssertionError and wraps builtins.__import__ to fake grader modules",
            "verdicts are not exceptions in the kernel; the TA's process judges", code='''
import builtins, types
builtins.AssertionError = type("AssertionError", (Exception,), {})
_real_import = builtins.__import__
def _import(name, *args, **kwargs):
    if name.startswith("grader"):
        module = types.ModuleType(name)
        module.store = lambda *a, **k: None
        module.common = module
        module.collect = module
        return module
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _import
'''),
    Hostile("patch_aelib", "patches aelib's mse_per_pixel and classifier_accuracy in the kernel to return perfect scores",
            "the judge computes its figures in the TA's process from its own copy of aelib", code='''
import aelib.evaluation
aelib.evaluation.mse_per_pixel = lambda *a, **k: 0.0
aelib.evaluation.classifier_accuracy = lambda *a, **k: 1.0
'''),
    # --- hiding errors and faking success --------------------------------------------------------
    Hostile("custom_exception_handler", "installs an IPython custom exception handler that swallows every error",
            "the verdict does not depend on kernel errors", code='''
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
'''),
    Hostile("hide_tracebacks", "sets sys.excepthook and IPython's showtraceback to do nothing",
            "the verdict does not depend on kernel errors", code='''
import sys
sys.excepthook = lambda *args: None
get_ipython().showtraceback = lambda *args, **kwargs: None
get_ipython().showsyntaxerror = lambda *args, **kwargs: None
'''),
    Hostile("print_fake_success", "prints the grader's success line and publishes an execute_result of 100 after every cell",
            "JudgeCollected replaces graded cells' outputs: only the TA's verdict is scored", code='''
def _fake_success(result=None):
    print("Graded by the course's grader: Hidden tests passed.")
    get_ipython().displayhook(100.0)
get_ipython().events.register("post_run_cell", _fake_success)
'''),
    # --- forging or deleting collected files ----------------------------------------------------
    Hostile("forge_collected_file", "after every cell, overwrites the sparsity collection with plausible values",
            "the judge compares with the closed form on secret activations", code=_hook('''
from grader.collect.record import encode
(collected / "test_sparsity_penalty.safetensors").write_bytes(encode(
    {"cases": [{"value": torch.tensor(1.5), "grad": torch.ones(64, 32)},
               {"value": torch.tensor(0.2), "grad": torch.ones(10, 5)},
               {"value": torch.tensor(0.1), "grad": torch.ones(3, 7)}]}))
''')),
    Hostile("forge_inputs_seed", "rewrites inputs.json to the public seed 0 and answers from values precomputed for it",
            "the judge derives the inputs from the course secret, never from the grading folder",
            cells={"sparsity_penalty": "print('TRICK forge_inputs_seed', flush=True)\n" + "{forge}"}),
    Hostile("delete_collected_files", "deletes every collected file after each cell",
            "a missing collection is a failed cell", code=_hook('''
for path in collected.glob("*.safetensors"):
    path.unlink()
''')),
    Hostile("symlink_collected_file", "replaces the sparsity collection by a link to /dev/zero",
            "links are rejected before reading", code=_hook('''
target = collected / "test_sparsity_penalty.safetensors"
target.unlink(missing_ok=True)
target.symlink_to("/dev/zero")
''')),
    Hostile("oversized_collected_file", "replaces the sparsity collection by a 150 MB file",
            "collections above 128 MiB are not read", code=_hook('''
with open(collected / "test_sparsity_penalty.safetensors", "wb") as handle:
    handle.truncate(150 * 2**20)
''')),
    Hostile("pickle_collected_file", "replaces the sparsity collection by a pickle that runs a command when loaded",
            "collections are safetensors plus a JSON document: nothing is unpickled in the TA's process",
            code=_hook(f'''
import os, pickle
class _Payload:
    def __reduce__(self):
        return (os.system, ("touch {PAYLOAD_FLAG}",))
torch.save({{"cases": _Payload()}}, collected / "test_sparsity_penalty.safetensors")
''')),
    Hostile("orphan_process_forges", "forks a child that outlives the kernel and keeps forging collections",
            "the kernel's pid namespace dies with it, taking the child along", code=_hook('''
import os, time
from grader.collect.record import encode
if not getattr(_after_each_cell, "forked", False):
    _after_each_cell.forked = True
    if os.fork() == 0:
        for _ in range(600):
            for path in collected.glob("*.safetensors"):
                path.write_bytes(encode({"cases": []}))
            time.sleep(0.1)
        os._exit(0)
''')),
    Hostile("chdir_away", "changes the kernel's working folder, so collections land elsewhere",
            "the judge reads only the grading folder: nothing collected", code='''
import os
os.chdir("/tmp")
'''),
    # --- editing the notebook's test cells and metadata --------------------------------------------
    Hostile("edit_test_cell", "replaces the test_sparsity_penalty cell's code with a print",
            "nbgrader restores locked grade cells from the gradebook", edit=_edit_test_cell(_print_forged_cell)),
    Hostile("delete_test_cell", "deletes the test_sparsity_penalty cell", "the gradebook keeps the cell at 0 points",
            edit=_delete_test_cell),
    Hostile("raise_test_points", "sets the test cell's points to 100 and unlocks it",
            "nbgrader restores grade cell metadata from the gradebook", edit=_edit_test_cell(_raise_points)),
    Hostile("change_kernelspec", "changes the notebook's kernelspec to another kernel",
            "nbgrader's OverwriteKernelspec restores the course's kernelspec", edit=_change_kernelspec),
    # --- reading what it must not -------------------------------------------------------------------
    Hostile("read_course_files", "reads the gradebook, the source notebooks and other students' submissions",
            "the course directory is hidden by the sandbox (tmpfs)", code=f'''
import pathlib
_course = pathlib.Path.cwd().parents[2]
for _path in ("gradebook.db", "source/autoencoders/1_ae.ipynb", "release/autoencoders/1_ae.ipynb",
              "nbgrader_config.py"):
    try:
        print("{LEAK}", _path, (_course / _path).read_bytes()[:40])
    except OSError:
        pass
for _folder in ("submitted", "autograded"):
    try:
        _others = [p.name for p in (_course / _folder).iterdir() if p.name != pathlib.Path.cwd().parent.name]
        if _others:
            print("{LEAK}", _folder, _others[:3])
    except OSError:
        pass
'''),
    Hostile("read_grading_secret", "reads the course's grading secret and the TA's environment",
            "the secret lives in the hidden course directory; the kernel sees only its inputs file", code=f'''
import os, pathlib
for _path in (pathlib.Path.cwd().parents[2] / ".aecourse_secret", pathlib.Path.home() / ".aecourse_secret"):
    try:
        print("{LEAK}", _path, _path.read_text()[:8])
    except OSError:
        pass
print("environment names:", sorted(k for k in os.environ if "SECRET" in k.upper()))
'''),
    Hostile("network", "connects to a server on the TA machine's loopback and to a package registry",
            "the kernel has its own empty network namespace", code=f'''
import socket
for _address in (("127.0.0.1", {PROBE_PORT}), ("pypi.org", 443)):
    try:
        socket.create_connection(_address, timeout=3).close()
        print("{LEAK}", _address)
    except OSError as error:
        print("network blocked:", type(error).__name__)
'''),
    # --- killing the kernel ---------------------------------------------------------------------------
    Hostile("os_exit", "calls os._exit(0) in the plot cell, after some hidden tests passed",
            "the remaining cells are not run and collect nothing", cells={"plot": '''
import os, sys, time
print("TRICK os_exit", flush=True)
time.sleep(0.5)
os._exit(0)
'''}),
    Hostile("kill_signal", "sends SIGKILL to its own kernel", "the remaining cells are not run and collect nothing",
            cells={"plot": '''
import os, signal, time
print("TRICK kill_signal", flush=True)
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGKILL)
'''}),
    Hostile("segfault", "dereferences a null pointer with ctypes", "the remaining cells are not run and collect nothing",
            cells={"plot": '''
import ctypes, time
print("TRICK segfault", flush=True)
time.sleep(0.5)
ctypes.string_at(0)
'''}),
    # --- exhausting resources ---------------------------------------------------------------------------
    Hostile("infinite_loop", "loops forever in a solution cell, ignoring interrupts",
            "the submission's wall-clock limit stops it; later cells are not run", timeout=45, cells={"plot": '''
import signal
print("TRICK infinite_loop", flush=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
'''}),
    Hostile("memory_bomb", "allocates memory until it runs out",
            "the kernel's memory limit (address space and cgroup)", options=("--SandboxedKernelManager.memory_limit=2500000000",),
            cells={"plot": '''
print("TRICK memory_bomb", flush=True)
_blocks = []
while True:
    _blocks.append(bytearray(2**27))
'''}),
    Hostile("fork_bomb", "forks processes until it cannot", "the kernel's process limit (pids cgroup or RLIMIT_NPROC)",
            cells={"plot": '''
import os, time
print("TRICK fork_bomb", flush=True)
_children = 0
try:
    while _children < 5000:
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        _children += 1
except OSError as error:
    print("fork refused after", _children, "children:", type(error).__name__)
'''}),
    Hostile("fill_disk", "writes files until the disk is full", "the file size limit and the grading folder's disk quota",
            options=("--SandboxedExecute.disk_limit=300000000",), cells={"plot": '''
print("TRICK fill_disk", flush=True)
_chunk = b"x" * 2**24
for _i in range(1000):
    with open(f"filler_{_i}.bin", "wb") as _handle:
        for _ in range(16):
            _handle.write(_chunk)
'''}),
    # One message above 16 MiB is dropped by the socket instead (the TA-side case one_huge_message).
    Hostile("huge_output", "prints 100 MB of text, 1 MB a message", "the per-cell output limit drops the rest",
            cells={"plot": '''
import sys
print("TRICK huge_output", flush=True)
for _ in range(100):
    sys.stdout.write("y" * 2**20)
    sys.stdout.flush()
'''}),
    # --- hostile checkpoints ------------------------------------------------------------------------------
    Hostile("checkpoint_pickle_payload", "a checkpoint that runs code when unpickled",
            "checkpoints load with weights_only=True", files={"1_ae_decoder.pth": "pickle_payload"}),
    Hostile("checkpoint_huge", "a 100 MB checkpoint", "checkpoints above 64 MiB are not read",
            files={"1_ae_encoder.pth": "huge"}),
    Hostile("checkpoint_truncated", "a checkpoint cut in half", "an unreadable checkpoint fails its cells",
            files={"1_ae_compression.pth": "truncated"}),
    Hostile("checkpoint_nan_weights", "a checkpoint with NaN weights", "the judge rejects non-finite outputs",
            files={"1_ae_decoder.pth": "nan_weights"}),
    # --- the two attacks reported on 3_vae ----------------------------------------------------------------
    Hostile("vae_replace_checks", "3_vae with a wrong loss_kl, replacing every function of the grader's modules",
            "collection only collects; judges run in the TA's process", notebook="3_vae", code='''
import importlib, pkgutil, grader.collect
for _info in pkgutil.iter_modules(grader.collect.__path__):
    _module = importlib.import_module("grader.collect." + _info.name)
    for _attr, _value in list(vars(_module).items()):
        if callable(_value) and not isinstance(_value, type):
            setattr(_module, _attr, lambda *args, **kwargs: None)
for _name in ("grader.checks.vae", "grader.judge.vae"):
    try:
        _module = importlib.import_module(_name)
        for _attr in list(vars(_module)):
            if _attr.startswith(("check_", "judge_")):
                setattr(_module, _attr, lambda *args, **kwargs: None)
    except ImportError:
        pass
'''),
    Hostile("vae_import_grader_kl", "3_vae whose loss_kl imports the grader's closed-form KL",
            "no reference implementation is importable in the sandbox", notebook="3_vae", cells={"loss_kl": f'''
print('TRICK vae_import_grader_kl', flush=True)
def loss_kl(z_mean, z_logvar):
    for module in ("grader.checks.vae", "grader.judge.vae", "grader.collect.vae"):
        try:
            closed_form = __import__(module, fromlist=["kl_closed_form"]).kl_closed_form
            print("{LEAK}", module)
            return closed_form(z_mean, z_logvar).mean()
        except Exception:
            pass
    return (0.5 * (torch.exp(z_logvar) - 1 - z_logvar).sum(dim=1)).mean()
'''}),
]


def catalogue() -> list[Hostile]:
    """The catalogue, with the cases whose code is computed (precomputed public answers) filled in."""
    cases = []
    for case in CATALOGUE:
        if case.name == "forge_inputs_seed":
            case = Hostile(**{**case.__dict__, "cells": {"sparsity_penalty": case.cells["sparsity_penalty"].replace(
                "{forge}", _forge_inputs_code())}})
        cases.append(case)
    return cases

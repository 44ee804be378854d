"""What decides a grade besides the submission, captured where grading is asked for and checked where it runs.

The client (`aecourse autograde`) captures the variables that change a grade (data directory, offline
split, sandbox mode), the digests of the course's data files and of the grader itself (its code, the
course's configuration and source notebooks). Each Dask task carries them: a worker grades with the
task's variables, never its own environment, and refuses to grade (a grading fault) when its data or
its grader differ from the client's. `digest` goes into the grading record, so a rerun regrades
exactly the students graded under other settings.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

GRADER = Path(__file__).resolve().parent
REPO = GRADER.parent
DECIDING_VARIABLES = ("AUTOENCODERS_DATA_DIR", "AUTOENCODERS_OFFLINE_SPLIT", "AECOURSE_SANDBOX")
DATA_SUBFOLDER = Path("MNIST") / "raw"


@dataclass(frozen=True)
class GradingSettings:
    """The variables a grade depends on, and the digests a worker must match."""
    environment: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)      # file name: sha256, of the data folder's MNIST files
    grader: str = ""                                        # digest of the grader code and the course's sources
    sandboxed: bool = False                                 # the client's kernels run in bubblewrap

    def digest(self) -> str:
        """One digest of everything here (what the grading record compares)."""
        return hashlib.sha256(json.dumps([self.environment, self.data, self.grader, self.sandboxed], sort_keys=True).encode()).hexdigest()

    def changes_from(self, other: "GradingSettings | None") -> list[str]:
        """What differs from `other`, in words (everything when there is no other)."""
        if other is None:
            return ["no earlier settings"]
        names = [f"${name}" for name in sorted(set(self.environment) | set(other.environment))
                 if self.environment.get(name) != other.environment.get(name)]
        return names + (["the data files"] if self.data != other.data else []) + \
            (["the grader or the course's sources"] if self.grader != other.grader else []) + \
            (["the sandbox"] if self.sandboxed != other.sandboxed else [])


def data_folder(environment: dict[str, str]) -> Path:
    """Where the grading reads MNIST under `environment` (aelib's rule: the variable, else its default)."""
    from aelib.data import _raw_dir

    saved = os.environ.get("AUTOENCODERS_DATA_DIR")
    try:
        os.environ.pop("AUTOENCODERS_DATA_DIR", None)
        if environment.get("AUTOENCODERS_DATA_DIR"):
            os.environ["AUTOENCODERS_DATA_DIR"] = environment["AUTOENCODERS_DATA_DIR"]
        return _raw_dir(None)
    finally:
        os.environ.pop("AUTOENCODERS_DATA_DIR", None)
        if saved is not None:
            os.environ["AUTOENCODERS_DATA_DIR"] = saved


def data_digests(folder: Path) -> dict[str, str]:
    """sha256 of every regular .gz file in `folder` (empty when the folder is missing)."""
    if not folder.is_dir():
        return {}
    return {path.name: file_sha256(path) for path in sorted(folder.glob("*.gz")) if path.is_file()}


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def grader_digest(course: Path) -> str:
    """Digest of the grader's code and of the course's configuration and source notebooks and helpers."""
    files = sorted(GRADER.rglob("*.py")) + sorted((REPO / "source").rglob("aelib/*.py"))
    course = Path(course).resolve()
    files += [course / "nbgrader_config.py", *sorted((course / "source").rglob("*.ipynb")),
              *sorted((course / "source").rglob("aelib/*.py"))]
    digest = hashlib.sha256()
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
            digest.update(f"{path.relative_to(REPO if path.is_relative_to(REPO) else course)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def current(course: Path, environment: dict[str, str] | None = None) -> GradingSettings:
    """The settings of grading `course` from this process (its variables, unless `environment` gives them)."""
    chosen = {name: os.environ[name] for name in DECIDING_VARIABLES if os.environ.get(name)} \
        if environment is None else dict(environment)
    if chosen.get("AUTOENCODERS_DATA_DIR"):
        chosen["AUTOENCODERS_DATA_DIR"] = str(Path(chosen["AUTOENCODERS_DATA_DIR"]).resolve())
    return GradingSettings(chosen, data_digests(data_folder(chosen)), grader_digest(course),
                           sandboxed(chosen))


def sandboxed(environment: dict[str, str]) -> bool:
    """Whether kernels run in bubblewrap here under `environment`'s sandbox mode."""
    from grader.sandbox import bwrap_problem

    return environment.get("AECOURSE_SANDBOX", "auto").strip().lower() != "off" and not bwrap_problem()


_CHECKED: dict[tuple[str, str], list[str]] = {}


def problems(course: Path, wanted: GradingSettings) -> list[str]:
    """Why this worker cannot grade under `wanted` (empty when it can); checked once per worker process."""
    key = (str(Path(course).resolve()), wanted.digest())
    if key not in _CHECKED:
        _CHECKED[key] = _problems(Path(key[0]), wanted)
    return _CHECKED[key]


def _problems(course: Path, wanted: GradingSettings) -> list[str]:
    """`problems`, computed."""
    here = current(course, wanted.environment)
    found = []
    if not here.data:
        found.append(f"no MNIST files in {data_folder(wanted.environment)} on this worker")
    elif here.data != wanted.data:
        found.append(f"the MNIST files in {data_folder(wanted.environment)} on this worker differ from the client's")
    if here.grader != wanted.grader:
        found.append("this worker's grader or the course's sources it sees differ from the client's "
                     "(install the same version of the course package on every worker)")
    if wanted.sandboxed and not here.sandboxed:
        from grader.sandbox import bwrap_problem

        found.append(f"the client grades in the sandbox but this worker cannot: {bwrap_problem() or 'it is off'}")
    return found

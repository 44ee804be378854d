"""nbgrader autograde preprocessors that move every verdict out of the student's kernel.

`HandOutInputs` runs before `Execute`: it copies the grading folder into a private scratch folder
for the kernel (grader/scratch.py) and writes the submission's secret seed there. `JudgeCollected`
runs after it, in the TA's process: it carries each graded cell's collection out of the scratch
folder (the only thing that crosses back), deletes the folder, has the cells judged in a bounded
child process (grader/judge/isolated.py) and replaces each graded cell's outputs with the kernel's
printed text plus the verdict, so `SaveAutoGrades` scores the judge's decision and nothing the
kernel printed, raised, hid or patched. `SanitizeOutputs` (grader/sanitize.py) then makes every
output and markdown cell inert before nbgrader stores the notebook. All are configured in
`nbgrader_config.py`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import resource
import secrets
import shutil
from pathlib import Path

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from grader.collect.layout import GRADING_DIR, INPUTS_FILE
from grader.faults import GradingFault, report_fault
from grader.judge.carry import VERDICT_PREFIX, carry_out
from grader.judge.isolated import JudgeLimits, judge_isolated, prestart
from grader.scratch import make_scratch, remove_scratch

SECRET_FILE = ".aecourse_secret"
MAX_KERNEL_TEXT = 20_000  # characters of the kernel's own output kept in a judged cell
GRADERS_PICTURE = "[the grader's picture of your results]"  # the text form of a picture the judge drew


def course_secret(path: Path) -> bytes:
    """The course's grading secret, created (readable by its owner only) the first time it is needed."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def submission_seed(secret: bytes, student: str, notebook: str) -> int:
    """The secret seed of one student's notebook's inputs: the same on every regrade, unknown without the secret."""
    digest = hmac.new(secret, f"{student}\0{notebook}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:7], "big")


def grading_folder(resources: ResourcesDict) -> Path:
    """The folder the notebook's kernel runs in (the student's autograded folder)."""
    return Path(resources["metadata"]["path"]).resolve()


class SecretInputs(NbGraderPreprocessor):
    """Shared configuration: where the course secret lives."""

    secret_file = Unicode(
        "", help="File holding the course's grading secret (created when missing); default: "
                 f"{SECRET_FILE} in the course directory. Keep it out of students' reach."
    ).tag(config=True)

    def seed(self, resources: ResourcesDict) -> int:
        """This submission's seed, derived from the secret (never read back from the grading folder)."""
        path = Path(self.secret_file) if self.secret_file else Path(os.getcwd()) / SECRET_FILE
        return submission_seed(course_secret(path), resources["nbgrader"]["student"],
                                 resources["nbgrader"]["notebook"])


def hand_out(folder: Path, seed: int) -> None:
    """Empty the grading folder's collection area and write the inputs the kernel will read."""
    area = folder / GRADING_DIR
    remove(area)
    area.mkdir()
    (area / INPUTS_FILE).write_text(json.dumps({"seed": seed}))


class HandOutInputs(SecretInputs):
    """Before execution: give the kernel a private scratch copy of the grading folder holding its secret seed."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        scratch = make_scratch(grading_folder(resources), resources["nbgrader"]["student"])
        resources["aecourse_scratch"] = str(scratch)
        hand_out(scratch, self.seed(resources))
        prestart()  # the judge's child process imports while the kernel runs
        return nb, resources


class JudgeCollected(SecretInputs):
    """After execution: carry the collections out of the scratch folder, judge every graded cell in a bounded
    child process and make the verdict its only score."""

    judge_memory_limit = Integer(4 * 2**30, help="Bytes of memory the judges of one notebook may use.").tag(config=True)
    judge_cpu_limit = Integer(300, help="CPU seconds the judges of one notebook may use.").tag(config=True)
    judge_timeout = Integer(600, help="Wall-clock seconds for judging one notebook.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        scratch = Path(resources.pop("aecourse_scratch", "") or grading_folder(resources) / "missing")
        graded = [cell for cell in nb.cells if is_scored(cell)]
        grade_ids = [cell.metadata["nbgrader"]["grade_id"] for cell in graded]
        try:
            carried = {grade_id: carry_out(scratch, grade_id) for grade_id in grade_ids}
        finally:
            remove_scratch(scratch)
        notebook = resources["nbgrader"]["notebook"]
        try:
            unimportable = [cell.metadata["nbgrader"]["grade_id"] for cell in graded if grader_missing(cell)]
            if unimportable:
                raise GradingFault(f"the grading kernel could not import the grader (cells {', '.join(unimportable)})")
            limits = JudgeLimits(self.judge_memory_limit, self.judge_cpu_limit, self.judge_timeout)
            verdicts = judge_isolated(notebook, carried, self.seed(resources), limits)
        except GradingFault as fault:
            report_fault(f"{notebook}: {fault}")
            raise
        for cell in graded:
            verdict = verdicts[cell.metadata["nbgrader"]["grade_id"]]
            message = verdict.message
            limits = [o.get("evalue", "") for o in cell.outputs if o.get("ename") == "GradingLimit"]
            if not verdict.passed and limits:
                message = f"{limits[0]} {message}"
            cell.outputs = (kernel_text(cell.outputs) + [verdict_output(verdict.passed, message)]
                            + [picture_output(picture) for picture in verdict.pictures])
            self.log.info("%s: %s", cell.metadata["nbgrader"]["grade_id"], "passed" if verdict.passed else "failed")
        self.log.info("aecourse: peak memory of this grading process: %d MiB",
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        return nb, resources


class RefuseToGrade(NbGraderPreprocessor):
    """Stands first in autograde when the sandbox is required but broken: no notebook is run or scored."""

    reason = Unicode("", help="Why grading is refused (set by nbgrader_config.py).").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        report_fault(f"grading refused: {self.reason}")
        raise GradingFault(f"grading refused: {self.reason}")


def is_scored(cell: NotebookNode) -> bool:
    """Whether a cell is a code grade cell worth points."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and float(meta.get("points", 0) or 0) > 0


def grader_missing(cell: NotebookNode) -> bool:
    """Whether a graded cell's hidden tests failed because the kernel cannot import the grader (not the student's
    doing: only the cell's own hidden lines import it; a student who breaks the import on purpose loses only a
    score that is not recorded)."""
    return any(output.get("ename") == "ModuleNotFoundError"
               and re.fullmatch(r"No module named 'grader(\.collect(\.\w+)?)?'", str(output.get("evalue", "")))
               for output in cell.get("outputs", []))


def kernel_text(outputs: list) -> list[NotebookNode]:
    """What the kernel printed and displayed, as plain stdout and pictures: nothing nbgrader would score."""
    kept, text = [], []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            text.append(str(output.get("text", "")))
        elif kind == "error":
            text.append(f"[your code raised {output.get('ename', 'an error')}: {output.get('evalue', '')}]\n")
        elif kind == "display_data" and set(output.get("data", {})) <= {"image/png", "text/plain"}:
            kept.append(NotebookNode(output_type="display_data", metadata={},
                                     data={k: v for k, v in output["data"].items()}))
    joined = "".join(text)
    if len(joined) > MAX_KERNEL_TEXT:
        joined = joined[:MAX_KERNEL_TEXT] + "\n... output truncated ...\n"
    return ([NotebookNode(output_type="stream", name="stdout", text=joined)] if joined else []) + kept


def verdict_output(passed: bool, message: str) -> NotebookNode:
    """The output that carries a verdict: plain text for a pass, an error (zero points) for a failure."""
    if passed:
        return NotebookNode(output_type="stream", name="stdout", text=f"{VERDICT_PREFIX} {message}\n")
    return NotebookNode(output_type="error", ename="AssertionError", evalue=message,
                        traceback=[f"{VERDICT_PREFIX} {message}"])


def picture_output(picture: str) -> NotebookNode:
    """A picture the judge drew of the student's results (base64 PNG), shown under the verdict."""
    return NotebookNode(output_type="display_data", metadata={},
                        data={"image/png": picture, "text/plain": GRADERS_PICTURE})


def remove(path: Path) -> None:
    """Delete a file or folder tree if it is there (links are removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def autograde_preprocessors(refusal: str = "") -> list[type]:
    """nbgrader's autograde steps with the scratch folder and inputs handed out first, the kernel run in it
    (sandboxed as `SandboxedExecute.sandboxed` says), every graded cell judged right before SaveAutoGrades
    records its score and every output made inert; only `RefuseToGrade` when `refusal` gives a reason."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute, SaveAutoGrades

    from grader.sandbox import SandboxedExecute
    from grader.sanitize import SanitizeOutputs

    if refusal:
        return [RefuseToGrade]
    steps = [HandOutInputs]
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        if step is SaveAutoGrades:
            steps += [JudgeCollected, SanitizeOutputs]
        steps.append(SandboxedExecute if step is Execute else step)
    return steps

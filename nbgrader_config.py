"""nbgrader configuration for the autoencoders course (the course root is this file's folder)."""
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader)

ROOT = Path(__file__).resolve().parent
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "autoencoders-course"

# Files that never travel between source, release and submissions: notebook sources in text form,
# local MNIST copies, and any student file that would shadow a module the notebooks or the hidden
# checks import (the kernel runs in the submission folder, which comes first on sys.path).
_SHADOWED = sorted(set(sys.stdlib_module_names) | {
    "grader", "aelib", "torch", "numpy", "sklearn", "scipy", "matplotlib", "tqdm", "nbgrader",
    "IPython", "ipykernel", "jupyter_client", "traitlets", "pytest", "conftest"})
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "[0-9]_*.py", "data", ".aecourse",
    *(f"{name}.py" for name in _SHADOWED),
    *(name for name in _SHADOWED if name not in {"aelib"} and not name.startswith("_")),
]

# Grading: one cell may run a few short training runs; a stray warning on stderr must not zero a cell.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?i)warn"

# Verdicts are decided in this process, never in the student's kernel (grader/preprocessors.py): hidden
# test cells only collect, and per-submission inputs come from this secret (keep it out of the release).
c.SecretInputs.secret_file = str(ROOT / ".aecourse_secret")

# Resource limits of each grading kernel, submission and judge (grader/sandbox.py, grader/preprocessors.py;
# defaults shown).
# c.SandboxedKernelManager.memory_limit = 4 * 2**30
# c.SandboxedKernelManager.max_processes = 128
# c.SandboxedKernelManager.cpu_time_limit = 900
# c.SandboxedExecute.submission_timeout = 600
# c.SandboxedExecute.disk_limit = 2**30
# c.SandboxedExecute.entry_limit = 20_000
# c.JudgeCollected.judge_memory_limit = 4 * 2**30

# Feedback and the formgrader render autograded notebooks with an nbconvert HTMLExporter built from this config:
# SanitizeOutputs (grader/sanitize.py) runs first on every notebook they render, and the templates sanitize too.
c.HTMLExporter.preprocessors = ["grader.sanitize.SanitizeOutputs"]
c.HTMLExporter.sanitize_html = True
# `nbgrader generate_feedback` copies nothing from the autograded folder (checkpoints, aelib/) beside its pages.
c.GenerateFeedbackApp.CourseDirectory.ignore = ["*", ".*"]

try:
    from grader import feedback
    from grader.preprocessors import autograde_preprocessors
    from grader.sandbox import sandbox_state
except ModuleNotFoundError as error:  # the grader package is not installed: grading it would score nothing but
    if error.name != "grader":          # the grader's absence, so autograde refuses (a grading fault, retried)
        raise
    import json as _json
    import os as _os

    from nbgrader.preprocessors import NbGraderPreprocessor as _Preprocessor

    class GraderMissing(_Preprocessor):
        """Stands alone in autograde when the grader package cannot be imported: no notebook is run or scored."""

        def preprocess(self, nb, resources):
            cause = "the grader package is not importable where nbgrader runs (pip install -e the course repository)"
            if _os.environ.get("AECOURSE_FAULT_FILE"):  # grader/faults.py's channel, which cannot be imported here
                with open(_os.environ["AECOURSE_FAULT_FILE"], "a") as handle:
                    handle.write(_json.dumps(cause) + "\n")
            raise RuntimeError(cause)

    c.Autograde.autograde_preprocessors = [GraderMissing]
else:
    # AECOURSE_SANDBOX=auto never turns the sandbox off silently once this course has graded in it: a broken
    # bubblewrap then refuses to grade (nbgrader autograde fails) instead of running student code unconfined.
    _sandboxed, _refusal = sandbox_state(ROOT)
    c.SandboxedExecute.sandboxed = _sandboxed
    c.RefuseToGrade.reason = _refusal
    c.Autograde.autograde_preprocessors = autograde_preprocessors(_refusal)

    # Pages (grader/feedback.py): output text wraps at the page edge (the formgrader's submission view takes the
    # template below). Feedback, after nbgrader's GetGrades and the sanitizer: its summary names each graded cell
    # by grade id and task, hidden tests show as one line saying what they check, and a feedback folder keeps only
    # its HTML pages where the formgrader writes it (its GenerateFeedback shares the formgrader's CourseDirectory).
    c.HTMLExporter.template_file = str(feedback.PAGE_TEMPLATE)
    c.GenerateFeedback.HTMLExporter.template_file = str(feedback.FEEDBACK_TEMPLATE)
    c.GenerateFeedback.preprocessors = feedback.feedback_preprocessors()
    c.GenerateFeedback.post_convert_hook = feedback.keep_only_pages(ROOT)

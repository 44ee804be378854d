"""nbgrader configuration for the autoencoders course (the course root is this file's folder)."""
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "autoencoders-course"

# Files that never travel between source, release and submissions: notebook sources in text form,
# local MNIST copies, and any student file that would shadow a module the notebooks or the hidden
# checks import (the kernel runs in the submission folder, which comes first on sys.path).
_SHADOWED = sorted(set(sys.stdlib_module_names) | {
    "grader", "aelib", "torch", "numpy", "sklearn", "scipy", "matplotlib", "tqdm", "nbgrader",
    "IPython", "ipykernel", "jupyter_client", "traitlets", "pytest", "conftest"})
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "[0-9]_*.py", "data",
    *(f"{name}.py" for name in _SHADOWED),
    *(name for name in _SHADOWED if name not in {"aelib"} and not name.startswith("_")),
]

# Grading: one cell may run a few short training runs; a stray warning on stderr must not zero a cell.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?i)warn"

# Autograde kernels run in a bubblewrap sandbox when it is installed (see grader/sandbox.py).
try:
    from grader.sandbox import autograde_preprocessors, sandbox_enabled
except ImportError:  # the grader package is not installed: nothing to autograde with anyway
    pass
else:
    if sandbox_enabled():
        c.Autograde.autograde_preprocessors = autograde_preprocessors()
